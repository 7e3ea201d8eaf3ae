-- Memory of attention, forward plus backward, against the sequence length.
--
--   lgrad scripts/bench/attention_memory.lua [fused|unfused] T [heads=4] [D=64]
--
-- Runs one forward and one backward of attention over (1, heads, T, D)
-- float32 inputs and prints, in kB: the peak resident set of the process
-- (VmHWM) above what it was before the inputs were made, and the peak of
-- lgrad's live-bytes counter sampled after the forward and after the
-- backward.  "fused" is lg.F.scaled_dot_product_attention (no T x T matrix
-- is held); "unfused" is softmax(q k^T / sqrt(D)) v from separate ops, for
-- contrast.  Run each size in its own process, so the peaks do not mix:
--   for T in 1024 2048 4096; do lgrad scripts/bench/attention_memory.lua fused $T; done
local lg = require "lgrad"

local kind = arg[1] or "fused"
local T = tonumber(arg[2]) or 1024
local H = tonumber(arg[3]) or 4
local D = tonumber(arg[4]) or 64

local function hwm_kb()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmHWM:%s*(%d+)"))
end

collectgarbage()
local base = hwm_kb()
local base_live = lg.memory_allocated()
lg.manual_seed(0)
local q = lg.randn({1, H, T, D}, {requires_grad = true})
local k = lg.randn({1, H, T, D}, {requires_grad = true})
local v = lg.randn({1, H, T, D}, {requires_grad = true})
local inputs = lg.memory_allocated() - base_live

local out
if kind == "fused" then
  out = lg.F.scaled_dot_product_attention(q, k, v, {is_causal = true})
else
  local mask = lg.range(1, T):view(T, 1):ge(lg.range(1, T):view(1, T))
  local s = q:matmul(k:transpose(-2, -1)) * (1 / math.sqrt(D))
  out = s:masked_fill(mask:eq(false), -math.huge):softmax(-1):matmul(v)
end
local after_fwd = lg.memory_allocated() - base_live
local loss = out:sum()
loss:backward()
local after_bwd = lg.memory_allocated() - base_live
print(("%s T=%d heads=%d D=%d: inputs %d kB, live after forward %d kB, "
  .. "after backward %d kB, peak RSS above start %d kB"):format(kind, T, H, D,
  inputs // 1024, after_fwd // 1024, after_bwd // 1024, hwm_kb() - base))
