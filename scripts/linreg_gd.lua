-- Linear regression by full-batch gradient descent.
--
-- Data: y = X w* + b* + noise with 1000 samples and 5 features.  The model
-- (w, b) starts at zero and takes plain gradient steps on the mean squared
-- error J(w, b) = mean((X w + b - y)^2): theta <- theta - lr * dJ/dtheta,
-- every step using all samples (lg.optim.GD).  The table shows the loss
-- falling to the least-squares optimum, computed independently by solving
-- the normal equations in plain Lua.
--
-- Run: build/lgrad scripts/linreg_gd.lua
local lg = require "lgrad"

local N, D = 1000, 5
local LR, STEPS = 0.1, 100
local w_true = {2.0, -3.0, 0.5, 1.5, -1.0}
local b_true = 0.7

lg.manual_seed(1)
local X = lg.randn(N, D, {dtype = lg.float64})
local noise = lg.randn(N, 1, {dtype = lg.float64}) * 0.1
local y = X:matmul(lg.tensor(w_true, {dtype = lg.float64}):view(D, 1))
          + b_true + noise

local w = lg.zeros({D, 1}, {dtype = lg.float64, requires_grad = true})
local b = lg.zeros({1}, {dtype = lg.float64, requires_grad = true})
local opt = lg.optim.GD({w, b}, {lr = LR})

local function loss_fn()
  local r = X:matmul(w) + b - y
  return (r * r):mean()
end

-- least squares in plain Lua: solve (A^T A) theta = A^T y, A = [X 1]
local function least_squares()
  local xs, ys = X:totable(), y:totable()
  local n = D + 1
  local M, v = {}, {}
  for i = 1, n do
    M[i], v[i] = {}, 0
    for j = 1, n do M[i][j] = 0 end
  end
  for s = 1, N do
    local a = {}
    for j = 1, D do a[j] = xs[s][j] end
    a[n] = 1
    for i = 1, n do
      v[i] = v[i] + a[i] * ys[s][1]
      for j = 1, n do M[i][j] = M[i][j] + a[i] * a[j] end
    end
  end
  for c = 1, n do -- Gaussian elimination with partial pivoting
    local p = c
    for r = c + 1, n do
      if math.abs(M[r][c]) > math.abs(M[p][c]) then p = r end
    end
    M[c], M[p], v[c], v[p] = M[p], M[c], v[p], v[c]
    for r = c + 1, n do
      local f = M[r][c] / M[c][c]
      for j = c, n do M[r][j] = M[r][j] - f * M[c][j] end
      v[r] = v[r] - f * v[c]
    end
  end
  local theta = {}
  for i = n, 1, -1 do
    local s = v[i]
    for j = i + 1, n do s = s - M[i][j] * theta[j] end
    theta[i] = s / M[i][i]
  end
  return theta
end

local function distance(theta, to)
  local d = 0
  for j = 1, D + 1 do d = d + (theta[j] - to[j]) ^ 2 end
  return math.sqrt(d)
end

local function current()
  local theta = {}
  for j, row in ipairs(w:totable()) do theta[j] = row[1] end
  theta[D + 1] = b:totable()[1]
  return theta
end

local best = least_squares()
local best_loss
do
  local save_w, save_b = w:clone(), b:clone()
  lg.no_grad(function()
    for j = 1, D do w[j] = best[j] end
    b[1] = best[D + 1]
  end)
  best_loss = lg.no_grad(loss_fn):item()
  lg.no_grad(function() w:copy_(save_w); b:copy_(save_b) end)
end

print(string.format("full-batch GD, lr = %g, %d samples, %d features",
                    LR, N, D))
print(string.format("%6s  %12s  %13s  %15s", "step", "MSE",
                    "MSE - optimum", "|theta - theta*|"))
local t0 = lg.clock()
for step = 0, STEPS do
  opt:zero_grad()
  local loss = loss_fn()
  if step % 10 == 0 or step < 5 then
    print(string.format("%6d  %12.8f  %13.3e  %15.3e", step, loss:item(),
                        loss:item() - best_loss, distance(current(), best)))
  end
  if step < STEPS then
    loss:backward()
    opt:step()
  end
end
local elapsed = lg.clock() - t0

print()
print(string.format("%-24s %12s  %s", "", "MSE", "w1 .. w5, b"))
local function row(name, theta, mse)
  local parts = {}
  for i = 1, D + 1 do parts[i] = string.format("%7.4f", theta[i]) end
  print(string.format("%-24s %12.8f  %s", name, mse, table.concat(parts, " ")))
end
local truth = {table.unpack(w_true)}
truth[D + 1] = b_true
row("true parameters", truth, (noise * noise):mean():item())
row("least squares (Lua)", best, best_loss)
row("gradient descent", current(), lg.no_grad(loss_fn):item())
print(string.format("theta* is the least-squares solution; GD ends %.2e " ..
                    "from it after %d steps (%.3f s)",
                    distance(current(), best), STEPS, elapsed))
