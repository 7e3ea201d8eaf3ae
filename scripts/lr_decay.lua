-- Fixed vs exponential vs step learning-rate decay for mini-batch SGD.
--
-- A linear regression with noisy targets (y = X w* + b* + 0.5 noise, 2000
-- samples, 5 features), SGD with batches of 8 and the same starting
-- learning rate 0.05 for three schedules:
--   fixed        lr stays 0.05
--   exponential  lr * 0.8 after every epoch   (lg.sched.Exponential)
--   step         lr * 0.2 every 5 epochs      (lg.sched.Step)
-- Every run sees the same batches in the same order.  The table gives the
-- excess loss over all the data (MSE minus the least-squares optimum)
-- after each epoch.  A constant rate stalls at a noise floor proportional
-- to lr; decaying the rate lets SGD average the noise away and go lower.
--
-- Run: build/lgrad scripts/lr_decay.lua
local lg = require "lgrad"

local N, D = 2000, 5
local BATCH, LR, EPOCHS = 8, 0.05, 20
local w_true = {2.0, -3.0, 0.5, 1.5, -1.0}

lg.manual_seed(3)
local X = lg.randn(N, D, {dtype = lg.float64})
local y = X:matmul(lg.tensor(w_true, {dtype = lg.float64}):view(D, 1))
          + 0.7 + lg.randn(N, 1, {dtype = lg.float64}) * 0.5

local function model()
  return lg.zeros({D, 1}, {dtype = lg.float64, requires_grad = true}),
         lg.zeros({1}, {dtype = lg.float64, requires_grad = true})
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
  local opt = lg.optim.GD({w, b}, {lr = 0.1})
  for _ = 1, 300 do
    opt:zero_grad()
    mse(w, b, X, y):backward()
    opt:step()
  end
  best = full_loss(w, b)
end

local schedules = {
  {name = "fixed", make = function() return nil end},
  {name = "exponential", make = function(opt)
    return lg.sched.Exponential(opt, {gamma = 0.8})
  end},
  {name = "step", make = function(opt)
    return lg.sched.Step(opt, {step_size = 5, gamma = 0.2})
  end},
}

-- excess[s][epoch] and lr[s][epoch]
local excess, lrs = {}, {}
for s, sc in ipairs(schedules) do
  local w, b = model()
  local opt = lg.optim.SGD({w, b}, {lr = LR})
  local sched = sc.make(opt)
  local loader = lg.data.DataLoader(lg.data.TensorDataset(X, y),
                                    {batch_size = BATCH, shuffle = true,
                                     seed = 11})
  excess[s], lrs[s] = {}, {}
  for epoch = 1, EPOCHS do
    lrs[s][epoch] = opt.param_groups[1].lr
    for xb, yb in loader:iter() do
      opt:zero_grad()
      mse(w, b, xb, yb):backward()
      opt:step()
    end
    if sched then sched:step() end
    excess[s][epoch] = full_loss(w, b) - best
  end
end

print(string.format("SGD, batch %d, lr0 = %g; excess MSE over the " ..
                    "least-squares optimum (%.5f) after each epoch",
                    BATCH, LR, best))
local head = {string.format("%5s", "epoch")}
for _, sc in ipairs(schedules) do
  head[#head + 1] = string.format("%9s %11s", "lr", sc.name)
end
print(table.concat(head, " | "))
for epoch = 1, EPOCHS do
  local row = {string.format("%5d", epoch)}
  for s = 1, #schedules do
    row[#row + 1] = string.format("%9.2e %11.3e", lrs[s][epoch],
                                  excess[s][epoch])
  end
  print(table.concat(row, " | "))
end

-- the last five epochs' mean, to smooth the noise
local summary = {}
for s, sc in ipairs(schedules) do
  local m = 0
  for e = EPOCHS - 4, EPOCHS do m = m + excess[s][e] end
  summary[#summary + 1] = string.format("%s %.2e", sc.name, m / 5)
end
print("mean excess over the last 5 epochs: " .. table.concat(summary, ", "))
