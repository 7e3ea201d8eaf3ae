-- The lgrad side of the side-by-side benchmark: the workloads of
-- ../shared/bench/WORKLOADS.md, written as a user of lg.F and lg.optim
-- would write them.  Usage: lgrad workloads.lua WORKLOAD [--threads N]
-- [--steps N] (scalar-sgd's and dlrm-sparse's step count, for
-- scripts/bench/step_instr.sh) [--rows N] (dlrm-sparse's table size)
-- Prints one line of JSON, as peers/torch_bench.py does.
local lg = require "lgrad"

local FMNIST = os.getenv("FMNIST_DIR") or "/usr/share/datasets/fashion-mnist"

local function json(t)
  local parts = {}
  for k, v in pairs(t) do
    local s = type(v) == "string" and ('"' .. v .. '"') or
              (math.type(v) == "integer" and tostring(v) or
               string.format("%.6g", v))
    parts[#parts + 1] = '"' .. k .. '": ' .. s
  end
  table.sort(parts)
  return "{" .. table.concat(parts, ", ") .. "}"
end

-- a Linear layer's parameters with PyTorch's default initialization
local function linear_params(fan_in, fan_out)
  local bound = 1 / math.sqrt(fan_in)
  local w = lg.empty(fan_out, fan_in):uniform_(-bound, bound)
  local b = lg.empty(fan_out):uniform_(-bound, bound)
  return w:requires_grad_(), b:requires_grad_()
end

local function mlp(sizes)
  local params, layers = {}, {}
  for i = 1, #sizes - 1 do
    local w, b = linear_params(sizes[i], sizes[i + 1])
    layers[i] = {w, b}
    params[#params + 1] = w
    params[#params + 1] = b
  end
  local F = lg.F
  local function forward(x)
    for i, l in ipairs(layers) do
      x = F.linear(x, l[1], l[2])
      if i < #layers then x = x:relu() end
    end
    return x
  end
  return forward, params
end

local W = {}

function W.scalar_sgd(steps)
  local g = lg.Generator(0)
  local n = steps or 10000
  local xs = lg.randn(n, {generator = g}):totable()
  local es = lg.randn(n, {generator = g}):totable()
  local w = lg.zeros({}, {requires_grad = true})
  local b = lg.zeros({}, {requires_grad = true})
  local lr = 0.01
  local t = lg.clock()
  for i = 1, n do
    local x = xs[i]
    local y = 3 * x + 2 + 0.1 * es[i]
    local loss = (w * x + b - y) ^ 2
    loss:backward()
    lg.no_grad(function()
      w:sub_(w.grad * lr)
      b:sub_(b.grad * lr)
    end)
    w.grad = nil
    b.grad = nil
  end
  local dt = lg.clock() - t
  return {metric = "steps_per_s", value = n / dt, w = w:item(),
          b = b:item()}
end

local function fmnist(split)
  local x, y = lg.data.fashion_mnist(split, {dir = FMNIST})
  return x:view(x:size(1), 784), y
end

function W.mlp_fmnist()
  lg.manual_seed(0)
  local x, y = fmnist("train")
  local xt, yt = fmnist("test")
  local forward, params = mlp({784, 256, 128, 10})
  local opt = lg.optim.Adam(params, {lr = 1e-3})
  local bs = 128
  local t = lg.clock()
  local perm = lg.randperm(x:size(1))
  for i = 1, x:size(1), bs do
    local j = perm:narrow(1, i, math.min(bs, x:size(1) - i + 1))
    local loss = lg.F.cross_entropy(forward(x:index_select(1, j)),
                                    y:index_select(1, j))
    opt:zero_grad()
    loss:backward()
    opt:step()
  end
  local dt = lg.clock() - t
  local acc = lg.no_grad(function()
    return forward(xt):argmax(2):eq(yt):double():mean():item()
  end)
  return {metric = "epoch_s", value = dt, test_acc = acc}
end

function W.wide_mlp()
  lg.manual_seed(0)
  local sizes = {784, 2048, 2048, 10}
  local bs, steps = 512, 20
  local forward, params = mlp(sizes)
  local opt = lg.optim.SGD(params, {lr = 0.01, momentum = 0.9})
  local x = lg.randn(bs, 784)
  local y = lg.randint(1, 10, {bs})
  local function step()
    opt:zero_grad()
    lg.F.cross_entropy(forward(x), y):backward()
    opt:step()
  end
  step(); step()
  local t = lg.clock()
  for _ = 1, steps do step() end
  local dt = lg.clock() - t
  local macs = 0
  for i = 1, #sizes - 1 do macs = macs + sizes[i] * sizes[i + 1] end
  local flops = 3 * 2 * bs * macs * steps
  return {metric = "gflops", value = flops / dt / 1e9,
          step_ms = 1000 * dt / steps}
end

function W.cnn_fmnist()
  lg.manual_seed(0)
  local x, y = lg.data.fashion_mnist("train", {dir = FMNIST})
  x = x:view(x:size(1), 1, 28, 28)
  local function conv_params(cin, cout, k)
    local fan_in = cin * k * k
    local bound = 1 / math.sqrt(fan_in)
    return lg.empty(cout, cin, k, k):uniform_(-bound, bound):requires_grad_(),
           lg.empty(cout):uniform_(-bound, bound):requires_grad_()
  end
  local c1w, c1b = conv_params(1, 32, 3)
  local c2w, c2b = conv_params(32, 64, 3)
  local f1w, f1b = linear_params(64 * 7 * 7, 128)
  local f2w, f2b = linear_params(128, 10)
  local params = {c1w, c1b, c2w, c2b, f1w, f1b, f2w, f2b}
  local F = lg.F
  local function forward(v)
    v = F.max_pool2d(F.conv2d(v, c1w, c1b, {padding = 1}):relu(), 2)
    v = F.max_pool2d(F.conv2d(v, c2w, c2b, {padding = 1}):relu(), 2)
    v = v:flatten(2)
    v = F.linear(F.linear(v, f1w, f1b):relu(), f2w, f2b)
    return v
  end
  local opt = lg.optim.Adam(params, {lr = 1e-3})
  local bs, steps = 64, 200
  local perm = lg.randperm(x:size(1))
  local loss
  local t = lg.clock()
  for s = 1, steps do
    local j = perm:narrow(1, (s - 1) * bs + 1, bs)
    loss = F.cross_entropy(forward(x:index_select(1, j)), y:index_select(1, j))
    opt:zero_grad()
    loss:backward()
    opt:step()
  end
  local dt = lg.clock() - t
  return {metric = "steps_per_s", value = steps / dt, loss = loss:item()}
end

-- the cost of one small op from Lua (issue figure): a + b on 4 floats
function W.small_op()
  local a, b = lg.ones(4), lg.ones(4)
  local c
  local n = 1000000
  for _ = 1, 1000 do c = a + b end
  local t = lg.clock()
  for _ = 1, n do c = a + b end
  local dt = lg.clock() - t
  assert(c)
  return {metric = "us_per_op", value = dt / n * 1e6}
end

-- a 1024^3 float32 matmul from Lua, in GFLOP/s
function W.matmul()
  local n = 1024
  local a, b = lg.randn(n, n), lg.randn(n, n)
  local c = a:matmul(b)
  local reps = 10
  local t = lg.clock()
  for _ = 1, reps do c = a:matmul(b) end
  local dt = lg.clock() - t
  assert(c)
  return {metric = "gflops", value = 2 * n * n * n * reps / dt / 1e9}
end

-- dlrm-sparse (scripts/bench/WORKLOADS.md): a DLRM-style click model, 8
-- tables of `rows` x 16 with sparse gradients (SparseAdam), bottom MLP
-- 13-64-16, dot-product interactions, top MLP 52-64-32-1, Adam, BCE
local bench_rows = 1000000

function W.dlrm_sparse(nsteps)
  lg.manual_seed(0)
  local T, B, D, NF, steps, warm = bench_rows, 2048, 16, 8, nsteps or 50, 5
  local F = lg.F
  local tables = {}
  for f = 1, NF do
    tables[f] = lg.empty(T, D):uniform_(-0.05, 0.05):requires_grad_()
  end
  local bottom, bottom_params = mlp({13, 64, D})
  local top, top_params = mlp({D + NF * (NF + 1) // 2, 64, 32, 1})
  local dense_params = {}
  for _, p in ipairs(bottom_params) do dense_params[#dense_params + 1] = p end
  for _, p in ipairs(top_params) do dense_params[#dense_params + 1] = p end
  local sparse_opt = lg.optim.SparseAdam(tables, {lr = 1e-3})
  local dense_opt = lg.optim.Adam(dense_params, {lr = 1e-3})
  -- the strict lower triangle of the 9 x 9 dot products, flat 1-based
  local tri = {}
  for i = 2, NF + 1 do
    for j = 1, i - 1 do tri[#tri + 1] = (i - 1) * (NF + 1) + j end
  end
  tri = lg.tensor(tri, {dtype = lg.int64})
  -- 8 batches cycled; ids Zipf-like (P(k) ~ 1/k): floor((T + 1)^u)
  local batches = {}
  for k = 1, 8 do
    local ids = {}
    for f = 1, NF do
      ids[f] = (lg.rand(B, 1):mul(math.log(T + 1)):exp():floor():long())
        :clamp(1, T)
    end
    batches[k] = {x = lg.randn(B, 13), ids = ids,
                  y = lg.rand(B):lt(0.25):float()}
  end
  local function step(b)
    local x = bottom(b.x)
    local vs = {x}
    for f = 1, NF do
      vs[f + 1] = F.embedding_bag(b.ids[f], tables[f],
                                  {mode = "sum", sparse = true})
    end
    local z = lg.stack(vs, 2)
    local zz = lg.matmul(z, z:transpose(2, 3)):view(B, (NF + 1) * (NF + 1))
    local logit = top(lg.cat({x, zz:index_select(2, tri)}, 2)):view(B)
    local loss = F.bce_with_logits(logit, b.y)
    sparse_opt:zero_grad()
    dense_opt:zero_grad()
    loss:backward()
    sparse_opt:step()
    dense_opt:step()
    return loss
  end
  for s = 1, warm do step(batches[s % 8 + 1]) end
  local loss
  local times = {}
  local t, c = lg.clock(), os.clock()
  for s = 1, steps do
    local t1 = lg.clock()
    loss = step(batches[s % 8 + 1])
    times[s] = lg.clock() - t1
  end
  local dt, dc = lg.clock() - t, os.clock() - c
  table.sort(times)
  -- on a loaded machine the wall clock mostly measures the others: the
  -- median and fastest single steps, and the process's CPU time per step
  -- (all threads), say more about the step itself
  return {metric = "steps_per_s", value = steps / dt,
          step_ms = 1000 * dt / steps, cpu_ms = 1000 * dc / steps,
          median_ms = 1000 * times[steps // 2], min_ms = 1000 * times[1],
          rows = T, loss = loss:item()}
end

local name = arg[1]
local threads, steps = 2, nil
for i = 2, #arg do
  if arg[i] == "--threads" then threads = tonumber(arg[i + 1]) end
  if arg[i] == "--rows" then bench_rows = math.tointeger(tonumber(arg[i + 1])) end
  if arg[i] == "--steps" then steps = tonumber(arg[i + 1]) end
end
local fn = name and W[name:gsub("-", "_")]
if not fn then
  io.stderr:write("usage: workloads.lua WORKLOAD [--threads N]\n")
  os.exit(2)
end
lg.set_num_threads(threads)
local r = fn(steps)
r.workload = name
r.threads = threads
r.peer = "lgrad-" .. lg.version
print(json(r))
