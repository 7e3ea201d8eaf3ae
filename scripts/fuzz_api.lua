-- A fuzzer for the Lua API: calls every public function and method with
-- random argument lists (wrong types, nil, NaN, inf, huge and negative
-- sizes, empty and ragged tables, closed tensors, mismatched shapes and
-- dtypes, views of views), the tensor metamethods with random operands,
-- and the methods of the objects it made along the way (optimizers,
-- schedulers, modules, data loaders, regularizers, generators).  Every
-- failure must be a Lua error; a crash, an abort or a sanitizer report
-- ends the process and is a bug, and so is a call that does not return:
-- one that runs more than LGRAD_FUZZ_BUDGET Lua VM instructions (default
-- 2e8) stops the run with exit status 3.  A hang inside C is the caller's
-- to catch with a time limit (`timeout`).
--
-- Usage: lgrad scripts/fuzz_api.lua [calls=50000] [seed=1] [log]
-- With a log path, each call is written there before it runs, so the last
-- line names the call that crashed.  The run writes files (paths are
-- among the random arguments, numbers included), so start it in a scratch
-- directory.  LGRAD_FUZZ_SKIP="lg.plot.nice_ticks,Tensor:sort" leaves
-- those targets out (names as the log writes them; a name ending in "."
-- leaves out a whole module; "value:huge_len" a hostile argument), to
-- look past a known bug.  LGRAD_FUZZ_ONLY="lg.plot.,lg.nn." calls only
-- the functions, methods ("Tensor:sum", "Linear:state_dict") and
-- operators ("operator +") so named (or whose names start with an entry
-- ending in "." or ":"), to spend a run on a few modules; the objects
-- whose methods are called are made all the same.
local lg = require "lgrad"

local ncalls = tonumber(arg[1]) or 50000
local seed = tonumber(arg[2]) or 1
local log_path = arg[3]
local budget = tonumber(os.getenv("LGRAD_FUZZ_BUDGET")) or 2e8
math.randomseed(seed)
lg.manual_seed(seed)

local tmpdir = os.getenv("TMPDIR") or "/tmp"
local scratch = ("%s/lgrad-fuzz-%d-%d"):format(tmpdir, seed,
                                               math.random(1 << 30))
os.execute("mkdir -p " .. scratch)

local user_skip = {}
for name in (os.getenv("LGRAD_FUZZ_SKIP") or ""):gmatch("[^,%s]+") do
  user_skip[#user_skip + 1] = name
end
local only = {}
for name in (os.getenv("LGRAD_FUZZ_ONLY") or ""):gmatch("[^,%s]+") do
  only[#only + 1] = name
end
local function wanted(name)
  if #only == 0 then return true end
  for _, s in ipairs(only) do
    local last = s:sub(-1)
    if name == s or ((last == "." or last == ":") and
                     name:sub(1, #s) == s) then
      return true
    end
  end
  return false
end

local function skipped(name)
  for _, s in ipairs(user_skip) do
    if name == s or (s:sub(-1) == "." and name:sub(1, #s) == s) then
      return true
    end
  end
  return false
end

local function pick(t) return t[math.random(#t)] end
-- "value:huge_len" in LGRAD_FUZZ_SKIP: no table whose # is 2^40;
-- "value:table_object": no object that is a Lua table (modules, their
-- classes, loaders) passed as an argument, only as self: these hold
-- cycles (a class is its own __index), and so does a module made its own
-- child
-- "value:cycle": no table that contains itself
local skip_huge_len = skipped("value:huge_len")
local skip_cycle = skipped("value:cycle")
local skip_table_object = skipped("value:table_object")

-- ---- values ----
local numbers = {0, 1, -1, 2, 3, 4, 7, -3, 0.5, -0.0, 1.5, 0 / 0, math.huge,
                 -math.huge, 2 ^ 31, 2 ^ 40, 2 ^ 62, 1e300, -1e300,
                 math.mininteger, math.maxinteger, 1e-310, 100, 2.0, -2,
                 8, 9, 1 << 31, 1 << 32, -(1 << 40), 1e-8, 0.999}
local strings = {"float32", "float64", "int64", "bool", "double", "bad", "",
                 "mean", "sum", "none", "batchmean", "tanh", "max", "min",
                 "triangular", "triangular2", "exp_range", "rel", "abs",
                 "cos", "linear", "strong_wolfe", "ij,jk->ik", "i,i->",
                 "ij->ji", "ii->i", "a,b,c->", "->", "bij,bjk->bik",
                 "ij,j->i", "...ij->...ji", "i,j->ij", ",->", "ij,kl",
                 "grid", "random", "loss", "1", "-1", "0x10", "1e400",
                 "%s%s%n", ("x"):rep(300), "a\0b", "\255\254",
                 scratch .. "/f.safetensors", scratch .. "/f.npy",
                 scratch .. "/f.csv", scratch .. "/f.idx",
                 scratch .. "/missing", scratch,
                 "/nonexistent/dir/x.safetensors", "/dev/null"}

local function small_shape()
  local nd = math.random(0, 4)
  local s = {}
  for i = 1, nd do s[i] = math.random(0, 4) end
  return s
end

local tensor_makers = {
  function() return lg.randn(small_shape()) end,
  function() return lg.randn(3, 4) end,
  function() return lg.randn(2, 3, 4) end,
  function() return lg.randn(2, 1, 4, 4) end,
  function() return lg.randn(2, 3, 5, 5) end,
  function() return lg.randn(4, {dtype = "float64"}) end,
  function() return lg.randn(3, 3, {dtype = "float64", requires_grad = true}) end,
  function() return lg.randint(1, 4, small_shape()) end,
  function() return lg.randint(1, 3, {5}) end,
  function() return lg.randint(-5, 9, {3, 2}) end,
  function() return lg.tensor{math.maxinteger, math.mininteger, 0} end,
  function() return lg.tensor{true, false, true} end,
  function() return lg.rand(3, 4):gt(0.5) end,
  function() return lg.zeros({}) end,
  function() return lg.tensor(3.5) end,
  function() return lg.tensor(2):long() end,
  function() return lg.zeros(0) end,
  function() return lg.zeros(2, 0, 3) end,
  function() return lg.ones(1, 1, 1, 1, 1, 1, 1, 1) end,
  function() return lg.randn(4, 3):t() end,
  function() return lg.randn(5, 6):narrow(2, 2, 3) end,
  function() return lg.randn(3, 1):expand(3, 4) end,
  function() return lg.randn(1):expand(6) end,
  function() return lg.randn(4, 4):t():narrow(1, 2, 2):select(2, 1) end,
  function() return lg.randn(2, 3, 4):permute(3, 1, 2):narrow(1, 2, 2) end,
  function() return lg.randn(3, 3, {requires_grad = true}) end,
  function() return lg.randn(3, {requires_grad = true}) * 2 end,
  function() return (lg.randn(2, 3, {requires_grad = true}) + 1):t() end,
  function() local t = lg.randn(2); t:close(); return t end,
  function() local t = lg.randn(2, 3); local v = t:t(); t:close(); return v end,
  function() return lg.randn(2, 3):gt(0) end,
  function() return lg.tensor{{1.0, 2.0}, {3.0, 0 / 0}} end,
  function() return lg.full({2, 2}, math.huge) end,
  function() return lg.full({3}, -math.huge, {dtype = "float64"}) end,
  function() return lg.range(1, 6) end,
  function() return lg.randn(600) end,
}

local function make_tensor()
  local ok, t = pcall(pick(tensor_makers))
  return ok and t or lg.zeros(1)
end

local objects = {} -- optimizers, schedulers, generators, modules made so far

local tables = {
  function() return {} end,
  function() return {1, 2} end,
  function() return {2, 3} end,
  function() return {{1, 2}, {3}} end,
  function() return {1, {2}} end,
  function() return {-1, 4} end,
  function() return {0, 0} end,
  function() return {1, 2, 3, 4, 5, 6, 7, 8, 9} end,
  function() return {2 ^ 40, 2 ^ 40} end,
  function() return {1.5} end,
  function() return {[1] = 1, [3] = 3} end,
  function() return {dtype = "int64"} end,
  function() return {dtype = "nope"} end,
  function() return {dtype = pick(strings), requires_grad = true} end,
  function() return {requires_grad = true} end,
  function() return {reduction = "bad"} end,
  function() return {reduction = pick({"mean", "sum", "none"})} end,
  function() return {lr = pick(numbers), momentum = pick(numbers)} end,
  function() return {stride = pick(numbers), padding = pick(numbers)} end,
  function()
    return {stride = {1, 2}, padding = {0, 1}, dilation = pick(numbers),
            groups = pick(numbers)}
  end,
  function() return {dim = pick(numbers), keepdim = true} end,
  function() return {weight = make_tensor(), ignore_index = pick(numbers),
                     label_smoothing = pick(numbers)} end,
  function() return {make_tensor(), make_tensor()} end,
  function() return {make_tensor()} end,
  function() return {params = {make_tensor()}, lr = 0.1} end,
  function() return {{params = {make_tensor()}}, {params = {}}} end,
  function() return {batch_size = pick(numbers), shuffle = true,
                     drop_last = pick({true, false}), seed = pick(numbers)} end,
  function() return {step_size = pick(numbers), gamma = pick(numbers),
                     T_max = pick(numbers), total_iters = pick(numbers),
                     milestones = {2, 1}, max_lr = pick(numbers)} end,
  function() return {generator = lg.Generator(3)} end,
  function() return {keepdim = true} end,
  function() return {0 / 0, math.huge} end,
  function() return {state = {}, param_groups = {{lr = "x"}}} end,
  function() return {last_step = pick(numbers), _lr = {}} end,
  function()
    local t = {}
    if not skip_cycle then t[1] = t end
    return t
  end,
  function()
    local t = {}
    local cur = t
    for _ = 1, 200 do cur[1] = {} cur = cur[1] end
    return t
  end,
  function() return setmetatable({}, {__index = function() error("boom") end}) end,
  function()
    if skip_huge_len then return {} end
    return setmetatable({}, {__len = function() return 2 ^ 40 end})
  end,
  function() return {n = pick(numbers), pick(numbers), pick(numbers)} end,
  -- Torch7 index tables for t[{...}]: numbers, {}, {a}, {a, b}, {a, b, step}
  function()
    local idx = {}
    for k = 1, math.random(0, 4) do
      local r = math.random(5)
      if r == 1 then idx[k] = pick(numbers)
      elseif r == 2 then idx[k] = {}
      elseif r == 3 then idx[k] = {pick(numbers)}
      elseif r == 4 then idx[k] = {pick(numbers), pick(numbers)}
      else idx[k] = {pick(numbers), pick(numbers), pick(numbers)} end
    end
    return idx
  end,
  function() return {descending = true, dim = pick(numbers)} end,
  function() return {replacement = pick({true, false}), generator = lg.Generator(5)} end,
  function() return {nan = pick(numbers), posinf = pick(numbers),
                     neginf = pick(numbers)} end,
  function() return {return_inverse = true, return_counts = true} end,
  function() return {verbose = pick({true, false, 0, 1, 2, "auto"}),
                     log_every = pick(numbers)} end,
  -- chart options that reach the drawing (lg.plot): numbers of every
  -- kind as data, limits and log axes
  function()
    local xs, ys = {}, {}
    for i = 1, math.random(0, 6) do
      xs[i] = math.random(3) == 1 and pick(numbers) or i
      ys[i] = pick(numbers)
    end
    local o = {y = ys, logx = math.random(4) == 1, logy = math.random(4) == 1}
    if math.random(2) == 1 then o.x = xs end
    if math.random(4) == 1 then o.xmin = pick(numbers) end
    if math.random(4) == 1 then o.ymax = pick(numbers) end
    if math.random(4) == 1 then
      o = {series = {{"a", xs, ys}, {name = "b", y = ys}},
           markers = {{x = pick(numbers), label = "m"}},
           points = {{pick(numbers), pick(numbers), label = "p"}}}
    end
    return o
  end,
  function()
    local o = pick(objects)
    if o == nil or (skip_table_object and type(o) == "table") then
      return {}
    end
    return {o, o}
  end,
}

-- well-formed objects, so that their methods get fuzzed past the
-- constructors' checks: optimizers over leaves with gradients (some NaN),
-- schedulers over them, modules, loaders, regularizers
local function leaves()
  local ps = {}
  for i = 1, math.random(1, 3) do
    local p = lg.randn(math.random(1, 4), math.random(1, 4),
                       {requires_grad = true,
                        dtype = math.random(4) == 1 and "float64" or nil})
    if math.random(5) > 1 then
      p.grad = math.random(8) == 1 and lg.full(p:shape(), 0 / 0,
                                              {dtype = p:dtype()})
               or lg.randn(p:shape(), {dtype = p:dtype()})
    end
    if math.random(6) == 1 then -- a row-sparse gradient, as a table's
      p.grad = nil
      lg.F.embedding_bag(lg.randint(1, p:size(1), {3}), p,
                         lg.tensor({1, 3}, {dtype = "int64"}),
                         {mode = "sum", sparse = true}):sum():backward()
    end
    ps[i] = p
  end
  return ps
end
local optim_names, sched_opts = {}, {
  Step = {step_size = 2}, MultiStep = {milestones = {2, 4}},
  Exponential = {gamma = 0.9}, Cosine = {T_max = 10},
  CosineWarmRestarts = {T_0 = 3}, Linear = {}, Polynomial = {},
  OneCycle = {max_lr = 1, total_steps = 20},
  Cyclic = {base_lr = 0.01, max_lr = 0.1}, Plateau = {}, Constant = {},
  Lambda = {fn = function(e) return 0.9 ^ e end},
  Multiplicative = {fn = function() return 0.95 end},
}
for k in pairs(lg.optim) do optim_names[#optim_names + 1] = k end
table.sort(optim_names)
local sched_names = {}
for k in pairs(sched_opts) do sched_names[#sched_names + 1] = k end
table.sort(sched_names)
local function optimizer()
  return lg.optim[pick(optim_names)](leaves(), {lr = pick({0.1, 1e-3, 10})})
end
local factories = {
  optimizer,
  function()
    local name = pick(sched_names)
    return lg.sched[name](optimizer(), sched_opts[name])
  end,
  function() return lg.nn.Linear(3, 2) end,
  function() return lg.nn.Conv2d(1, 2, 3, {padding = 1}) end,
  function()
    return lg.nn.Sequential(lg.nn.Linear(4, 3), lg.nn.ReLU(),
                            lg.nn.Dropout(0.5), lg.nn.Linear(3, 2))
  end,
  function() return lg.nn.BatchNorm1d(3) end,
  function() return lg.nn.Embedding(5, 3) end,
  function()
    return lg.nn.EmbeddingBag(6, 3, {mode = pick({"sum", "mean", "max"}),
                                     sparse = true, padding_idx = 2})
  end,
  function() return lg.nn.LayerNorm(3) end,
  function() return lg.nn.LSTM(3, 2, {num_layers = 2, bidirectional = true}) end,
  function() return lg.nn.GRU(3, 2, {batch_first = true}) end,
  function() return lg.nn.RNN(3, 2, {nonlinearity = "relu"}) end,
  function() return lg.nn.LSTMCell(3, 2) end,
  function() return lg.nn.Conv1d(2, 3, 3, {padding = "same"}) end,
  function() return lg.nn.GroupNorm(1, 3) end,
  function() return lg.nn.RMSNorm(3) end,
  function() return lg.nn.ParameterList({lg.zeros(2)}) end,
  function() return lg.nn.CrossEntropyLoss({label_smoothing = 0.1}) end,
  function() return lg.data.CharTokenizer("abc") end,
  function() return lg.nn.MultiheadAttention(4, 2) end,
  function()
    return lg.nn.TransformerEncoderLayer(4, 2, {dim_feedforward = 8})
  end,
  function()
    local ds = lg.data.TensorDataset(lg.randn(10, 3), lg.randint(1, 3, {10}))
    return lg.data.DataLoader(ds, {batch_size = 3, shuffle = true,
                                   seed = 1, drop_last = math.random(2) == 1})
  end,
  function() return lg.reg.ElasticNet(0.1, 0.01) end,
  function() return lg.reg.MaxNorm(1) end,
}

local function value()
  local r = math.random(100)
  if r <= 30 then return make_tensor() end
  if r <= 55 then return pick(numbers) end
  if r <= 63 then return pick(strings) end
  if r <= 68 then return math.random(2) == 1 end
  if r <= 75 then return nil end
  if r <= 88 then return pick(tables)() end
  if r <= 92 and #objects > 0 then
    local o = pick(objects)
    if not (skip_table_object and type(o) == "table") then return o end
  end
  if r <= 96 then
    return pick({function() return lg.zeros(1) end,
                 function() error("user error") end,
                 function() error({}) end,
                 function(...) return ... end,
                 function() return 1 end})
  end
  return lg.Generator(math.random(1000))
end

-- ---- targets ----
local targets = {}
-- process-wide settings stay as they are, so a run is reproducible
local skip = {manual_seed = true, set_num_threads = true,
              set_default_dtype = true, clock = true, rng_state = true}
local function collect(prefix, t, depth)
  if depth > 2 then return end
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(keys) do
    local v = t[k]
    local name = prefix .. tostring(k)
    if type(v) == "function" and not skip[k] and not skipped(name) and
       wanted(name) then
      targets[#targets + 1] = {name, v}
    elseif type(v) == "table" and k ~= "Tensor" and k ~= "_io" and
           k ~= "_dist" then
      collect(name .. ".", v, depth + 1)
    end
  end
end
for _, sub in ipairs({"nn", "data", "train", "exp", "plot", "dist", "explain",
                      "privacy"}) do
  pcall(function() return lg[sub] end) -- loads the lazy submodules
end
pcall(function() return lg.nn.LSTM, lg.F.conv1d end) -- their lazy halves
collect("lg.", lg, 0)
-- lg.exp is the exponential called as a function and the experiment
-- module (lgrad.exp) indexed as a table: pairs does not see its fields
do
  local ok, exp = pcall(require, "lgrad.exp")
  if ok and type(exp) == "table" then collect("lg.exp.", exp, 1) end
end
-- methods are called with a tensor first
local methods = {}
for k, v in pairs(lg.Tensor) do
  if type(v) == "function" and not skipped("Tensor:" .. k) and
     wanted("Tensor:" .. k) then
    methods[#methods + 1] = {k, v}
  end
end
table.sort(methods, function(a, b) return a[1] < b[1] end)

-- the methods of an object made by a call: its metatable's __index table
-- (and the tables it inherits from), or its own functions
-- methods of objects whose __index is a function (the C optimizers and
-- schedulers), found by asking for each of these names
local probe_names = {"step", "zero_grad", "state_dict", "load_state_dict",
                     "add_param_group", "get_lr", "get_last_lr", "step_to",
                     "close", "penalty", "apply", "prox", "base_lrs",
                     "param_groups", "last_step", "forward", "parameters",
                     "iter", "train", "eval"}
local function object_methods(o)
  local found, seen = {}, {}
  local mt0 = getmetatable(o)
  if type(mt0) == "table" and type(rawget(mt0, "__index")) == "function" then
    for _, k in ipairs(probe_names) do
      local ok, v = pcall(function() return o[k] end)
      if ok and type(v) == "function" then found[k] = v end
    end
  end
  local function scan(t, depth)
    if type(t) ~= "table" or seen[t] or depth > 4 then return end
    seen[t] = true
    for k, v in pairs(t) do
      if type(k) == "string" and type(v) == "function" and not found[k] then
        found[k] = v
      end
    end
    local mt = getmetatable(t)
    if type(mt) == "table" and type(rawget(mt, "__index")) == "table" then
      scan(rawget(mt, "__index"), depth + 1)
    end
  end
  local mt = getmetatable(o)
  if type(o) == "table" then scan(o, 0) end
  if type(mt) == "table" then
    if type(rawget(mt, "__index")) == "table" then
      scan(rawget(mt, "__index"), 0)
    end
    scan(mt, 0) -- metamethods too: __call, __len, __tostring, __gc, ...
  end
  local list = {}
  for k, v in pairs(found) do
    -- __gc is the collector's; calling it by hand is not an API
    if k ~= "__gc" then list[#list + 1] = {k, v} end
  end
  table.sort(list, function(a, b) return a[1] < b[1] end)
  return list
end

-- the tensor metamethods, with random operands on either side
local operators = {
  {"+", function(a, b) return a + b end},
  {"-", function(a, b) return a - b end},
  {"*", function(a, b) return a * b end},
  {"/", function(a, b) return a / b end},
  {"^", function(a, b) return a ^ b end},
  {"%", function(a, b) return a % b end},
  {"//", function(a, b) return a // b end},
  {"unm", function(a) return -a end},
  {"#", function(a) return #a end},
  {"..", function(a, b) return a .. b end},
  {"==", function(a, b) return a == b end},
  {"<", function(a, b) return a < b end},
  {"tostring", function(a) return tostring(a) end},
  {"index", function(a, b) return a[b] end},
  {"newindex", function(a, b, c) a[b] = c end},
  {"call", function(a, ...) return a(...) end},
  {"close", function(a)
    local t <close> = a -- luacheck: ignore 211
  end},
}

if #only > 0 then
  local kept = {}
  for _, op in ipairs(operators) do
    if wanted("operator " .. op[1]) then kept[#kept + 1] = op end
  end
  operators = kept
end

-- heavy or environment-bound entries get safe arguments only
local heavy = {["lg.data.fashion_mnist"] = true}

local log = log_path and io.open(log_path, "w")
local function describe(args, n)
  local parts = {}
  for i = 1, n do
    local a = args[i]
    if lg.is_tensor(a) then
      local ok, s = pcall(function()
        return ("tensor(%s %s)"):format(a:dtype(), table.concat(a:shape(), "x"))
      end)
      parts[i] = ok and s or "tensor(closed)"
    elseif type(a) == "string" then
      parts[i] = ("%q"):format(#a > 40 and a:sub(1, 40) .. "..." or a)
    elseif type(a) == "table" or type(a) == "userdata" then
      -- no __tostring: it runs the object's code, which may raise
      local mt = getmetatable(a)
      local class = type(mt) == "table" and rawget(mt, "__name")
      parts[i] = ("%s(%s)"):format(type(a), type(class) == "string" and
                                   class or "")
    else
      parts[i] = tostring(a)
    end
  end
  return table.concat(parts, ", ")
end

-- a call that runs past the instruction budget is a hang
local current = ""
local executed = 0
local function count_hook()
  executed = executed + 1e6
  if executed > budget then
    io.stderr:write(("fuzz: %s does not return (over %.0f VM " ..
                     "instructions), seed %d\n"):format(current, budget, seed))
    io.stderr:flush()
    os.exit(3)
  end
end

local counts = {calls = 0, errors = 0}
local t0 = os.clock()
for i = 1, ncalls do
  local name, fn, args, n
  local kind = math.random(100)
  local function tensor_method()
    local m = pick(methods)
    name, fn = "Tensor:" .. m[1], m[2]
    n = math.random(1, 5)
    args = {make_tensor()}
    for j = 2, n do args[j] = value() end
  end
  if kind <= 40 and #methods > 0 then
    tensor_method()
  elseif kind <= 48 and #operators > 0 then
    local op = pick(operators)
    name, fn = "operator " .. op[1], op[2]
    n = 3
    args = {value(), value(), value()}
    if math.random(2) == 1 then args[1] = make_tensor()
    else args[2] = make_tensor() end
  elseif kind > 48 and kind <= 52 then
    local f = pick(factories)
    name, fn, n, args = "make object", f, 0, {}
  elseif kind <= 64 and #objects > 0 then
    local o = pick(objects)
    local ms = object_methods(o)
    if #ms > 0 then
      local m = pick(ms)
      local mt = getmetatable(o)
      local class = type(mt) == "table" and rawget(mt, "__name")
      name = ("%s:%s"):format(type(class) == "string" and class or type(o),
                              m[1])
      fn = m[2]
      n = math.random(1, 4)
      args = {o}
      for j = 2, n do args[j] = value() end
      if math.random(10) == 1 then args[1] = value() end -- wrong self
      if not wanted(name) then fn = nil end
    end
  end
  if not fn and #targets == 0 then
    if #methods == 0 then error("fuzz: LGRAD_FUZZ_ONLY leaves nothing") end
    tensor_method()
  end
  if not fn then
    local t = pick(targets)
    name, fn = t[1], t[2]
    n = math.random(0, 5)
    args = {}
    for j = 1, n do args[j] = value() end
    if heavy[name] then n, args = 1, {"nope"} end
  end
  current = ("call %d %s(%s)"):format(i, name, describe(args, n))
  if log then
    log:write(current, "\n")
    log:flush()
  end
  executed = 0
  debug.sethook(count_hook, "", 1000000)
  local ok, r = pcall(fn, table.unpack(args, 1, n))
  debug.sethook()
  counts.calls = counts.calls + 1
  if not ok then
    counts.errors = counts.errors + 1
    -- a user function's error({}) may come back as it was raised
    if type(r) ~= "string" and type(r) ~= "table" then
      error(("call %d %s raised a non-string error (%s)"):format(i, name,
                                                             type(r)))
    end
  elseif (type(r) == "userdata" and not lg.is_tensor(r)) or
         (type(r) == "table" and getmetatable(r) ~= nil) then
    if #objects < 60 then objects[#objects + 1] = r
    else objects[math.random(#objects)] = r end
  end
  if i % 5000 == 0 then collectgarbage() end
end
if log then log:close() end
os.execute("rm -rf " .. scratch)
print(("fuzz: %d calls (%d raised Lua errors), seed %d, %d targets + %d " ..
       "methods, %.1f s"):format(counts.calls, counts.errors, seed, #targets,
                                 #methods, os.clock() - t0))
