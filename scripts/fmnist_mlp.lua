-- Fashion-MNIST with a multilayer perceptron (computer vision, MLP).
--
--   lgrad scripts/fmnist_mlp.lua [--small] [--epochs N] [--seed N]
--
-- 784 -> 256 -> 10 with ReLU, Adam and a cosine learning-rate schedule,
-- trained with lg.train.fit on the 60,000 training images and measured on
-- the 10,000 test images.  --small (or LGRAD_SMALL=1) uses 600 training
-- and 300 test images and 2 epochs, for CI.  Prints "test accuracy: X".
local lg = require "lgrad"
local nn = lg.nn

local S = dofile((arg and arg[0] and arg[0]:match("^(.*)/") or "scripts")
  .. "/scenario.lua")
local o = S.options(arg, { epochs = 12, seed = 1, hidden = 256,
  batch = 128, lr = 2e-3 })
if o.small then
  o.ntrain, o.ntest, o.epochs = 600, 300, math.min(o.epochs, 2)
end
lg.manual_seed(o.seed)

local t_start = lg.clock()
local xtr, ytr = lg.data.fashion_mnist("train", { n = o.ntrain })
local xte, yte = lg.data.fashion_mnist("test", { n = o.ntest })
xtr = xtr:view(xtr:size(1), 784)
xte = xte:view(xte:size(1), 784)
print(string.format("Fashion-MNIST: %d training, %d test images",
  xtr:size(1), xte:size(1)))

local train = lg.data.DataLoader(lg.data.TensorDataset(xtr, ytr),
  { batch_size = o.batch, shuffle = true, seed = o.seed })
local test = lg.data.DataLoader(lg.data.TensorDataset(xte, yte),
  { batch_size = 1000 })

local model = nn.Sequential(
  nn.Linear(784, o.hidden), nn.ReLU(),
  nn.Linear(o.hidden, 10))
print(model)

local opt = lg.optim.Adam(model:parameters(), { lr = o.lr })
local sched = lg.sched.Cosine(opt, { T_max = o.epochs * #train })

local history = lg.train.fit {
  model = model, loss = lg.F.cross_entropy, optimizer = opt,
  data = train, val = test, epochs = o.epochs,
  scheduler = sched, scheduler_step = "batch",
  metrics = { accuracy = lg.train.accuracy },
}

local acc = history.accuracy[#history.accuracy]
print(string.format("test accuracy: %.4f (%d epochs, %.1f s)", acc,
  #history.loss, lg.clock() - t_start))
