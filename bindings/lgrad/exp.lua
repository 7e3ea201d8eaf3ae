--- lgrad.exp: measurements that choose hyperparameters (lg.experiment).
--
-- The module is lg.experiment (or require "lgrad.exp"); lg.exp is the
-- element-wise exponential, which also forwards lg.exp.lr_find and the
-- other fields here so that older scripts keep working (bindings/lgrad.c).
--
--   local r = lg.experiment.lr_find(model, lg.F.cross_entropy, loader)
--   print(r.suggestion)                      -- a learning rate
--   local ns = lg.experiment.noise_scale(model, lg.F.cross_entropy, loader)
--   print(ns.B_simple, ns.suggested_batch_size)
--   local s = lg.experiment.sweep{
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

local opts_of = require "lgrad.options"
local check_opts, set_of = opts_of.check, opts_of.set_of

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

---------------------------------------------------------------------------
-- Sweeps
--
-- With jobs = 1 (the default) the trials run one after another in the
-- calling process.  With jobs > 1 (or isolate = true) every trial runs in
-- a fresh process of the same interpreter (the lgrad binary, or lua5.4
-- with the caller's package.path and package.cpath), `jobs` of them at a
-- time, so trials cannot disturb each other and a crash costs one trial.
-- The function reaches those processes by value: its bytecode
-- (string.dump) and, recursively, the values of its upvalues:
--   * numbers, strings, booleans, tables (also cyclic or shared), Lua
--     functions (the same way), and upvalues shared between functions;
--   * modules and the values one or two fields inside them (lg, lg.F,
--     lg.optim.SGD, string.format, a class table of lg.nn...) by name: the
--     worker requires the module again;
--   * tensors by value (data, dtype, requires_grad), through one
--     safetensors file the workers load;
--   * _G, and any function's _ENV, as the worker's own _G: globals are
--     not sent, so what run needs must be a local of the script (or made
--     inside run).
-- Anything else (a file handle, a coroutine, a C function outside any
-- module) is refused with an error naming the upvalue; make it inside run.
-- Each trial starts from the upvalues as they were when sweep was called,
-- and its results come back over a pipe as a Lua table literal (numbers
-- written exactly, with %q).  The trial's own output goes to stderr.

local dump_q = function(v) return fmt("%q", v) end

-- a Lua literal for a plain value (nil, boolean, number, string, or a
-- tree of tables of them); errors name the offending path
local function literal(v, path, seen)
  local t = type(v)
  if t == "nil" or t == "boolean" then return tostring(v) end
  if t == "number" or t == "string" then return dump_q(v) end
  if t == "table" and getmetatable(v) == nil then
    seen = seen or {}
    if seen[v] then error(path .. " is a cyclic table", 0) end
    seen[v] = true
    local keys = {}
    for k in next, v do keys[#keys + 1] = k end
    table.sort(keys, function(a, b)
      local ta, tb = type(a), type(b)
      if ta ~= tb then return ta < tb end
      if ta == "number" or ta == "string" then return a < b end
      return tostring(a) < tostring(b)
    end)
    local parts = {}
    for _, k in ipairs(keys) do
      parts[#parts + 1] = "[" .. literal(k, path, seen) .. "]="
        .. literal(v[k], path .. "." .. tostring(k), seen)
    end
    seen[v] = nil
    return "{" .. table.concat(parts, ",") .. "}"
  end
  error(fmt("%s is a %s, not a number, string, boolean or plain table",
    path, t), 0)
end
M._literal = literal

local function read_literal(text, what)
  local f, err = load("return " .. text, "=" .. what, "t", {})
  if not f then error(what .. ": " .. err, 0) end
  return f()
end

-- metrics as returned by run: a number (the metric), or a table of
-- numbers, strings, booleans (0-d tensors are read with :item())
local function clean_metrics(m, metric)
  if type(m) == "number" then return { [metric] = m } end
  if is_tensor(m) and m:numel() == 1 then return { [metric] = m:item() } end
  if type(m) ~= "table" then
    error("run must return a number or a table of metrics, got " .. type(m),
      0)
  end
  local out = {}
  for k, v in pairs(m) do
    if is_tensor(v) and v:numel() == 1 then v = v:item() end
    out[k] = v
  end
  -- through the same text a worker sends, so both paths give one table
  return read_literal(literal(out, "metrics"), "metrics")
end

-- the message of an error value
local function message(e)
  if type(e) == "string" then return e end
  local ok, s = pcall(tostring, e)
  return ok and s or "(error object)"
end

---- values to a worker: the object graph of run

-- value -> {module name, field, field} for modules and what is one or two
-- fields inside them (shortest path first)
local function module_index()
  local index = {}
  local names = {}
  for name, mod in next, package.loaded do
    if type(name) == "string" and name ~= "_G"
        and (type(mod) == "table" or type(mod) == "function") then
      names[#names + 1] = name
    end
  end
  table.sort(names)
  local level = {}
  for _, name in ipairs(names) do
    local mod = package.loaded[name]
    if index[mod] == nil and mod ~= _G then
      index[mod] = { name }
      level[#level + 1] = { mod, { name } }
    end
  end
  for _ = 1, 2 do
    local nextlevel = {}
    for _, e in ipairs(level) do
      local tbl, path = e[1], e[2]
      if type(tbl) == "table" then
        local keys = {}
        for k in next, tbl do
          if type(k) == "string" then keys[#keys + 1] = k end
        end
        table.sort(keys)
        for _, k in ipairs(keys) do
          local v = rawget(tbl, k)
          local tv = type(v)
          if (tv == "table" or tv == "function" or tv == "userdata")
              and index[v] == nil and v ~= _G and not is_tensor(v) then
            local p = { table.unpack(path) }
            p[#p + 1] = k
            index[v] = p
            nextlevel[#nextlevel + 1] = { v, p }
          end
        end
      end
    end
    level = nextlevel
  end
  return index
end

-- Encodes the graph reachable from root: returns the text of a Lua table
-- {root = ref, nodes = {...}, joins = {...}} and the list of tensors.
-- A ref is {"v", literal} | {"n", node} | {"m", name, field...} |
-- {"t", tensor} | {"G"}.
local function encode_graph(root, rootname)
  local index = module_index()
  local nodes, ids, tensors, tensor_ids = {}, {}, {}, {}
  local upvalue_seen, joins = {}, {}
  local enc

  local function new_node(v)
    local id = #nodes + 1
    ids[v] = id
    nodes[id] = false
    return id
  end

  enc = function(v, path)
    local t = type(v)
    if t == "nil" or t == "boolean" or t == "number" or t == "string" then
      return "{\"v\"," .. literal(v, path) .. "}"
    end
    if v == _G then return "{\"G\"}" end
    if ids[v] then return fmt("{\"n\",%d}", ids[v]) end
    if tensor_ids[v] then return fmt("{\"t\",%d}", tensor_ids[v]) end
    local m = index[v]
    if m then
      local parts = {}
      for i, s in ipairs(m) do parts[i] = dump_q(s) end
      return "{\"m\"," .. table.concat(parts, ",") .. "}"
    end
    if is_tensor(v) then
      local i = #tensors + 1
      tensors[i] = v
      tensor_ids[v] = i
      return fmt("{\"t\",%d}", i)
    end
    if t == "table" then
      local id = new_node(v)
      local parts = {}
      for k, val in next, v do
        local kpath = path .. "[" .. tostring(k) .. "]"
        parts[#parts + 1] = "{" .. enc(k, kpath) .. "," .. enc(val, kpath)
          .. "}"
      end
      local mt = getmetatable(v)
      local mts = ""
      if mt ~= nil then
        if type(mt) ~= "table" then
          error(path .. " has a protected metatable", 0)
        end
        mts = ",meta=" .. enc(mt, path .. "'s metatable")
      end
      nodes[id] = "{\"table\",{" .. table.concat(parts, ",") .. "}" .. mts
        .. "}"
      return fmt("{\"n\",%d}", id)
    end
    if t == "function" then
      local info = debug.getinfo(v, "S")
      if info.what == "C" then
        error(path .. " is a C function outside any loaded module", 0)
      end
      local id = new_node(v)
      local ok, code = pcall(string.dump, v)
      if not ok then error(path .. ": " .. message(code), 0) end
      local ups = {}
      local j = 1
      while true do
        local name, val = debug.getupvalue(v, j)
        if name == nil then break end
        local uid = debug.upvalueid(v, j)
        local first = upvalue_seen[uid]
        if first then
          -- shared with an upvalue already sent: join them in the worker
          joins[#joins + 1] = fmt("{%d,%d,%d,%d}", id, j, first[1], first[2])
          ups[j] = "{\"v\",nil}"
        else
          upvalue_seen[uid] = { id, j }
          if name == "_ENV" then
            ups[j] = "{\"G\"}" -- the worker's globals, whatever ran here
          else
            ups[j] = enc(val, fmt("upvalue '%s' of %s", name ~= "" and name
              or "?", path))
          end
        end
        j = j + 1
      end
      nodes[id] = "{\"fn\"," .. dump_q(code) .. ",{" .. table.concat(ups, ",")
        .. "}}"
      return fmt("{\"n\",%d}", id)
    end
    local mt = getmetatable(v)
    local what = type(mt) == "table" and type(mt.__name) == "string"
      and mt.__name or t
    error(fmt("%s is a %s, which cannot be sent to a worker process "
      .. "(create it inside run, or use jobs = 1)", path, what), 0)
  end

  local r = enc(root, rootname)
  return "{root=" .. r .. ",nodes={" .. table.concat(nodes, ",\n")
    .. "},joins={" .. table.concat(joins, ",") .. "}}", tensors
end

-- the value encode_graph described, rebuilt in a worker
local function decode_graph(g, tensors)
  local built = {}
  local function ref(r)
    local k = r[1]
    if k == "v" then return r[2] end
    if k == "G" then return _G end
    if k == "n" then return built[r[2]] end
    if k == "t" then return tensors[r[2]] end
    if k == "m" then
      local v = require(r[2])
      for i = 3, #r do v = v[r[i]] end
      return v
    end
    error("sweep worker: bad reference " .. tostring(k), 0)
  end
  for i, node in ipairs(g.nodes) do
    if node[1] == "table" then
      built[i] = {}
    else
      local f, err = load(node[2], "=run", "b")
      if not f then error("sweep worker: " .. err, 0) end
      built[i] = f
    end
  end
  for i, node in ipairs(g.nodes) do
    local v = built[i]
    if node[1] == "table" then
      for _, kv in ipairs(node[2]) do rawset(v, ref(kv[1]), ref(kv[2])) end
      if node.meta then setmetatable(v, ref(node.meta)) end
    else
      for j, r in ipairs(node[3]) do debug.setupvalue(v, j, ref(r)) end
    end
  end
  for _, jn in ipairs(g.joins) do
    debug.upvaluejoin(built[jn[1]], jn[2], built[jn[3]], jn[4])
  end
  return ref(g.root)
end

---- trials

-- splitmix64: the generator of random configurations and trial seeds
local function splitmix(state)
  local s = state
  return function()
    s = s + 0x9E3779B97F4A7C15
    local z = s
    z = (z ~ (z >> 30)) * 0xBF58476D1CE4E5B9
    z = (z ~ (z >> 27)) * 0x94D049BB133111EB
    return z ~ (z >> 31)
  end
end

local function uniform01(rand)
  return (rand() >> 11) * 2.0 ^ -53
end

-- the seed of trial i: a 31-bit integer from the sweep's seed
local function trial_seed(seed, i)
  local rand = splitmix(seed * 0x100000001B3 + i)
  return rand() & 0x7FFFFFFF
end

--- Distributions for random sweeps (plain lists are drawn uniformly).
function M.uniform(a, b) return { uniform = { a, b } } end
function M.log_uniform(a, b) return { log_uniform = { a, b } } end
function M.int_uniform(a, b) return { int_uniform = { a, b } } end

local function dist_of(name, spec)
  if type(spec) ~= "table" then
    error(fmt("sweep: space.%s must be a list of values or a distribution",
      name), 4)
  end
  for _, kind in ipairs { "uniform", "log_uniform", "int_uniform" } do
    local r = spec[kind]
    if r ~= nil then
      local a, b = r[1], r[2]
      if type(a) ~= "number" or type(b) ~= "number" or a > b
          or (kind == "log_uniform" and a <= 0)
          or (kind == "int_uniform" and (math.type(a) ~= "integer"
            or math.type(b) ~= "integer")) then
        error(fmt("sweep: space.%s: bad %s range", name, kind), 4)
      end
      return { kind = kind, a = a, b = b }
    end
  end
  if #spec == 0 then
    error(fmt("sweep: space.%s has no values", name), 4)
  end
  return { kind = "list", values = spec }
end

local function draw(d, rand)
  local u = uniform01(rand)
  if d.kind == "list" then
    return d.values[math.floor(u * #d.values) + 1]
  elseif d.kind == "uniform" then
    return d.a + (d.b - d.a) * u
  elseif d.kind == "log_uniform" then
    return math.exp(math.log(d.a) + (math.log(d.b) - math.log(d.a)) * u)
  end
  return d.a + math.floor(u * (d.b - d.a + 1))
end

-- the configurations of a sweep, in order
local function configurations(o, names, dists)
  local configs = {}
  if o.mode == "grid" then
    for _, name in ipairs(names) do
      if dists[name].kind ~= "list" then
        error(fmt("sweep: grid mode needs a list of values for space.%s",
          name), 3)
      end
    end
    local function build(i, cfg)
      if i > #names then
        local c = {}
        for k, v in pairs(cfg) do c[k] = v end
        configs[#configs + 1] = c
        return
      end
      for _, v in ipairs(dists[names[i]].values) do
        cfg[names[i]] = v
        build(i + 1, cfg)
      end
    end
    build(1, {})
  else
    local rand = splitmix(o.seed ~ 0x5EED)
    for t = 1, o.trials do
      local c = {}
      for _, name in ipairs(names) do c[name] = draw(dists[name], rand) end
      configs[t] = c
    end
  end
  return configs
end

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

-- runs one trial here: seeds lg's and Lua's generators, calls run
local function run_trial(run, trial, metric)
  lg.manual_seed(trial.seed)
  math.randomseed(trial.seed)
  local ok, res = pcall(run, copy(trial.config),
    { trial = trial.trial, seed = trial.seed })
  if ok then
    ok, res = pcall(clean_metrics, res, metric)
  end
  if ok then return { ok = true, metrics = res } end
  return { ok = false, error = message(res) }
end

---- worker processes

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- the command that runs a Lua file with lgrad available
local function interpreter(o)
  if o.interpreter then return o.interpreter end
  local lo = 0
  if type(arg) == "table" then
    while arg[lo - 1] ~= nil do lo = lo - 1 end
  end
  if lo < 0 and type(arg[lo]) == "string" then
    return shell_quote(arg[lo])
  end
  local bin = os.getenv("LGRAD_BIN")
  if bin and bin ~= "" then return shell_quote(bin) end
  return "lgrad"
end

local function write_file(path, text)
  local f, err = io.open(path, "wb")
  if not f then error("sweep: " .. err, 0) end
  f:write(text)
  f:close()
end

--- The body of a worker process: rebuilds run from the files the sweep
-- wrote, runs trial i and reports to file descriptor 3.
function M._worker(dir, i)
  i = math.tointeger(tonumber(i))
  local function slurp(path)
    local f = assert(io.open(path, "rb"))
    local s = f:read("a")
    f:close()
    return s
  end
  -- a sweep's directory and one of its trials, or an error before fd 3
  -- is touched: called by anything else, the process's own fd 3 (a file
  -- it writes, say) must stay as it is
  local task_text
  if type(dir) == "string" and i and i >= 1 then
    local f = io.open(dir .. "/task.lua", "rb")
    if f then
      task_text = f:read("a")
      f:close()
    end
  end
  if not task_text then
    error("exp._worker: runs trial i of a sweep in a worker process; "
      .. "expects the sweep's directory and a trial number", 2)
  end
  -- appending: "w" would truncate a file open as fd 3 (the sweep's is a
  -- pipe)
  local out = assert(io.open("/dev/fd/3", "a"))
  local res
  local ok, err = pcall(function()
    local task = read_literal(task_text, "task")
    if task.threads then lg.set_num_threads(task.threads) end
    local tensors = {}
    if task.ntensors > 0 then
      local saved = lg.load(dir .. "/tensors.safetensors")
      for j = 1, task.ntensors do
        local t = saved["t" .. j]
        if task.requires_grad[j] then t:requires_grad_(true) end
        tensors[j] = t
      end
    end
    local g = read_literal(slurp(dir .. "/run.lua"), "run")
    local run = decode_graph(g, tensors)
    res = run_trial(run, task.trials[i], task.metric)
  end)
  if not ok then
    res = { ok = false, error = "sweep worker: " .. message(err) }
  end
  local text = literal(res, "result")
  out:write(fmt("@@lgresult %d %d\n", i, #text), text)
  out:close()
end

-- the files a sweep's workers read: the task list, run's graph, tensors
local function prepare_workers(o, trials)
  local text, tensors = o.graph, o.tensors
  local dir = os.tmpname()
  os.remove(dir)
  if not os.execute("mkdir -m 700 " .. shell_quote(dir)) then
    error("sweep: cannot create " .. dir, 0)
  end
  local rg = {}
  if #tensors > 0 then
    local named = {}
    for j, t in ipairs(tensors) do
      named["t" .. j] = t:detach():contiguous()
      rg[j] = t.requires_grad and t.is_leaf or false
    end
    lg.save(dir .. "/tensors.safetensors", named)
  end
  local threads = o.threads
  write_file(dir .. "/task.lua", literal({ trials = trials,
    metric = o.metric, threads = threads, ntensors = #tensors,
    requires_grad = rg }, "task"))
  write_file(dir .. "/run.lua", text)
  write_file(dir .. "/boot.lua", fmt("package.path = %q\n"
    .. "package.cpath = %q\n"
    .. "require(\"lgrad.exp\")._worker(%q, ...)\n",
    package.path, package.cpath, dir))
  return dir
end

local function remove_dir(dir)
  for _, f in ipairs { "task.lua", "run.lua", "boot.lua",
    "tensors.safetensors" } do
    os.remove(dir .. "/" .. f)
  end
  os.remove(dir)
end

-- runs the trials in worker processes, jobs streams at a time
local function run_workers(o, trials)
  local dir = prepare_workers(o, trials)
  local interp = interpreter(o)
  local boot = shell_quote(dir .. "/boot.lua")
  local sink = o.quiet and ">/dev/null 2>&1" or "1>&2"
  local streams = {}
  for w = 1, o.jobs do
    local ids = {}
    for i = w, #trials, o.jobs do ids[#ids + 1] = i end
    if #ids > 0 then
      local cmd = fmt("for i in %s; do %s %s $i </dev/null; "
        .. "echo \"@@lgexit $i $?\" >&3; done 3>&1 %s",
        table.concat(ids, " "), interp, boot, sink)
      streams[#streams + 1] = assert(io.popen(cmd, "r"))
    end
  end
  local results, status = {}, {}
  for _, p in ipairs(streams) do
    while true do
      local line = p:read("l")
      if line == nil then break end
      local i, n = line:match("^@@lgresult (%d+) (%d+)$")
      if i then
        local text = p:read(tonumber(n))
        local ok, r = pcall(read_literal, text or "", "result")
        results[tonumber(i)] = ok and r
          or { ok = false, error = "sweep: unreadable result: " .. r }
      else
        local j, code = line:match("^@@lgexit (%d+) (%d+)$")
        if j then status[tonumber(j)] = tonumber(code) end
      end
    end
    p:close()
  end
  remove_dir(dir)
  for i = 1, #trials do
    if results[i] == nil then
      results[i] = { ok = false, error = fmt("worker process exited with "
        .. "status %s before reporting", tostring(status[i] or "?")) }
    end
  end
  return results
end

---- the sweep

local sweep_keys = set_of { "space", "run", "mode", "trials", "seed", "jobs",
  "metric", "goal", "csv", "interpreter", "threads", "isolate", "quiet" }

-- a CSV field: numbers exactly but short, text quoted when it must be
local function csv_field(v)
  if v == nil then return "" end
  if math.type(v) == "float" then
    local s = fmt("%.15g", v)
    if tonumber(s) ~= v then s = fmt("%.17g", v) end
    v = s
  end
  v = tostring(v)
  if v:find("[,\"\r\n]") then v = "\"" .. v:gsub("\"", "\"\"") .. "\"" end
  return v
end

local function write_csv(path, res, names)
  local mnames, seen = {}, {}
  for _, r in ipairs(res.results) do
    for k in pairs(r.metrics or {}) do
      if not seen[k] then
        seen[k] = true
        mnames[#mnames + 1] = k
      end
    end
  end
  table.sort(mnames, function(a, b) return tostring(a) < tostring(b) end)
  local f, err = io.open(path, "w")
  if not f then error("sweep: " .. err, 0) end
  local head = { "trial", "seed" }
  for _, n in ipairs(names) do head[#head + 1] = csv_field(n) end
  head[#head + 1] = "ok"
  for _, n in ipairs(mnames) do head[#head + 1] = csv_field(n) end
  head[#head + 1] = "error"
  f:write(table.concat(head, ","), "\n")
  for _, r in ipairs(res.results) do
    local row = { r.trial, r.seed }
    for _, n in ipairs(names) do row[#row + 1] = csv_field(r.config[n]) end
    row[#row + 1] = tostring(r.ok)
    for _, n in ipairs(mnames) do
      row[#row + 1] = csv_field(r.metrics and r.metrics[n])
    end
    row[#row + 1] = csv_field(r.error)
    f:write(table.concat(row, ","), "\n")
  end
  f:close()
end

--- Runs run(config, {trial, seed}) over a space of hyperparameters.
-- o.space maps names to lists of values (grid and random) or to
-- distributions {uniform = {a, b}}, {log_uniform = {a, b}},
-- {int_uniform = {a, b}} (random; lg.exp.uniform(a, b) and friends make
-- them).  mode "grid" (the default) visits every combination, the names
-- in sorted order with the last varying fastest; "random" draws `trials`
-- (10) configurations from a generator seeded with `seed` (1).  Before
-- each trial lg.manual_seed and math.randomseed get the trial's own seed,
-- derived from `seed` and the trial's number, so a trial gives the same
-- result wherever it runs.  run returns a table of metrics (numbers,
-- strings, booleans; 0-d tensors are read) or one number, the metric.  An
-- error in run marks the trial ok = false with the message; the sweep
-- goes on.
--
-- jobs (1): trials at a time; 1 runs them here, more run each trial in a
-- fresh worker process (see "Sweeps" above; isolate = true does so with
-- jobs = 1 too).  threads (1): lgrad's threads in each trial, the same
-- whatever jobs is, since sums split over another number of threads round
-- differently: so jobs = 2 gives the very table jobs = 1 gives.
-- interpreter: the command that runs the workers (default the running
-- interpreter); quiet: drop the workers' output.  metric ("loss") and goal ("min" or "max") choose the best
-- trial; csv = path writes one row per trial.
--
-- Returns {results = {{trial, seed, config, ok, metrics, error}...},
-- best = {trial, config, metrics} (nil when no trial reported the
-- metric), metric, goal}.
function M.sweep(o)
  if type(o) ~= "table" then
    error("sweep: expected one table of options", 2)
  end
  for k in pairs(o) do
    if not sweep_keys[k] then
      error(fmt("sweep: unknown option '%s'", tostring(k)), 2)
    end
  end
  if type(o.run) ~= "function" then
    error("sweep: run must be a function(config) -> metrics", 2)
  end
  if type(o.space) ~= "table" then
    error("sweep: space must be a table {name = {values...}}", 2)
  end
  local mode = o.mode or "grid"
  if mode ~= "grid" and mode ~= "random" then
    error("sweep: mode must be \"grid\" or \"random\", got "
      .. tostring(mode), 2)
  end
  local trials = o.trials
  if mode == "grid" and trials ~= nil then
    error("sweep: trials is for mode = \"random\"", 2)
  end
  if mode == "random" then
    trials = positive("sweep", "trials", trials or 10, true)
  end
  local seed = o.seed or 1
  if math.type(seed) ~= "integer" then
    error("sweep: seed must be an integer", 2)
  end
  local jobs = positive("sweep", "jobs", o.jobs or 1, true)
  local threads = positive("sweep", "threads", o.threads or 1, true)
  local metric = o.metric or "loss"
  local goal = o.goal or "min"
  if goal ~= "min" and goal ~= "max" then
    error("sweep: goal must be \"min\" or \"max\"", 2)
  end
  local names, dists = {}, {}
  for name, spec in pairs(o.space) do
    if type(name) ~= "string" then
      error("sweep: space keys must be names", 2)
    end
    names[#names + 1] = name
    dists[name] = dist_of(name, spec)
  end
  table.sort(names)
  if #names == 0 then error("sweep: space is empty", 2) end

  local cfg = { mode = mode, trials = trials, seed = seed }
  local configs = configurations(cfg, names, dists)
  local list = {}
  for i, c in ipairs(configs) do
    list[i] = { trial = i, seed = trial_seed(seed, i), config = c }
  end

  local outcomes
  if jobs == 1 and not o.isolate then
    outcomes = {}
    local rng = lg.rng_state()
    local saved = lg.get_num_threads()
    lg.set_num_threads(threads)
    for i, t in ipairs(list) do outcomes[i] = run_trial(o.run, t, metric) end
    lg.set_num_threads(saved)
    lg.rng_state(rng)
  else
    local ok, graph, tensors = pcall(encode_graph, o.run, "run")
    if not ok then error("sweep: " .. graph, 2) end
    outcomes = run_workers({ graph = graph, tensors = tensors,
      jobs = math.min(jobs, #list),
      metric = metric, threads = threads, interpreter = o.interpreter,
      quiet = o.quiet }, list)
  end

  local res = { results = {}, metric = metric, goal = goal }
  local best_v
  for i, t in ipairs(list) do
    local out = outcomes[i]
    local r = { trial = i, seed = t.seed, config = t.config, ok = out.ok,
      metrics = out.metrics, error = out.error }
    res.results[i] = r
    local v = r.ok and r.metrics and r.metrics[metric]
    if type(v) == "number" and v == v then
      if best_v == nil or (goal == "min" and v < best_v)
          or (goal == "max" and v > best_v) then
        best_v = v
        res.best = { trial = i, config = t.config, metrics = r.metrics }
      end
    end
  end
  if o.csv then write_csv(o.csv, res, names) end
  return res
end

return M
