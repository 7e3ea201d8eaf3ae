-- Fashion-MNIST's CNN (the cnn-fmnist model of the benchmarks) trained
-- data-parallel on every rank of the job.
--
--   mpirun -np 2 --oversubscribe --allow-run-as-root \
--     build/lgrad --threads 1 scripts/ddp_fmnist.lua [--small] [--epochs N]
--
-- Each rank reads its own shard of every epoch (DataLoader{distributed =
-- true}); lg.dist.DDP averages the gradients during backward.  The global
-- batch is world_size x --batch, so the learning rate follows the linear
-- scaling rule (Goyal et al. 2017): lr = --lr x world_size, reached by a
-- linear warm-up over the first --warmup steps.  Rank 1 prints the progress
-- and "test accuracy: X"; the metrics are averaged over the ranks.
-- Without mpirun it trains in one process, the same way.
local lg = require "lgrad"
local nn = lg.nn

local S = dofile((arg and arg[0] and arg[0]:match("^(.*)/") or "scripts")
  .. "/scenario.lua")
local o = S.options(arg, { epochs = 2, seed = 1, batch = 64, lr = 1e-3,
  warmup = 50, timeout = 300 })
if o.small then
  o.ntrain, o.ntest, o.epochs = 1200, 400, math.min(o.epochs, 1)
end

local dist = lg.dist
dist.init { timeout = o.timeout }
local world = dist.world_size()
lg.manual_seed(o.seed)

local t_start = lg.clock()
local xtr, ytr, xte, yte = S.fmnist_images(lg, o)

local train = lg.data.DataLoader(lg.data.TensorDataset(xtr, ytr),
  { batch_size = o.batch, shuffle = true, seed = o.seed, distributed = true })
local test = lg.data.DataLoader(lg.data.TensorDataset(xte, yte),
  { batch_size = 500, distributed = true })

local net = nn.Sequential(
  nn.Conv2d(1, 32, 3, { padding = 1 }), nn.ReLU(), nn.MaxPool2d(2),
  nn.Conv2d(32, 64, 3, { padding = 1 }), nn.ReLU(), nn.MaxPool2d(2),
  nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))
local model = dist.DDP(net) -- every rank starts from rank 1's weights
if dist.is_main() then
  print(string.format("Fashion-MNIST: %d training, %d test images; %d "
    .. "rank(s), global batch %d, lr %g", xtr:size(1), xte:size(1), world,
    world * o.batch, o.lr * world))
end

local opt = lg.optim.Adam(model:parameters(), { lr = o.lr * world })
local warmup = math.max(1, math.min(o.warmup, o.epochs * #train))
local sched = lg.sched.Linear(opt, { start_factor = 1 / world,
  end_factor = 1, total_iters = warmup })

local history = lg.train.fit {
  model = model, loss = lg.F.cross_entropy, optimizer = opt,
  data = train, val = test, epochs = o.epochs,
  scheduler = sched, scheduler_step = "batch",
  metrics = { accuracy = lg.train.accuracy },
}

if dist.is_main() then
  local st = model:stats()
  print(string.format("test accuracy: %.4f (%d epochs, %.1f s, %d buckets "
    .. "started during backward, %d at its end)",
    history.accuracy[#history.accuracy], #history.loss, lg.clock() - t_start,
    st.launched_early, st.launched_late))
end
