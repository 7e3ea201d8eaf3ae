-- The scalar-sgd workload of the side-by-side benchmark: fit y = 3x + 2
-- with two 0-d tensors w and b, one sample at a time, by plain SGD through
-- autograd: per sample loss = (w*x + b - y)^2, backward, p -= 0.01 * p.grad
-- without recording, grads cleared.  Prints the steps per second and the
-- fitted w and b, and fails unless they end near 3 and 2.
--
-- Usage: lgrad scripts/seed_scalar_sgd.lua [SAMPLES] [SEED]
--    or: lua5.4 scripts/seed_scalar_sgd.lua (with lgrad.so on LUA_CPATH)
local lg = require "lgrad"

local n = tonumber(arg and arg[1]) or 10000
local seed = tonumber(arg and arg[2]) or 0
local lr = 0.01

-- data: x, e ~ N(0, 1); y = 3x + 2 + 0.1e
local g = lg.Generator(seed)
local xs = lg.randn(n, {generator = g}):totable()
local es = lg.randn(n, {generator = g}):totable()

local w = lg.zeros({}, {requires_grad = true})
local b = lg.zeros({}, {requires_grad = true})

local function update()
  w:sub_(w.grad * lr)
  b:sub_(b.grad * lr)
end

local t0 = lg.clock()
for i = 1, n do
  local x = xs[i]
  local y = 3 * x + 2 + 0.1 * es[i]
  local loss = (w * x + b - y) ^ 2
  loss:backward()
  lg.no_grad(update)
  w.grad = nil
  b.grad = nil
end
local seconds = lg.clock() - t0

print(string.format("scalar-sgd: %d steps in %.3f s, %.0f steps/s", n,
                    seconds, n / seconds))
print(string.format("w = %.6f  b = %.6f  (true 3, 2)", w:item(), b:item()))

if n >= 1000 and (math.abs(w:item() - 3) > 0.05 or
                  math.abs(b:item() - 2) > 0.05) then
  error(string.format("scalar-sgd: did not converge (w = %g, b = %g)",
                      w:item(), b:item()))
end
