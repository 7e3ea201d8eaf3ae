-- Fashion-MNIST with a convolutional network (computer vision, CNN with
-- BatchNorm and Dropout).
--
--   lgrad scripts/fmnist_cnn.lua [--small] [--epochs N] [--seed N] ...
--
-- Two blocks of 3x3 convolution, 2x2 max pooling, BatchNorm and ReLU
-- (pooling before BatchNorm and ReLU gives the same kind of features at a
-- quarter of their cost), then two Linear layers with Dropout between
-- them; AdamW with a one-cycle learning-rate schedule.  --small (or LGRAD_SMALL=1) uses 600
-- training and 300 test images and one epoch, for CI.  Prints
-- "test accuracy: X".
local lg = require "lgrad"
local nn = lg.nn

local S = dofile((arg and arg[0] and arg[0]:match("^(.*)/") or "scripts")
  .. "/scenario.lua")
local o = S.options(arg, { epochs = 6, seed = 1, batch = 128, lr = 4e-3,
  c1 = 16, c2 = 32, hidden = 128, dropout = 0.3, weight_decay = 1e-4 })
if o.small then
  o.ntrain, o.ntest, o.epochs = 600, 300, math.min(o.epochs, 1)
end
lg.manual_seed(o.seed)

local t_start = lg.clock()
-- (N, 1, 28, 28), standardized with the training set's mean and std
local xtr, ytr, xte, yte = S.fmnist_images(lg, o)
print(string.format("Fashion-MNIST: %d training, %d test images",
  xtr:size(1), xte:size(1)))

local train = lg.data.DataLoader(lg.data.TensorDataset(xtr, ytr),
  { batch_size = o.batch, shuffle = true, seed = o.seed })
local test = lg.data.DataLoader(lg.data.TensorDataset(xte, yte),
  { batch_size = 500 })

local c1, c2 = o.c1, o.c2
local model = nn.Sequential(
  nn.Conv2d(1, c1, 3, { padding = 1 }), nn.MaxPool2d(2),
  nn.BatchNorm2d(c1), nn.ReLU(),
  nn.Conv2d(c1, c2, 3, { padding = 1 }), nn.MaxPool2d(2),
  nn.BatchNorm2d(c2), nn.ReLU(),
  nn.Flatten(),
  nn.Linear(c2 * 7 * 7, o.hidden), nn.ReLU(), nn.Dropout(o.dropout),
  nn.Linear(o.hidden, 10))
print(model)

local opt = lg.optim.AdamW(model:parameters(),
  { lr = o.lr, weight_decay = o.weight_decay })
local sched = lg.sched.OneCycle(opt, { max_lr = o.lr,
  total_steps = o.epochs * #train })

local history = lg.train.fit {
  model = model, loss = lg.F.cross_entropy, optimizer = opt,
  data = train, val = test, epochs = o.epochs,
  scheduler = sched, scheduler_step = "batch",
  metrics = { accuracy = lg.train.accuracy },
}

local acc = history.accuracy[#history.accuracy]
print(string.format("test accuracy: %.4f (%d epochs, %.1f s)", acc,
  #history.loss, lg.clock() - t_start))
