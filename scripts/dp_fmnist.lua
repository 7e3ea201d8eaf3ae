-- Differentially private training (DP-SGD) of the Fashion-MNIST MLP, at
-- epsilon 3 and 8 (delta 1e-5), beside the same model trained without
-- privacy.
--
--   lgrad scripts/dp_fmnist.lua [--small] [--epochs N] [--seed N] [--lr X]
--                               [--clip C] [--batch B] [--cost 1]
--
-- 784 -> 256 -> 10 with ReLU, SGD with momentum on the mean cross-entropy
-- loss.  The private runs go through lg.privacy.PrivacyEngine's
-- make_private_with_epsilon: Poisson sampling at rate batch / 60000, each
-- sample's gradient clipped to --clip, Gaussian noise of the multiplier
-- that spends the target epsilon in --epochs epochs (RDP accountant).
-- Prints "non-private: test accuracy X" and, per target, "target epsilon
-- E: test accuracy X, epsilon spent Y (noise multiplier Z)".  --small (or
-- LGRAD_SMALL=1): 2,000 training and 500 test images, batch 64, 2 epochs.
--
-- --cost 1 instead measures per-sample gradients against a plain backward
-- on the MLP (batch 256) and a CNN (batch 64): processor time per call
-- on one thread (fastest of 7) and the bytes the gradients hold.
local lg = require "lgrad"
local nn = lg.nn
local P = lg.privacy

local S = dofile((arg and arg[0] and arg[0]:match("^(.*)/") or "scripts")
  .. "/scenario.lua")
local o = S.options(arg, { epochs = 10, seed = 1, hidden = 256, batch = 256,
  lr = 0.1, momentum = 0.9, clip = 1.0, delta = 1e-5, cost = 0 })
if o.small then
  o.ntrain, o.ntest, o.epochs = 2000, 500, math.min(o.epochs, 2)
  o.batch = math.min(o.batch, 64)
end

local function mlp()
  return nn.Sequential(nn.Linear(784, o.hidden), nn.ReLU(),
    nn.Linear(o.hidden, 10))
end

---------------------------------------------------------------------------
-- --cost: per-sample gradients against a plain backward

-- the fastest of reps calls in processor time (one thread: the figure
-- other processes on a loaded machine disturb least)
local function fastest(fn, reps)
  local best = math.huge
  for _ = 1, reps do
    collectgarbage()
    local t0 = os.clock()
    fn()
    best = math.min(best, os.clock() - t0)
  end
  return best
end

local function bytes(list)
  local n = 0
  for _, t in ipairs(list) do
    if t then n = n + t:numel() * 4 end
  end
  return n
end

local function cost(name, model, x, y)
  local loss = lg.F.cross_entropy
  local params = model:parameters()
  local t_plain = fastest(function()
    model:zero_grad()
    loss(model(x), y):backward()
  end, 7)
  local plain = {}
  for i, p in ipairs(params) do plain[i] = p.grad end
  local gs
  local t_ps = fastest(function()
    gs = P.per_sample_grads(model, loss, x, y)
  end, 7)
  -- a DP-SGD step's gradient work: forward, backward, clip, sum, noise
  local opt = lg.optim.SGD(params, { lr = 0 })
  local ds = lg.data.TensorDataset(x, y)
  local _, dpopt = P.PrivacyEngine():make_private { model = model,
    optimizer = opt, data_loader = lg.data.DataLoader(ds,
      { batch_size = x:size(1) }), noise_multiplier = 1, max_grad_norm = 1,
    poisson_sampling = false, seed = 1 }
  local t_dp = fastest(function()
    dpopt:zero_grad()
    loss(model(x), y):backward()
    dpopt:_privatize()
  end, 7)
  print(string.format("%s (batch %d, %d parameters): plain forward+backward "
    .. "%.1f ms, gradients %.2f MB; per_sample_grads %.1f ms (%.1fx), "
    .. "per-sample gradients %.1f MB (%.0fx); DP-SGD forward+backward+"
    .. "clip+noise %.1f ms (%.1fx)", name, x:size(1), model:num_parameters(),
    t_plain * 1e3, bytes(plain) / 2 ^ 20, t_ps * 1e3, t_ps / t_plain,
    bytes(gs) / 2 ^ 20, bytes(gs) / bytes(plain), t_dp * 1e3,
    t_dp / t_plain))
end

if o.cost ~= 0 then
  lg.set_num_threads(1)
  lg.manual_seed(o.seed)
  local xtr, ytr = lg.data.fashion_mnist("train", { n = 256 })
  cost("MLP 784-256-10", mlp(), xtr:view(256, 784), ytr)
  local cnn = nn.Sequential(
    nn.Conv2d(1, 16, 3, { padding = 1 }), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 3, { padding = 1 }), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(32 * 7 * 7, 10))
  cost("CNN conv16-conv32-linear", cnn,
    xtr:narrow(1, 1, 64):unsqueeze(2), ytr:narrow(1, 1, 64))
  os.exit(0)
end

---------------------------------------------------------------------------
-- training

local t_start = lg.clock()
local xtr, ytr = lg.data.fashion_mnist("train", { n = o.ntrain })
local xte, yte = lg.data.fashion_mnist("test", { n = o.ntest })
xtr = xtr:view(xtr:size(1), 784)
xte = xte:view(xte:size(1), 784)
print(string.format("Fashion-MNIST: %d training, %d test images; batch %d, "
  .. "%d epochs, SGD lr %g momentum %g", xtr:size(1), xte:size(1), o.batch,
  o.epochs, o.lr, o.momentum))
local train_ds = lg.data.TensorDataset(xtr, ytr)
local test = lg.data.DataLoader(lg.data.TensorDataset(xte, yte),
  { batch_size = 1000 })

local function run(target)
  lg.manual_seed(o.seed)
  local model = mlp()
  local opt = lg.optim.SGD(model:parameters(), { lr = o.lr,
    momentum = o.momentum })
  local loader = lg.data.DataLoader(train_ds, { batch_size = o.batch,
    shuffle = true, seed = o.seed })
  local engine
  if target then
    engine = P.PrivacyEngine()
    model, opt, loader = engine:make_private_with_epsilon { model = model,
      optimizer = opt, data_loader = loader, target_epsilon = target,
      target_delta = o.delta, epochs = o.epochs, max_grad_norm = o.clip,
      seed = o.seed }
    print(tostring(opt))
  end
  local t0 = lg.clock()
  local h = lg.train.fit { model = model, loss = lg.F.cross_entropy,
    optimizer = opt, data = loader, val = test, epochs = o.epochs,
    metrics = { accuracy = lg.train.accuracy } }
  local acc = h.accuracy[#h.accuracy]
  if not target then
    print(string.format("non-private: test accuracy %.4f (%.1f s)", acc,
      lg.clock() - t0))
  else
    print(string.format("target epsilon %g: test accuracy %.4f, epsilon "
      .. "spent %.4f (noise multiplier %.4f, delta %g, %.1f s)", target, acc,
      engine:get_epsilon(o.delta), opt.noise_multiplier, o.delta,
      lg.clock() - t0))
  end
  return acc
end

run(nil)
run(3)
run(8)
print(string.format("total %.1f s", lg.clock() - t_start))
