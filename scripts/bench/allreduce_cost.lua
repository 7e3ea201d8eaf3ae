-- All-reduce time against message size, for the cost model in README.md.
--
--   mpirun -np 2 [--mca btl self,vader | --mca btl self,tcp] \
--     build/lgrad --threads 1 scripts/bench/allreduce_cost.lua [max_mb]
--
-- float32 messages from 4 KB up to max_mb (default 64) MB, each size
-- all-reduced (sum) several times after a barrier; rank 1 prints one line
-- per size: bytes, median milliseconds, and the bus bandwidth
-- 2(N-1)/N x bytes / time in GB/s (what each rank sends and receives in a
-- ring all-reduce).
local lg = require "lgrad"
local dist = lg.dist
dist.init()
local max_bytes = (tonumber(arg[1]) or 64) * 1024 * 1024
local n = dist.world_size()
if dist.is_main() then
  print(string.format("# %d ranks; bytes  median_ms  busbw_GBps", n))
end
local bytes = 4096
while bytes <= max_bytes do
  local t = lg.ones(bytes // 4)
  local reps = math.max(3, math.min(30, (16 * 1024 * 1024) // bytes))
  dist.all_reduce(t)
  local times = {}
  for i = 1, reps do
    dist.barrier()
    local t0 = lg.clock()
    dist.all_reduce(t)
    times[i] = lg.clock() - t0
  end
  -- the slowest rank's time of each repetition
  local all = dist.all_reduce(lg.tensor(times, { dtype = lg.float64 }),
    { op = "max" }):totable()
  table.sort(all)
  local med = all[(#all + 1) // 2]
  if dist.is_main() then
    print(string.format("%d %.4f %.3f", bytes, med * 1000,
      2 * (n - 1) / n * bytes / med / 1e9))
  end
  bytes = bytes * 4
end
