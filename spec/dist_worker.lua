-- The program spec/dist_spec.lua runs on two ranks under mpirun:
--   lgrad spec/dist_worker.lua MODE DIR
-- MODE "all" checks the collectives, DistributedDataParallel, no_sync,
-- ZeroOptimizer, the distributed DataLoader and fit, printing
-- "CHECK <name> ok" or "CHECK <name> FAIL <detail>" and a few "VALUE"
-- lines; "kill" and "raise" lose rank 2 in the middle of training.
local lg = require "lgrad"
local dist = lg.dist
local mode, dir = arg[1], arg[2]

dist.init { timeout = mode == "all" and 60 or 2 }
local rank, size = dist.rank(), dist.world_size()

local function say(...)
  io.stdout:write(string.format("[%d] ", rank), string.format(...), "\n")
  io.stdout:flush()
end

local function check(name, ok, detail)
  say("CHECK %s %s%s", name, ok and "ok" or "FAIL",
    ok and "" or " " .. tostring(detail))
end

local function maxdiff(a, b)
  return (a:double() - b:double()):abs():max():item()
end

-- a small MLP; seed decides its initial weights
local function mlp(seed)
  lg.manual_seed(seed)
  return lg.nn.Sequential(lg.nn.Linear(6, 12), lg.nn.Tanh(),
    lg.nn.Linear(12, 12), lg.nn.Tanh(), lg.nn.Linear(12, 3))
end

local function params_diff(m1, m2)
  local d, p2 = 0, m2:parameters()
  for i, p in ipairs(m1:parameters()) do d = math.max(d, maxdiff(p, p2[i])) end
  return d
end

-- the largest difference between this rank's parameters and rank 1's
local function across_ranks(m)
  local d = 0
  for _, p in ipairs(m:parameters()) do
    local all = dist.all_gather(p:detach())
    for r = 2, #all do d = math.max(d, maxdiff(all[1], all[r])) end
  end
  return d
end

if mode == "kill" or mode == "raise" then
  local net = lg.nn.Linear(4, 2)
  local ddp = dist.DDP(net)
  local opt = lg.optim.SGD(ddp:parameters(), { lr = 0.1 })
  for step = 1, 50 do
    if rank == 2 and step == 3 then
      if mode == "raise" then error("rank 2 gives up") end
      local f = io.open("/proc/self/stat")
      local pid = f:read("n")
      f:close()
      os.execute("kill -9 " .. pid)
    end
    opt:zero_grad()
    ddp(lg.randn(3, 4)):sum():backward()
    opt:step()
  end
  say("finished")
  return
end

---------------------------------------------------------------------------
-- collectives

check("size", size == 2, size)
for _, dtype in ipairs { "float32", "float64", "int64" } do
  local base = lg.tensor({ { 1, -2, 3 }, { 4, 5, -6 } }, { dtype = dtype })
  local mine = base * rank -- rank 1: base, rank 2: 2 base
  local want = {
    sum = base * 3, max = lg.maximum(base, base * 2),
    min = lg.minimum(base, base * 2),
    mean = dtype == "int64"
      and lg.tensor({ { 1, -3, 4 }, { 6, 7, -9 } }, { dtype = dtype })
      or base * 1.5,
  }
  for _, op in ipairs { "sum", "mean", "max", "min" } do
    local w = want[op]
    local t = mine:clone()
    dist.all_reduce(t, { op = op })
    check("all_reduce " .. dtype .. " " .. op, maxdiff(t, w) == 0,
      tostring(t))
    -- a transposed view is reduced in place too
    local tt = mine:clone():t()
    dist.all_reduce(tt, { op = op })
    check("all_reduce strided " .. dtype .. " " .. op,
      maxdiff(tt, w:t()) == 0, tostring(tt))
  end
end
do
  local b = lg.tensor({ true, false, rank == 2, false })
  local any, all = b:clone(), b:clone()
  dist.all_reduce(any, { op = "max" })
  dist.all_reduce(all, { op = "min" })
  check("all_reduce bool", any:totable()[3] == true and all:totable()[1]
    and not all:totable()[3] and not any:totable()[2], tostring(any))
  local ok, err = pcall(dist.all_reduce, b, { op = "mean" })
  check("bool mean raises", not ok and err:find("bool"), err)
end
do -- counts split into pieces of 3 elements
  lg._dist.set_max_count(3)
  local t = lg.range(1, 10):double() * rank
  dist.all_reduce(t, { op = "sum" })
  check("split all_reduce", maxdiff(t, lg.range(1, 10):double() * 3) == 0)
  local bt = rank == 1 and lg.range(1, 7) or lg.zeros({ 7 }, { dtype = lg.int64 })
  dist.broadcast(bt, 1)
  check("split broadcast", maxdiff(bt, lg.range(1, 7)) == 0)
  local g = dist.all_gather(lg.range(1, 7) * rank)
  check("split all_gather", maxdiff(g[1], lg.range(1, 7)) == 0
    and maxdiff(g[2], lg.range(1, 7) * 2) == 0)
  local rs = dist.reduce_scatter(lg.range(1, 14):double():view(2, 7))
  check("split reduce_scatter", maxdiff(rs,
    (lg.range(1, 14):double():view(2, 7) * 2):narrow(1, rank, 1)) == 0,
    tostring(rs))
  lg._dist.set_max_count(0x7FFFFFFF)
end
do
  local t = lg.full({ 2, 2 }, rank)
  local w = dist.all_reduce_async(t, { op = "sum" })
  check("async all_reduce", maxdiff(w:wait(), lg.full({ 2, 2 }, 3)) == 0)
  local rs = dist.reduce_scatter(lg.range(1, 4):double():view(4, 1),
    { op = "mean" })
  check("reduce_scatter mean", maxdiff(rs, lg.range(1, 4):double():view(4, 1)
    :narrow(1, 2 * rank - 1, 2)) == 0, tostring(rs))
end

---------------------------------------------------------------------------
-- DistributedDataParallel: halves of each batch on two ranks against the
-- whole batch in one process

lg.manual_seed(11)
local X, Y = lg.randn(16, 6), lg.randn(16, 3)
local half = 16 // size
local xs, ys = X:narrow(1, (rank - 1) * half + 1, half),
    Y:narrow(1, (rank - 1) * half + 1, half)

local function mse(out, y) return ((out - y) ^ 2):mean() end

local function run(kind, make_opt)
  local net = mlp(100 + rank)        -- different on each rank before wrap
  local ddp = dist.DDP(net, { bucket_mb = 0.0004 })
  local ref = mlp(100 + rank)
  ref:load_state_dict(net:state_dict()) -- rank 1's weights, after wrap
  local opt, ropt = make_opt(ddp:parameters()), make_opt(ref:parameters(), true)
  if kind == "zero" then opt = dist.ZeroOptimizer(opt) end
  for _ = 1, 20 do
    opt:zero_grad()
    if kind == "no_sync" then
      local q = half // 2
      ddp:no_sync(function()
        (mse(ddp(xs:narrow(1, 1, q)), ys:narrow(1, 1, q)) / 2):backward()
      end)
      local l2 = mse(ddp(xs:narrow(1, q + 1, q)), ys:narrow(1, q + 1, q)) / 2
      l2:backward()
    else
      mse(ddp(xs), ys):backward()
    end
    opt:step()
    ropt:zero_grad()
    mse(ref(X), Y):backward()
    ropt:step()
  end
  local d, a = params_diff(net, ref), across_ranks(net)
  say("VALUE %s vs_one_process %.3g across_ranks %.3g", kind, d, a)
  check("ddp " .. kind .. " equals one process", d < 1e-5, d)
  check("ddp " .. kind .. " equal across ranks", a == 0, a)
  return ddp, opt, ref, ropt
end

local ddp = run("sgd", function(p)
  return lg.optim.SGD(p, { lr = 0.1, momentum = 0.9 })
end)
local st = ddp:stats()
check("buckets start during backward", st.launched_early >= 20 * 2
  and st.launched_late == 0, st.launched_early .. "/" .. st.launched_late)
do
  local named = ddp:named_parameters()
  check("bucket layout: reverse order", #ddp:buckets() >= 2
    and ddp:buckets()[1][1] == named[#named][1], ddp:buckets()[1][1])
end
run("no_sync", function(p) return lg.optim.SGD(p, { lr = 0.1 }) end)
local _, zopt, _, ropt = run("zero", function(p)
  return lg.optim.Adam(p, { lr = 0.01 })
end)
do
  local total = 0
  for _, s in pairs(ropt:state_dict().state) do
    for _, v in pairs(s) do if lg.is_tensor(v) then total = total + v:numel() end end
  end
  local mine = zopt:local_numel()
  local sum = dist.all_reduce(lg.tensor({ mine }), { op = "sum" }):item()
  say("VALUE zero local_numel %d of %d", mine, total)
  check("zero shards the state", mine < total and sum == total,
    mine .. " " .. sum .. " " .. total)
  local full, want = zopt:state_dict().state, ropt:state_dict().state
  local d = 0
  for i, s in pairs(want) do
    for k, v in pairs(s) do
      if lg.is_tensor(v) then d = math.max(d, maxdiff(full[i][k], v)) end
    end
  end
  check("zero state_dict gathers everything", d < 1e-5, d)
  if rank == 1 then lg.save(dir .. "/zero.safetensors", { state = full }) end
end

-- parameters that get no gradient on one rank do not stall the others
do
  local net = mlp(5)
  local ddp2 = dist.DDP(net)
  local out = ddp2(xs)
  local loss = rank == 1 and mse(out, ys) or (out:narrow(2, 1, 1) * 0):sum()
  loss:backward()
  check("unused parameters reduced", net:parameters()[1].grad ~= nil)
end

-- models that differ: the same error on both ranks
do
  lg.manual_seed(1)
  local net = lg.nn.Sequential(lg.nn.Linear(6, rank == 1 and 12 or 13))
  local ok, err = pcall(dist.DDP, net)
  say("MISMATCH %s", ok and "none" or err)
end

---------------------------------------------------------------------------
-- DataLoader{distributed = true}

for _, n in ipairs { 10, 11 } do
  local ds = lg.data.TensorDataset(lg.range(1, n))
  for _, drop in ipairs { false, true } do
    local loader = lg.data.DataLoader(ds, { batch_size = 1, shuffle = true,
      distributed = true, drop_last = drop, seed = 5 + rank })
    local mine = {}
    for xb in loader:iter() do
      for _, v in ipairs(xb:totable()) do mine[#mine + 1] = v end
    end
    local per = drop and n // 2 or (n + 1) // 2
    local pad = {}
    for i = 1, per do pad[i] = mine[i] or 0 end
    local all = dist.all_gather(lg.tensor(pad, { dtype = lg.int64 }))
    local seen, dup = {}, 0
    for r = 1, 2 do
      for _, v in ipairs(all[r]:totable()) do
        if seen[v] then dup = dup + 1 end
        seen[v] = true
      end
    end
    local count = 0
    for _ in pairs(seen) do count = count + 1 end
    local want_dup = (not drop and n % 2 == 1) and 1 or 0
    local want_count = drop and 2 * (n // 2) or n
    check(string.format("sampler n=%d drop_last=%s", n, drop),
      #mine == per and dup == want_dup and count == want_count,
      string.format("%d samples, %d repeated, %d distinct", #mine, dup, count))
  end
end

---------------------------------------------------------------------------
-- fit: averaged metrics, rank 1 writes

do
  local net = mlp(3)
  local model = dist.DDP(net)
  local ds = lg.data.TensorDataset(X, Y)
  local loader = lg.data.DataLoader(ds, { batch_size = 4, shuffle = true,
    distributed = true, seed = 9 })
  local opt = dist.ZeroOptimizer(lg.optim.Adam(model:parameters(),
    { lr = 0.01 }))
  local h = lg.train.fit { model = model, loss = mse, optimizer = opt,
    data = loader, epochs = 2, progress = false,
    callbacks = { lg.train.Checkpoint { path = dir .. "/ckpt.safetensors",
      monitor = "loss" },
      lg.train.CSVLogger { path = dir .. "/log" .. rank .. ".csv" } } }
  local losses = dist.all_gather(lg.tensor(h.loss, { dtype = lg.float64 }))
  check("fit loss averaged over ranks", maxdiff(losses[1], losses[2]) == 0)
  local f = io.open(dir .. "/log2.csv")
  if f then f:close() end
  check("only rank 1 logs", f == nil)
  dist.barrier()
  local ck = lg.load(dir .. "/ckpt.safetensors")
  check("checkpoint written", ck.epoch == 2 and ck.optimizer ~= nil)
end
say("finished")
