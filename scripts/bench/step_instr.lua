-- a + b on two 4x4 tensors, N times, for step_instr.sh
-- usage: lgrad step_instr.lua N
local lg = require "lgrad"
local n = tonumber(arg[1])
local a, b = lg.randn(4, 4), lg.randn(4, 4)
local c
for _ = 1, n do c = a + b end
print(c:sum():item())
