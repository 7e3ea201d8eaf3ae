-- Matrix factorization for ratings (recommender), with L2 regularization.
--
--   lgrad scripts/recommend_mf.lua [--small] [--epochs N] [--l2 X] ...
--
-- The ratings come from a known low-rank model plus noise: user u rates
-- item i as mu + b_u + c_i + <p_u, q_i> + noise, for a random tenth of the
-- (user, item) pairs.  A model with more factors than the truth is fitted
-- to 90% of the ratings on the squared error plus an L2 penalty on the
-- factors, and measured on the held-out 10%: its RMSE is set against the
-- noise floor (the RMSE of the true model, which knows everything but the
-- noise) and against predicting the training mean.
--
-- The embeddings are sparse (nn.Embedding{sparse = true}) and trained by
-- SparseAdam, so a step touches only the users and items of its batch.
-- The penalty lambda/2 (|P|^2 + |Q|^2) is spread over the ratings: each
-- rating (u, i) carries lambda/2 (|p_u|^2 / n_u + |q_i|^2 / n_i), with n_u
-- and n_i the training ratings of u and i, which sums to the same objective
-- while its gradient stays on the batch's rows.
-- --small (or LGRAD_SMALL=1) uses 100 users, 80 items and 3 epochs.
local lg = require "lgrad"
local nn = lg.nn
local F = lg.F

local S = dofile((arg and arg[0] and arg[0]:match("^(.*)/") or "scripts")
  .. "/scenario.lua")
local o = S.options(arg, { users = 2000, items = 1000, density = 0.1,
  rank = 5, factors = 8, noise = 0.5, epochs = 25, batch = 1024,
  lr = 0.03, l2 = 10, seed = 1 })
if o.small then o.users, o.items, o.epochs = 100, 80, math.min(o.epochs, 3) end
lg.manual_seed(o.seed)
local t_start = lg.clock()

-- ---- ratings from a known model ----

local g = lg.Generator(o.seed)
local U, I, K = o.users, o.items, o.rank
local true_p = lg.randn({ U, K }, { generator = g }) / math.sqrt(K)
local true_q = lg.randn({ I, K }, { generator = g })
local true_bu = lg.randn({ U }, { generator = g }) * 0.3
local true_bi = lg.randn({ I }, { generator = g }) * 0.5
local mu = 3.5

-- a random subset of the pairs: draw n distinct flat indices
local n = math.floor(U * I * o.density)
local flat = lg.randperm(U * I, { generator = g }):narrow(1, 1, n)
local row = ((flat - 1):double() / I):floor()
local users = row:long() + 1
local items = ((flat - 1):double() - row * I):long() + 1
local clean = (true_p:index_select(1, users) * true_q:index_select(1, items))
  :sum(2) + true_bu:index_select(1, users) + true_bi:index_select(1, items)
  + mu
local ratings = clean + lg.randn({ n }, { generator = g }) * o.noise
local pairs_ui = lg.stack({ users, items }, 2) -- (n, 2): user, item

local ntest = n // 10
local test_idx = lg.range(1, ntest)
local train_idx = lg.range(ntest + 1, n)
local xtr, ytr = pairs_ui:index_select(1, train_idx),
  ratings:index_select(1, train_idx)
local xte, yte = pairs_ui:index_select(1, test_idx),
  ratings:index_select(1, test_idx)
print(string.format("%d users, %d items, %d ratings (%d held out); true "
  .. "rank %d, noise sd %.2f", U, I, n, ntest, K, o.noise))

-- ---- the model ----

local MF = nn.Module:extend("MatrixFactorization")

function MF:init(nusers, nitems, k, mean)
  local sparse = { sparse = true }
  self.user = nn.Embedding(nusers, k, sparse)
  self.item = nn.Embedding(nitems, k, sparse)
  self.user_bias = nn.Embedding(nusers, 1, sparse)
  self.item_bias = nn.Embedding(nitems, 1, sparse)
  nn.init.normal_(self.user.weight, 0, 0.1)
  nn.init.normal_(self.item.weight, 0, 0.1)
  nn.init.zeros_(self.user_bias.weight)
  nn.init.zeros_(self.item_bias.weight)
  self.mean = mean
end

-- x: (B, 2) user and item ids -> (B) predicted ratings.  With weights
-- (lambda/2 / n_u, lambda/2 / n_i per user and item) set, training also
-- leaves the batch's share of the penalty in self.penalty.
function MF:forward(x)
  local u, i = x:select(2, 1), x:select(2, 2)
  local pu, qi = self.user(u), self.item(i)
  if self.training and self.weights then
    local wu, wi = self.weights[1], self.weights[2]
    self.penalty = (pu:pow(2):sum(2) * wu:index_select(1, u)
      + qi:pow(2):sum(2) * wi:index_select(1, i)):mean()
  end
  return (pu * qi):sum(2) + self.user_bias(u):squeeze(2)
    + self.item_bias(i):squeeze(2) + self.mean
end

local train_mean = ytr:mean():item()
local ntrain = ytr:size(1)
local train = lg.data.DataLoader(lg.data.TensorDataset(xtr, ytr),
  { batch_size = o.batch, shuffle = true, seed = o.seed })
local test = lg.data.DataLoader(lg.data.TensorDataset(xte, yte),
  { batch_size = ntest })

-- training ratings per user and per item
local function counts(col, size)
  return lg.zeros(size):index_add(1, xtr:select(2, col), lg.ones(ntrain))
end
local n_user, n_item = counts(1, U), counts(2, I)

-- fits a fresh model with penalty lambda; returns it and fit's history
local function fit_mf(lambda, progress)
  lg.manual_seed(o.seed)
  local model = MF(U, I, o.factors, train_mean)
  -- the objective is (sum of squared errors + lambda/2 |factors|^2) / N:
  -- per batch, the mean over its ratings of the squared error plus each
  -- rating's share of the penalty
  model.weights = { (n_user:clamp(1, math.huge)):reciprocal() * (lambda / 2),
                    (n_item:clamp(1, math.huge)):reciprocal() * (lambda / 2) }
  local function loss(pred, target)
    local mse = F.mse_loss(pred, target)
    return model.training and mse + model.penalty or mse
  end
  local opt = lg.optim.SparseAdam(model:parameters(), { lr = o.lr })
  local history = lg.train.fit {
    model = model, loss = loss, optimizer = opt, data = train, val = test,
    epochs = o.epochs, progress = progress,
    scheduler = lg.sched.Cosine(opt, { T_max = o.epochs }),
    metrics = { rmse = function(pred, target)
      return F.mse_loss(pred, target):sqrt():item()
    end },
  }
  return model, history
end

local function test_rmse(model)
  model:eval()
  local pred = lg.no_grad(function() return model(xte) end)
  return F.mse_loss(pred, yte):sqrt():item()
end

print(MF(U, I, o.factors, train_mean))
local model, history = fit_mf(o.l2)
local rmse = test_rmse(model)
local rmse_plain
if not o.small then
  print("the same without the L2 penalty ...")
  rmse_plain = test_rmse(fit_mf(0, false))
end

-- ---- results ----

local floor = F.mse_loss(clean:index_select(1, test_idx), yte):sqrt():item()
local mean_rmse = (yte - train_mean):pow(2):mean():sqrt():item()
print(string.format("predicting the training mean: RMSE %.4f", mean_rmse))
print(string.format("noise floor (the true model): RMSE %.4f", floor))
if rmse_plain then
  print(string.format("without L2 (lambda = 0): RMSE %.4f", rmse_plain))
end
print(string.format("test RMSE: %.4f (%.1f%% above the noise floor; %d "
  .. "epochs, %.1f s)", rmse, 100 * (rmse / floor - 1), #history.loss,
  lg.clock() - t_start))
