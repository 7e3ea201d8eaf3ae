-- L1 vs L2 regularization on a sparse linear regression.
--
-- 20 features, of which only the first 4 matter (w* = 3, -2, 1.5, -1, then
-- zeros); 100 noisy training samples, 2000 test samples.  Full-batch GD,
-- lr 0.05, 2000 steps, the bias not regularized.  Penalties follow
-- lg.reg's convention: L1(l) = l * sum |w|, L2(l) = l / 2 * sum w^2.
--   none           the data loss alone
--   L2             + L2(0.05):penalty(w): shrinks every weight toward 0,
--                  none becomes 0
--   L1 subgradient + L1(0.15):penalty(w), differentiated by autograd: the
--                  gradient step with sign(w) overshoots zero every time, so
--                  the irrelevant weights chatter around 0 at about lr * l
--                  and are almost never exactly 0
--   L1 proximal    a GD step on the data loss, then L1(0.15):prox(w, lr),
--                  the soft-threshold w <- sign(w) max(|w| - lr * l, 0)
--                  (ISTA): a weight whose data gradient cannot pull it past
--                  lr * l lands on exactly 0 and stays there
-- The table counts exact zeros among the 16 irrelevant weights.  Both L1
-- variants shrink the relevant weights a little too (the lasso's bias), so
-- their test error is no better than the plain fit's here: the gain is a
-- model that says which features it ignores.
--
-- Run: build/lgrad scripts/l1_vs_l2.lua
local lg = require "lgrad"

local D, RELEVANT = 20, 4
local N_TRAIN, N_TEST = 100, 2000
local LR, STEPS = 0.05, 2000
local w_star = {3.0, -2.0, 1.5, -1.0}
for j = RELEVANT + 1, D do w_star[j] = 0 end

lg.manual_seed(9)
local f64 = {dtype = lg.float64}
local W = lg.tensor(w_star, f64):view(D, 1)
local function sample(n)
  local x = lg.randn(n, D, f64)
  return x, x:matmul(W) + 0.5 + lg.randn(n, 1, f64) * 0.5
end
local Xtr, ytr = sample(N_TRAIN)
local Xte, yte = sample(N_TEST)

local function mse(w, b, x, y)
  local r = x:matmul(w) + b - y
  return (r * r):mean()
end

local function fit(method)
  local w = lg.zeros({D, 1}, {dtype = lg.float64, requires_grad = true})
  local b = lg.zeros({1}, {dtype = lg.float64, requires_grad = true})
  local opt = lg.optim.GD({w, b}, {lr = LR})
  local l1, l2 = lg.reg.L1(0.15), lg.reg.L2(0.05)
  for _ = 1, STEPS do
    opt:zero_grad()
    local loss = mse(w, b, Xtr, ytr)
    if method == "L2" then
      loss = loss + l2:penalty({w})
    elseif method == "L1 subgradient" then
      loss = loss + l1:penalty({w})
    end
    loss:backward()
    opt:step()
    if method == "L1 proximal" then l1:prox({w}, LR) end
  end
  local ws = {}
  for j, row in ipairs(w:totable()) do ws[j] = row[1] end
  return {
    w = ws,
    train = lg.no_grad(function() return mse(w, b, Xtr, ytr):item() end),
    test = lg.no_grad(function() return mse(w, b, Xte, yte):item() end),
  }
end

local methods = {"none", "L2", "L1 subgradient", "L1 proximal"}
local fits = {}
for i, m in ipairs(methods) do fits[i] = fit(m) end

print(string.format("sparse regression: %d features, %d relevant, %d " ..
                    "training samples; GD lr %g, %d steps", D, RELEVANT,
                    N_TRAIN, LR, STEPS))
print(string.format("%-15s %10s %10s %12s %14s %14s", "method",
                    "train MSE", "test MSE", "exact zeros", "max |w_irr|",
                    "|w_rel - w*|"))
for i, m in ipairs(methods) do
  local f = fits[i]
  local zeros, max_irr, err = 0, 0, 0
  for j = 1, D do
    if j <= RELEVANT then
      err = err + (f.w[j] - w_star[j]) ^ 2
    else
      if f.w[j] == 0 then zeros = zeros + 1 end
      max_irr = math.max(max_irr, math.abs(f.w[j]))
    end
  end
  print(string.format("%-15s %10.5f %10.5f %9d/%d %14.3e %14.4f", m,
                      f.train, f.test, zeros, D - RELEVANT, max_irr,
                      math.sqrt(err)))
end

print()
print("weights (features 1-4 relevant, the rest irrelevant)")
local head = {string.format("%4s %7s", "j", "w*")}
for _, m in ipairs(methods) do head[#head + 1] = string.format("%14s", m) end
print(table.concat(head, " "))
for j = 1, 10 do
  local row = {string.format("%4d %7.2f", j, w_star[j])}
  for i = 1, #methods do
    row[#row + 1] = string.format("%14.6g", fits[i].w[j])
  end
  print(table.concat(row, " "))
end
print(string.format("(features 11-%d are left out of this table)", D))
