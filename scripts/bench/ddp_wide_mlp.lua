-- ddp-wide-mlp (../shared/bench/WORKLOADS.md): wide-mlp trained by N ranks
-- with lg.dist.DDP, 256 samples per rank, SGD momentum 0.9.
--
--   mpirun -np 2 [--oversubscribe --allow-run-as-root] \
--     build/lgrad --threads 1 scripts/bench/ddp_wide_mlp.lua [steps]
--
-- Rank 1 prints one JSON line: GFLOP/s of the whole job, the step time,
-- and the overlap evidence: steps whose backward runs inside ddp:no_sync
-- (no communication at all; they alternate with the timed ones, so both
-- see the same load, and are not counted in GFLOP/s), the time the end of
-- backward waited for buckets, and how many buckets started during
-- backward.
local lg = require "lgrad"
local dist = lg.dist
dist.init()
local steps = tonumber(arg[1]) or 20
local rank, size = dist.rank(), dist.world_size()
local per_rank = 256
local sizes = { 784, 2048, 2048, 10 }

lg.manual_seed(0)
local net = lg.nn.Sequential(lg.nn.Linear(784, 2048), lg.nn.ReLU(),
  lg.nn.Linear(2048, 2048), lg.nn.ReLU(), lg.nn.Linear(2048, 10))
local model = dist.DDP(net)
local opt = lg.optim.SGD(model:parameters(), { lr = 0.01, momentum = 0.9 })
lg.manual_seed(1 + rank) -- each rank its own samples
local x = lg.randn(per_rank, 784)
local y = lg.randint(1, 10, { per_rank })

-- one step; returns its time and its backward's
local function step(sync)
  local t0 = lg.clock()
  opt:zero_grad()
  local loss = lg.F.cross_entropy(model(x), y)
  local t = lg.clock()
  if sync then
    loss:backward()
  else
    model:no_sync(function() loss:backward() end)
  end
  local bw = lg.clock() - t
  opt:step()
  return lg.clock() - t0, bw
end

-- synchronised steps alternate with steps without any communication, so
-- that both see the same load on a shared machine
step(true); step(true); step(false)
dist.barrier()
local s0 = model:stats()
local dt, bw, dt_local, bw_local = 0, 0, 0, 0
for _ = 1, steps do
  local a, b = step(true)
  dt, bw = dt + a, bw + b
  a, b = step(false)
  dt_local, bw_local = dt_local + a, bw_local + b
end
-- the slowest rank's totals
local t = dist.all_reduce(lg.tensor({ dt, bw, dt_local, bw_local },
  { dtype = lg.float64 }), { op = "max" }):totable()
dt, bw, dt_local, bw_local = t[1], t[2], t[3], t[4]
local s1 = model:stats()

local macs = 0
for i = 1, #sizes - 1 do macs = macs + sizes[i] * sizes[i + 1] end
local flops = 3 * 2 * per_rank * size * macs * steps
if rank == 1 then
  print(string.format('{"metric": "gflops", "value": %.3f, "step_ms": %.2f, '
    .. '"world_size": %d, "backward_ms": %.2f, "backward_ms_no_comm": %.2f, '
    .. '"step_ms_no_comm": %.2f, "wait_ms": %.2f, "hook_ms": %.2f, '
    .. '"buckets_early": %d, '
    .. '"buckets_late": %d, "buckets": %d}',
    flops / dt / 1e9, 1000 * dt / steps, size, 1000 * bw / steps,
    1000 * bw_local / steps, 1000 * dt_local / steps,
    1000 * (s1.wait_seconds - s0.wait_seconds) / steps,
    1000 * (s1.hook_seconds - s0.hook_seconds) / steps,
    s1.launched_early - s0.launched_early, s1.launched_late - s0.launched_late,
    #model:buckets()))
end
