-- ddp-wide-mlp (../shared/bench/WORKLOADS.md): wide-mlp trained by N ranks
-- with lg.dist.DDP, 256 samples per rank, SGD momentum 0.9.
--
--   mpirun -np 2 [--oversubscribe --allow-run-as-root] \
--     build/lgrad --threads 1 scripts/bench/ddp_wide_mlp.lua [steps]
--
-- Rank 1 prints one JSON line: GFLOP/s of the whole job, the step time,
-- and the overlap evidence: the same steps with every backward inside
-- ddp:no_sync (no communication at all), the time the end of backward
-- waited for buckets, and how many buckets started during backward.
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

local bw_time = 0
local function step(sync)
  opt:zero_grad()
  local loss = lg.F.cross_entropy(model(x), y)
  local t = lg.clock()
  if sync then
    loss:backward()
  else
    model:no_sync(function() loss:backward() end)
  end
  bw_time = bw_time + lg.clock() - t
  opt:step()
end

local function timed(sync)
  step(sync); step(sync)
  dist.barrier()
  bw_time = 0
  local t = lg.clock()
  for _ = 1, steps do step(sync) end
  dist.barrier()
  return lg.clock() - t, bw_time
end

local s0 = model:stats()
local dt, bw = timed(true)
local s1 = model:stats()
local dt_local, bw_local = timed(false)

local macs = 0
for i = 1, #sizes - 1 do macs = macs + sizes[i] * sizes[i + 1] end
local flops = 3 * 2 * per_rank * size * macs * steps
if rank == 1 then
  print(string.format('{"metric": "gflops", "value": %.3f, "step_ms": %.2f, '
    .. '"world_size": %d, "backward_ms": %.2f, "backward_ms_no_comm": %.2f, '
    .. '"step_ms_no_comm": %.2f, "wait_ms": %.2f, "buckets_early": %d, '
    .. '"buckets_late": %d, "buckets": %d}',
    flops / dt / 1e9, 1000 * dt / steps, size, 1000 * bw / steps,
    1000 * bw_local / steps, 1000 * dt_local / steps,
    1000 * (s1.wait_seconds - s0.wait_seconds) / steps,
    s1.launched_early - s0.launched_early, s1.launched_late - s0.launched_late,
    #model:buckets()))
end
