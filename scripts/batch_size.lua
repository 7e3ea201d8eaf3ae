-- Batch sizes 1, 32 and 256 compared: time and loss.
--
-- A linear regression (y = X w* + b* + 0.3 noise, 8192 samples, 20
-- features), SGD with the same lr 0.02 for every batch size, 4 epochs
-- each, the same data and shuffling seed.  What to look for:
--   time   an update has a fixed cost (Lua, op dispatch, small kernels)
--          besides its arithmetic, and batch 1 pays it 8192 times an
--          epoch: far slower per epoch than batch 256 doing the same flops.
--   loss   the gradient's noise variance falls as 1/B.  Batch 1 gets close
--          within the first epoch (8192 steps) but then bounces at a noise
--          floor of roughly lr * sigma^2 / B; batch 256 takes only 32 steps
--          an epoch, so it starts slowest but settles lowest.  A larger
--          batch can afford a larger lr (the linear scaling rule), which
--          this fixed-lr comparison deliberately leaves out.
-- Time is wall-clock (lg.clock).
--
-- Run: build/lgrad scripts/batch_size.lua
local lg = require "lgrad"

local N, D = 8192, 20
local LR, EPOCHS = 0.02, 4
local SIZES = {1, 32, 256}

lg.manual_seed(5)
local X = lg.randn(N, D)
local w_true = lg.randn(D, 1)
local y = X:matmul(w_true) + 0.5 + lg.randn(N, 1) * 0.3

local function model()
  return lg.zeros({D, 1}, {requires_grad = true}),
         lg.zeros({1}, {requires_grad = true})
end

local function mse(w, b, xb, yb)
  local r = xb:matmul(w) + b - yb
  return (r * r):mean()
end

local function full_loss(w, b)
  return lg.no_grad(function() return mse(w, b, X, y):item() end)
end

local best
do -- the least-squares optimum, by full-batch GD run to convergence
  local w, b = model()
  local opt = lg.optim.GD({w, b}, {lr = 0.2})
  for _ = 1, 200 do
    opt:zero_grad()
    mse(w, b, X, y):backward()
    opt:step()
  end
  best = full_loss(w, b)
end

local results = {}
for i, B in ipairs(SIZES) do
  local w, b = model()
  local opt = lg.optim.SGD({w, b}, {lr = LR})
  local loader = lg.data.DataLoader(lg.data.TensorDataset(X, y),
                                    {batch_size = B, shuffle = true,
                                     seed = 2})
  local r = {B = B, updates = 0, time = 0, per_epoch = {}}
  for epoch = 1, EPOCHS do
    local t0 = lg.clock()
    for xb, yb in loader:iter() do
      opt:zero_grad()
      mse(w, b, xb, yb):backward()
      opt:step()
      r.updates = r.updates + 1
    end
    r.time = r.time + lg.clock() - t0
    r.per_epoch[epoch] = full_loss(w, b) - best
  end
  results[i] = r
end

print(string.format("SGD, lr = %g, %d samples, %d features, %d epochs; " ..
                    "least-squares MSE = %.5f", LR, N, D, EPOCHS, best))
print(string.format("%6s %8s %10s %12s %14s", "batch", "updates",
                    "time (s)", "us / update", "excess MSE"))
for _, r in ipairs(results) do
  print(string.format("%6d %8d %10.3f %12.1f %14.3e", r.B, r.updates,
                      r.time, r.time / r.updates * 1e6,
                      r.per_epoch[EPOCHS]))
end
print()
print("excess MSE after each epoch")
local head = {string.format("%6s", "epoch")}
for _, r in ipairs(results) do
  head[#head + 1] = string.format("%12s", "batch " .. r.B)
end
print(table.concat(head, " "))
for e = 1, EPOCHS do
  local row = {string.format("%6d", e)}
  for _, r in ipairs(results) do
    row[#row + 1] = string.format("%12.3e", r.per_epoch[e])
  end
  print(table.concat(row, " "))
end
