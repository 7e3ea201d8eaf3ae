-- Stochastic gradient descent on mini-batches, against full-batch GD.
--
-- The linear regression of linreg_gd.lua (y = X w* + b* + noise, 1000
-- samples, 5 features).  Mini-batch SGD takes one step per batch of 32
-- shuffled samples (lg.data.DataLoader), so an epoch is 32 updates for the
-- price of one pass over the data; full-batch GD takes one update per pass.
-- The table compares them epoch by epoch on the loss over all the data.
-- With a constant learning rate SGD stops improving at a noise floor set
-- by the gradient noise (see lr_decay.lua for the cure).
--
-- Run: build/lgrad scripts/minibatch_sgd.lua
local lg = require "lgrad"

local N, D = 1000, 5
local BATCH, LR, EPOCHS = 32, 0.05, 12
local w_true = {2.0, -3.0, 0.5, 1.5, -1.0}
local b_true = 0.7

lg.manual_seed(1)
local X = lg.randn(N, D, {dtype = lg.float64})
local y = X:matmul(lg.tensor(w_true, {dtype = lg.float64}):view(D, 1))
          + b_true + lg.randn(N, 1, {dtype = lg.float64}) * 0.1

local function model()
  local w = lg.zeros({D, 1}, {dtype = lg.float64, requires_grad = true})
  local b = lg.zeros({1}, {dtype = lg.float64, requires_grad = true})
  return w, b
end

local function mse(w, b, xb, yb)
  local r = xb:matmul(w) + b - yb
  return (r * r):mean()
end

local function full_loss(w, b)
  return lg.no_grad(function() return mse(w, b, X, y):item() end)
end

-- the least-squares optimum's loss, by GD run to convergence
local function optimum()
  local w, b = model()
  local opt = lg.optim.GD({w, b}, {lr = 0.1})
  for _ = 1, 300 do
    opt:zero_grad()
    mse(w, b, X, y):backward()
    opt:step()
  end
  return full_loss(w, b)
end
local best = optimum()

-- SGD on mini-batches
local sw, sb = model()
local sgd = lg.optim.SGD({sw, sb}, {lr = LR})
local loader = lg.data.DataLoader(lg.data.TensorDataset(X, y),
                                  {batch_size = BATCH, shuffle = true,
                                   seed = 7})
-- full-batch GD with the same learning rate
local gw, gb = model()
local gd = lg.optim.GD({gw, gb}, {lr = LR})

print(string.format("mini-batch SGD (batch %d) vs full-batch GD, lr = %g; " ..
                    "least-squares MSE = %.6f", BATCH, LR, best))
print(string.format("%5s | %7s %12s %10s | %7s %12s %10s", "epoch",
                    "updates", "SGD MSE", "SGD time", "updates", "GD MSE",
                    "GD time"))
local s_updates, g_updates, s_time, g_time = 0, 0, 0, 0
print(string.format("%5d | %7d %12.6f %9.3fs | %7d %12.6f %9.3fs", 0, 0,
                    full_loss(sw, sb), 0, 0, full_loss(gw, gb), 0))
for epoch = 1, EPOCHS do
  local t0 = lg.clock()
  for xb, yb in loader:iter() do
    sgd:zero_grad()
    mse(sw, sb, xb, yb):backward()
    sgd:step()
    s_updates = s_updates + 1
  end
  s_time = s_time + lg.clock() - t0
  t0 = lg.clock()
  gd:zero_grad()
  mse(gw, gb, X, y):backward()
  gd:step()
  g_updates = g_updates + 1
  g_time = g_time + lg.clock() - t0
  print(string.format("%5d | %7d %12.6f %9.3fs | %7d %12.6f %9.3fs", epoch,
                      s_updates, full_loss(sw, sb), s_time, g_updates,
                      full_loss(gw, gb), g_time))
end
print(string.format("after %d epochs: SGD is %.2e above the optimum, GD " ..
                    "%.2e", EPOCHS, full_loss(sw, sb) - best,
                    full_loss(gw, gb) - best))
