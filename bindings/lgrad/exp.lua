--- lgrad.exp: measurements that choose hyperparameters (lg.exp).
--
--   local r = lg.exp.lr_find(model, lg.F.cross_entropy, loader)
--   print(r.suggestion)                      -- a learning rate
--   local ns = lg.exp.noise_scale(model, lg.F.cross_entropy, loader)
--   print(ns.B_simple, ns.suggested_batch_size)
--   local s = lg.exp.sweep{
--     space = {lr = {0.01, 0.1}, weight_decay = {0, 1e-4}},
--     run = function(cfg) ... return {loss = l, accuracy = a} end,
--     jobs = 2, metric = "loss", goal = "min", csv = "sweep.csv"}
--   print(s.best.config.lr)
--
-- lr_find is the learning-rate range test (Smith 2017; the fastai form):
-- one short run whose rate grows exponentially, with the model put back
-- as it was afterwards.  noise_scale is the simple gradient noise scale
-- B_simple = tr(Sigma) / |G|^2 of McCandlish et al. (2018), the batch size
-- beyond which larger batches stop paying for themselves.  sweep runs a
-- function over a grid or random draws of hyperparameters, in parallel
-- worker processes (see "Sweeps" below for how the function gets there).

local lg = require "lgrad"

local M = {}

local fmt = string.format
local is_tensor = lg.is_tensor
local inf = math.huge

local function finite(x)
  return x == x and x ~= inf and x ~= -inf
end

local function check_opts(fname, opts, known)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(fmt("%s: options must be a table, got %s", fname, type(opts)), 3)
  end
  for k in pairs(opts) do
    if not known[k] then
      error(fmt("%s: unknown option '%s'", fname, tostring(k)), 3)
    end
  end
  return opts
end

local function set_of(list)
  local s = {}
  for _, k in ipairs(list) do s[k] = true end
  return s
end

local function positive(fname, name, v, integer)
  if type(v) ~= "number" or not finite(v) or v <= 0
      or (integer and math.type(v) ~= "integer") then
    error(fmt("%s: %s must be a positive %s, got %s", fname, name,
      integer and "integer" or "number", tostring(v)), 3)
  end
  return v
end

-- the parameters of model (a module, or opts.params)
local function model_params(fname, model, params)
  if params == nil then
    if (type(model) ~= "table" and type(model) ~= "userdata")
        or type(model.parameters) ~= "function" then
      error(fname .. ": model must have :parameters() (or pass "
        .. "opts.params)", 3)
    end
    params = model:parameters()
  end
  if type(params) ~= "table" or #params == 0 then
    error(fname .. ": the model has no parameters", 3)
  end
  for i, p in ipairs(params) do
    if not is_tensor(p) then
      error(fmt("%s: parameter %d is not a tensor", fname, i), 3)
    end
  end
  return params
end

local function check_model(fname, model, loss_fn, loader)
  local callable = type(model) == "function"
    or ((type(model) == "table" or type(model) == "userdata")
      and getmetatable(model) and getmetatable(model).__call)
  if not callable then error(fname .. ": model must be callable", 3) end
  if type(loss_fn) ~= "function" then
    error(fname .. ": loss_fn must be a function (output, target) -> "
      .. "0-d tensor", 3)
  end
  if (type(loader) ~= "table" and type(loader) ~= "userdata")
      or type(loader.iter) ~= "function" then
    error(fname .. ": loader must be a DataLoader (anything with :iter())", 3)
  end
end

---------------------------------------------------------------------------
-- saving and restoring a model around a measurement

-- Everything lr_find and noise_scale change: parameter values and
-- gradients, buffers (BatchNorm's running statistics), the default
-- generator (dropout draws) and the loader's position.
local function snapshot(model, params, loader)
  local snap = { params = params, values = {}, grads = {} }
  lg.no_grad(function()
    for i, p in ipairs(params) do
      snap.values[i] = p:clone()
      local g = p.grad
      if g then snap.grads[i] = g:clone() end
    end
    if type(model) == "table" and type(model.buffers) == "function" then
      snap.buffers = model:buffers()
      snap.buffer_values = {}
      for i, b in ipairs(snap.buffers) do snap.buffer_values[i] = b:clone() end
    end
  end)
  snap.rng = lg.rng_state()
  if type(loader.state_dict) == "function"
      and type(loader.load_state_dict) == "function" then
    snap.loader, snap.loader_state = loader, loader:state_dict()
  end
  return snap
end

local function restore(snap)
  lg.no_grad(function()
    for i, p in ipairs(snap.params) do
      p:copy_(snap.values[i])
      p.grad = snap.grads[i]
    end
    if snap.buffers then
      for i, b in ipairs(snap.buffers) do b:copy_(snap.buffer_values[i]) end
    end
  end)
  lg.rng_state(snap.rng)
  if snap.loader then snap.loader:load_state_dict(snap.loader_state) end
end

-- batches from loader, starting a new epoch whenever one runs out
local function batch_stream(fname, loader)
  local iter = loader:iter()
  return function()
    local b = table.pack(iter())
    if b[1] == nil then
      iter = loader:iter()
      b = table.pack(iter())
      if b[1] == nil then error(fname .. ": the loader gave no batch", 0) end
    end
    return b
  end
end

-- loss_fn(model(x), y) for a batch {x, y, ...}, checked to be a scalar
local function batch_loss(fname, model, loss_fn, b)
  local out = model(b[1])
  local l = loss_fn(out, b[2])
  if not is_tensor(l) or l:numel() ~= 1 then
    error(fname .. ": loss_fn must return a 0-d tensor", 0)
  end
  return l
end

---------------------------------------------------------------------------
-- lr_find

local optim_ctors
-- true when f is one of lg.optim's constructors (called as f(params, opts))
local function is_optim_ctor(f)
  if not optim_ctors then
    optim_ctors = {}
    for _, v in pairs(lg.optim) do
      if type(v) == "function" then optim_ctors[v] = true end
    end
  end
  return optim_ctors[f] == true
end

local function is_optimizer(v)
  return (type(v) == "table" or type(v) == "userdata")
    and type(v.param_groups) == "table" and v.step ~= nil
end

-- the optimizer lr_find steps with, and its state to restore when it is
-- the caller's own
local function make_optimizer(spec, params, lr)
  if spec == nil then return lg.optim.SGD(params, { lr = lr }) end
  if is_optimizer(spec) then return spec, spec:state_dict() end
  if type(spec) == "function" then
    local opt
    if is_optim_ctor(spec) then
      opt = spec(params, { lr = lr })
    else
      opt = spec(params, lr)
    end
    if not is_optimizer(opt) then
      error("lr_find: optimizer function did not return an optimizer", 0)
    end
    return opt
  end
  if type(spec) == "table" and type(spec[1]) == "function" then
    -- {lg.optim.Adam, {betas = {0.9, 0.99}}}
    local o = {}
    for k, v in pairs(spec[2] or {}) do o[k] = v end
    o.lr = lr
    return spec[1](params, o)
  end
  error("lr_find: optimizer must be a constructor (lg.optim.SGD), a "
    .. "function(params, lr) returning an optimizer, or an optimizer", 0)
end

local function set_lr(opt, lr)
  for _, g in ipairs(opt.param_groups) do g.lr = lr end
end

-- index of the smallest value of list[lo..hi]
local function argmin(list, lo, hi)
  local best, bi = inf, nil
  for i = lo, hi do
    if list[i] < best then best, bi = list[i], i end
  end
  return bi
end

--- The rates lr_find suggests from a curve {lrs, losses} (losses
-- smoothed).  suggestion_min10 is the rate of the lowest loss divided by
-- 10 (fastai's rule); suggestion_steepest the rate where the loss falls
-- fastest against log(lr) before its minimum, leaving out the first fifth
-- of the curve, where the smoothed loss is the mean of a few noisy
-- batches.  suggestion is suggestion_min10: on a quadratic of curvature
-- a, whose best rate is 1/a, it lands within a factor of two of 1/a, while
-- the steepest descent comes out near 0.3/a (the loss has mostly gone by
-- the time the rate reaches 1/a).  Exposed so a stored curve can be read
-- again.
function M.suggest(lrs, losses)
  local n = #losses
  if n == 0 then return {} end
  local imin = argmin(losses, 1, n) or 1
  local res = { index_min = imin, lr_min = lrs[imin] }
  res.suggestion_min10 = lrs[imin] / 10
  -- differences of the loss against log(lr) over 2k steps
  local k = math.max(1, n // 50)
  local lo = math.max(1 + k, n // 5 + 1)
  if lo > math.min(imin, n - k) then lo = 1 + k end
  local best, ist = inf, nil
  for i = lo, math.min(imin, n - k) do
    local d = (losses[i + k] - losses[i - k])
      / (math.log(lrs[i + k]) - math.log(lrs[i - k]))
    if d < best then best, ist = d, i end
  end
  ist = ist or imin
  res.index_steepest = ist
  res.suggestion_steepest = lrs[ist]
  res.suggestion = res.suggestion_min10
  return res
end

local lr_find_opts = set_of { "start", "stop", "steps", "optimizer", "smooth",
  "diverge", "params" }

--- The learning-rate range test.  For `steps` batches (epochs of loader
-- repeat as needed) the rate grows exponentially from start to stop; each
-- batch is one optimizer step at that rate.  The loss is smoothed with an
-- exponential moving average (factor `smooth`) with bias correction, and
-- the test stops early once the smoothed loss exceeds `diverge` times its
-- lowest value or a loss is not finite.  Afterwards the parameters, their
-- gradients, buffers, the default generator, the loader's position and a
-- caller's optimizer state are as they were.
--
-- opts: start (1e-7), stop (10), steps (100), smooth (0.98), diverge (4),
-- optimizer: a constructor from lg.optim (default SGD, called with
-- {lr = start}), {constructor, opts}, a function(params, lr) returning an
-- optimizer, or an optimizer over the model's parameters (its state is
-- restored afterwards); params (default model:parameters()).
--
-- Returns {lrs, losses (smoothed), raw_losses, suggestion,
-- suggestion_steepest, suggestion_min10, diverged}.
function M.lr_find(model, loss_fn, loader, opts)
  opts = check_opts("lr_find", opts, lr_find_opts)
  check_model("lr_find", model, loss_fn, loader)
  local start = positive("lr_find", "start", opts.start or 1e-7)
  local stop = positive("lr_find", "stop", opts.stop or 10)
  if stop <= start then
    error("lr_find: stop must be larger than start", 2)
  end
  local steps = positive("lr_find", "steps", opts.steps or 100, true)
  if steps < 2 then error("lr_find: steps must be at least 2", 2) end
  local beta = opts.smooth or 0.98
  if type(beta) ~= "number" or beta < 0 or beta >= 1 then
    error("lr_find: smooth must be in [0, 1), got " .. tostring(beta), 2)
  end
  local diverge = opts.diverge or 4
  if type(diverge) ~= "number" or diverge ~= diverge or diverge <= 1 then
    error("lr_find: diverge must be a number above 1", 2)
  end
  local params = model_params("lr_find", model, opts.params)

  local snap = snapshot(model, params, loader)
  local lrs, losses, raw = {}, {}, {}
  local diverged = false
  local opt, own_state
  local ok, err = pcall(function()
    opt, own_state = make_optimizer(opts.optimizer, params, start)
    local next_batch = batch_stream("lr_find", loader)
    local log_ratio = math.log(stop / start)
    local avg, best = 0, inf
    for i = 1, steps do
      local lr = start * math.exp(log_ratio * (i - 1) / (steps - 1))
      set_lr(opt, lr)
      opt:zero_grad()
      local l = batch_loss("lr_find", model, loss_fn, next_batch())
      local lv = l:item()
      if not finite(lv) then
        diverged = true
        break
      end
      l:backward()
      opt:step()
      avg = beta * avg + (1 - beta) * lv
      local s = avg / (1 - beta ^ i)
      lrs[i], losses[i], raw[i] = lr, s, lv
      if s < best then best = s end
      if i > 1 and s > diverge * best then
        diverged = true
        break
      end
    end
  end)
  if own_state then opt:load_state_dict(own_state) end
  restore(snap)
  if not ok then error(err, 0) end
  if #lrs == 0 then
    error("lr_find: the first loss was not finite", 2)
  end
  local r = M.suggest(lrs, losses)
  r.lrs, r.losses, r.raw_losses, r.diverged = lrs, losses, raw, diverged
  return r
end

---------------------------------------------------------------------------
-- noise_scale

-- the dataset behind a loader (or the dataset itself)
local function dataset_of(loader)
  local ds = loader.dataset
  if ds == nil and lg.data.is_TensorDataset(loader) then ds = loader end
  if ds == nil then
    error("noise_scale: loader must be a DataLoader (with .dataset)", 3)
  end
  return ds
end

-- the sum of squares of a list of gradients (nil entries are zero)
local function sqnorm(grads, n)
  local s = 0
  for i = 1, n do
    local g = grads[i]
    if g then s = s + g:square():sum():item() end
  end
  return s
end

-- squared gradient norms on one draw: the mean of |g|^2 over the k
-- disjoint batches of `small` samples a loader gives, and |mean g|^2,
-- the squared norm of the gradient of their union (k * small samples)
local function draw_norms(model, loss_fn, params, loader, k)
  local np = #params
  local sum = {}
  local small2 = 0
  local iter = loader:iter()
  for _ = 1, k do
    local b = table.pack(iter())
    for i = 1, np do params[i].grad = nil end
    batch_loss("noise_scale", model, loss_fn, b):backward()
    local g = {}
    for i = 1, np do
      local gi = params[i].grad
      if gi then
        g[i] = gi:double()
        sum[i] = sum[i] and sum[i]:add_(g[i]) or g[i]:clone()
      end
    end
    small2 = small2 + sqnorm(g, np)
  end
  for i = 1, np do
    if sum[i] then sum[i]:div_(k) end
  end
  return small2 / k, sqnorm(sum, np)
end

local noise_opts = set_of { "draws", "small", "big", "seed", "params" }

--- The simple gradient noise scale B_simple = tr(Sigma) / |G|^2
-- (McCandlish et al. 2018, "An Empirical Model of Large-Batch Training"),
-- measured at the model's current parameters: G is the full-batch
-- gradient and Sigma the covariance of one sample's gradient.  Training
-- with batches much smaller than B_simple wastes steps on noise, much
-- larger wastes computation.
--
-- Each draw takes `big` samples at random (without replacement), splits
-- them into big/small batches of `small`, and computes |G_small|^2 (the
-- mean over those batches of the squared gradient norm) and |G_big|^2
-- (the squared norm of their mean gradient).  Since E|G_B|^2 = |G|^2 +
-- tr(Sigma)/B,
--   |G|^2     ~ (B_big |G_big|^2 - B_small |G_small|^2) / (B_big - B_small)
--   tr(Sigma) ~ (|G_small|^2 - |G_big|^2) / (1/B_small - 1/B_big)
-- and both are averaged over the draws before their ratio is taken (the
-- ratio of averages is the less biased one).  loss_fn must average over
-- the batch (reduction "mean").
--
-- opts: draws (10), small (the loader's batch_size, else 32), big (16
-- times small, at most the dataset; rounded down to a multiple of small),
-- seed (of the draws; default drawn from lg's generator), params.
-- Parameters, gradients, buffers, the default generator and the loader
-- are left as they were.  Returns {B_simple, G2 = |G|^2, trace =
-- tr(Sigma), suggested_batch_size (B_simple rounded to a power of two,
-- at most the dataset size), small, big, draws}.
function M.noise_scale(model, loss_fn, loader, opts)
  opts = check_opts("noise_scale", opts, noise_opts)
  check_model("noise_scale", model, loss_fn, loader)
  local ds = dataset_of(loader)
  local n = #ds
  local draws = positive("noise_scale", "draws", opts.draws or 10, true)
  local small = opts.small or loader.batch_size or 32
  positive("noise_scale", "small", small, true)
  local big = opts.big or math.min(n, 16 * small)
  positive("noise_scale", "big", big, true)
  if big > n then
    error(fmt("noise_scale: big (%d) is larger than the dataset (%d)",
      big, n), 2)
  end
  local k = big // small
  if k < 2 then
    error(fmt("noise_scale: big (%d) must be at least twice small (%d)",
      big, small), 2)
  end
  big = k * small
  local seed = opts.seed
  if seed == nil then
    seed = lg.randint(0, 0x7FFFFFFF, { 1 }):item()
  elseif math.type(seed) ~= "integer" then
    error("noise_scale: seed must be an integer", 2)
  end
  local params = model_params("noise_scale", model, opts.params)

  local snap = snapshot(model, params, loader)
  local g2_sum, tr_sum = 0, 0
  local ok, err = pcall(function()
    -- one shuffled loader per draw: its first k batches are the draw
    local sampler = lg.data.DataLoader(ds, { batch_size = small,
      shuffle = true, seed = seed })
    for _ = 1, draws do
      local s2, b2 = draw_norms(model, loss_fn, params, sampler, k)
      g2_sum = g2_sum + (big * b2 - small * s2) / (big - small)
      tr_sum = tr_sum + (s2 - b2) / (1 / small - 1 / big)
    end
  end)
  restore(snap)
  if not ok then error(err, 0) end
  local g2, trace = g2_sum / draws, tr_sum / draws
  local b
  if g2 <= 0 then
    b = inf -- the gradient is lost in its noise: as large as can be
  else
    b = math.max(trace, 0) / g2
  end
  local suggested
  if b == inf then
    suggested = n
  else
    suggested = 2 ^ math.floor(math.log(math.max(b, 1), 2) + 0.5)
    suggested = math.floor(math.max(1, math.min(n, suggested)))
  end
  return { B_simple = b, G2 = g2, trace = trace,
    suggested_batch_size = suggested, small = small, big = big,
    draws = draws }
end

return M
