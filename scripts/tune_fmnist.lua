-- Tuning an MLP on Fashion-MNIST with lg.exp: the learning rate from the
-- range test, the batch size from the gradient noise scale (grown during
-- training as the noise scale grows), the weight decay from a small
-- sweep in two worker processes; then the tuned run against the untuned
-- defaults, on the same model, optimizer, data and epochs.
--
--   lgrad scripts/tune_fmnist.lua [--small] [--epochs N] [--seed N]
--                                 [--out DIR] [--grow 0]
--
-- Model 784 -> 256 -> 10 (ReLU), plain SGD (momentum 0, as PyTorch's and
-- Keras's SGD start).  The untuned defaults: lr 0.01 (Keras's default),
-- batch 64, weight decay 0.  The 60,000 training images are split into
-- 50,000 for training and 10,000 for validation; every choice is made on
-- them, and the 10,000 test images are only measured.
--   1. batch size: B_simple = tr(Sigma) / |G|^2 at the initial weights
--      (lg.exp.noise_scale), rounded to a power of two, between 16 and 512;
--      the DataLoader's grow_batch option raises it after each epoch as
--      the noise scale grows, up to 1024 (--grow 0 keeps it fixed).
--   2. learning rate: lg.exp.lr_find at that batch size; its suggestion
--      (the rate of the lowest smoothed loss / 10).
--   3. weight decay: lg.exp.sweep over {0, 1e-5, 1e-4, 1e-3}, each trial a
--      short training run scored by validation accuracy, jobs = 2.
-- Plots go to DIR (docs/): tune_lr_find.svg, tune_sweep.svg,
-- tune_history.svg (the tuned run) and tune_compare.svg (test accuracy
-- per epoch, tuned and default).  --small (or LGRAD_SMALL=1) uses 2,500
-- training, 500 validation and 500 test images and 2 epochs, for CI.
-- Prints "test accuracy: tuned X default Y".
local lg = require "lgrad"
local exp = require "lgrad.exp"
local nn = lg.nn

local S = dofile((arg and arg[0] and arg[0]:match("^(.*)/") or "scripts")
  .. "/scenario.lua")
local o = S.options(arg, { epochs = 10, seed = 1, out = "docs",
  sweep_epochs = 3, grow = 1 })
local ntrain, nval, ntest = 50000, 10000, 10000
if o.small then
  ntrain, nval, ntest = 2500, 500, 500
  o.epochs, o.sweep_epochs = math.min(o.epochs, 2), 1
end
local DEFAULT = { lr = 0.01, batch = 64, weight_decay = 0 }

local t_start = lg.clock()
local ximg, yall = lg.data.fashion_mnist("train", { n = ntrain + nval })
local xall = ximg:view(ximg:size(1), 784)
local xtr, ytr = xall:narrow(1, 1, ntrain), yall:narrow(1, 1, ntrain)
local xva, yva = xall:narrow(1, ntrain + 1, nval),
  yall:narrow(1, ntrain + 1, nval)
local xte, yte = lg.data.fashion_mnist("test", { n = ntest })
xte = xte:view(xte:size(1), 784)
print(string.format("Fashion-MNIST: %d training, %d validation, %d test "
  .. "images", ntrain, nval, ntest))

local function make_model(seed)
  lg.manual_seed(seed)
  return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
end

local function loader(x, y, batch, seed, extra)
  local opts = { batch_size = batch, shuffle = seed ~= nil, seed = seed }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return lg.data.DataLoader(lg.data.TensorDataset(x, y), opts)
end

local function clamp(b, lo, hi)
  return math.max(lo, math.min(hi, b))
end

---------------------------------------------------------------------------
-- 1. the batch size from the noise scale at the initial weights

local model = make_model(o.seed)
local probe = loader(xtr, ytr, 32, o.seed)
local ns = exp.noise_scale(model, lg.F.cross_entropy, probe,
  { draws = 10, small = 32, big = 1024, seed = o.seed })
local batch = clamp(ns.suggested_batch_size, 16, 512)
print(string.format("noise scale at the initial weights: B_simple %.1f "
  .. "(|G|^2 %.3g, tr(Sigma) %.3g) -> batch size %d", ns.B_simple, ns.G2,
  ns.trace, batch))

---------------------------------------------------------------------------
-- 2. the learning rate from the range test, at that batch size

local lr_result = exp.lr_find(model, lg.F.cross_entropy,
  loader(xtr, ytr, batch, o.seed), { steps = o.small and 50 or 100 })
local lr = lr_result.suggestion
print(string.format("lr_find: lowest smoothed loss at lr %.3g -> lr %.3g "
  .. "(steepest descent at %.3g)", lr_result.lr_min, lr,
  lr_result.suggestion_steepest))

---------------------------------------------------------------------------
-- 3. the weight decay from a sweep in two worker processes

local sweep_epochs, seed = o.sweep_epochs, o.seed
-- run reaches the workers by value: these tensors, make_model, loader
local function trial(cfg)
  local m = make_model(seed)
  local opt = lg.optim.SGD(m:parameters(), { lr = cfg.lr,
    weight_decay = cfg.weight_decay })
  local h = lg.train.fit { model = m, loss = lg.F.cross_entropy,
    optimizer = opt, data = loader(xtr, ytr, cfg.batch, seed),
    val = loader(xva, yva, 1000), epochs = sweep_epochs,
    metrics = { accuracy = lg.train.accuracy }, progress = false }
  return { val_accuracy = h.accuracy[#h.accuracy],
    val_loss = h.val_loss[#h.val_loss] }
end
local t_sweep = lg.clock()
local sw = exp.sweep { space = { weight_decay = o.small and { 0, 1e-3 }
  or { 0, 1e-5, 1e-4, 1e-3 }, lr = { lr }, batch = { batch } },
  run = trial, jobs = 2, metric = "val_accuracy", goal = "max" }
for _, r in ipairs(sw.results) do
  print(string.format("  weight decay %-6g validation accuracy %s",
    r.config.weight_decay, r.ok and string.format("%.4f",
      r.metrics.val_accuracy) or ("failed: " .. tostring(r.error))))
end
if not sw.best then error("every sweep trial failed") end
local wd = sw.best.config.weight_decay
print(string.format("sweep (%d trials, 2 workers, %.0f s) -> weight "
  .. "decay %g", #sw.results, lg.clock() - t_sweep, wd))

---------------------------------------------------------------------------
-- the tuned run and the default run

local test = loader(xte, yte, 1000)
local function train(name, cfg)
  local m = make_model(o.seed)
  local opt = lg.optim.SGD(m:parameters(), { lr = cfg.lr,
    weight_decay = cfg.weight_decay })
  local data = loader(xtr, ytr, cfg.batch, o.seed, cfg.grow and {
    grow_batch = { model = m, loss = lg.F.cross_entropy, max = 1024,
      small = cfg.batch } })
  local t0 = lg.clock()
  print(string.format("%s: lr %.3g, batch %d%s, weight decay %g", name,
    cfg.lr, cfg.batch, cfg.grow and " (grown with the noise scale)" or "",
    cfg.weight_decay))
  local h = lg.train.fit { model = m, loss = lg.F.cross_entropy,
    optimizer = opt, data = data, val = test, epochs = o.epochs,
    metrics = { accuracy = lg.train.accuracy } }
  h.seconds = lg.clock() - t0
  h.batch_sizes = {}
  for i = 1, o.epochs do h.batch_sizes[i] = cfg.batch end
  for _, e in ipairs(data.batch_history or {}) do
    -- the size measured after epoch e is used from epoch e + 1
    for i = e.epoch + 1, o.epochs do h.batch_sizes[i] = e.batch_size end
  end
  return h
end

local tuned = train("tuned", { lr = lr, batch = batch, weight_decay = wd,
  grow = o.grow ~= 0 })
local default = train("default", DEFAULT)
print("batch size per epoch (tuned): "
  .. table.concat(tuned.batch_sizes, " "))

---------------------------------------------------------------------------
-- plots

lg.plot.lr_find(lr_result, o.out .. "/tune_lr_find.svg", { raw = true,
  title = string.format("learning-rate range test (SGD, batch %d)",
    batch) })
lg.plot.sweep(sw, { x = "weight_decay", y = "val_accuracy",
  categorical = true,
  title = string.format("weight decay sweep (%d epochs each)",
    sweep_epochs), path = o.out .. "/tune_sweep.svg" })
lg.plot.history({ loss = tuned.loss, val_loss = tuned.val_loss,
  accuracy = tuned.accuracy }, o.out .. "/tune_history.svg",
  { title = "tuned run: loss (validation = test set)",
    metrics_title = "tuned run: test accuracy" })
local epochs = {}
for i = 1, #tuned.accuracy do epochs[i] = i end
-- where the tuned run's batch grew
local markers = {}
for i = 2, #tuned.batch_sizes do
  if tuned.batch_sizes[i] ~= tuned.batch_sizes[i - 1] then
    markers[#markers + 1] = { x = i, color = "#7f7f7f", label =
      string.format("tuned batch %d from epoch %d", tuned.batch_sizes[i], i) }
  end
end
lg.plot.line { markers = markers, series = {
  { string.format("tuned (lr %.3g, batch %d+, wd %g)", lr, batch, wd),
    epochs, tuned.accuracy },
  { string.format("default (lr %g, batch %d, wd %g)", DEFAULT.lr,
    DEFAULT.batch, DEFAULT.weight_decay), epochs, default.accuracy } },
  title = "Fashion-MNIST MLP: test accuracy", xlabel = "epoch",
  ylabel = "test accuracy", path = o.out .. "/tune_compare.svg" }
print("plots written to " .. o.out .. "/tune_*.svg")

local acc_t = tuned.accuracy[#tuned.accuracy]
local acc_d = default.accuracy[#default.accuracy]
print(string.format("test accuracy: tuned %.4f default %.4f (%d epochs; "
  .. "tuned %.0f s, default %.0f s; total %.0f s)", acc_t, acc_d, o.epochs,
  tuned.seconds, default.seconds, lg.clock() - t_start))
