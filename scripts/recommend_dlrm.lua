-- A DLRM-style click model on synthetic click logs (recommender at scale).
--
--   lgrad scripts/recommend_dlrm.lua [--small] [--train N] [--epochs N] ...
--
-- The logs come from a known model: 13 dense features x ~ N(0, 1) and 8
-- categorical features whose ids follow a Zipf law (P(id = k) ~ k^-zipf)
-- over tables of 10^5 to 2 x 10^6 values; a click happens with probability
-- sigmoid(b + <w, x> + sum_f a_f[id_f] + sum_{f<g} <v_f[id_f], v_g[id_g]>),
-- with per-id effects a_f and rank-4 vectors v_f drawn at random.
--
-- The model is Naumov et al.'s DLRM (2019): a bottom MLP 13-64-16 for the
-- dense features, one EmbeddingBag(n_f, 16, {sparse = true}) per feature,
-- the 36 pairwise dot products of those 9 vectors, a top MLP 52-64-32-1,
-- binary cross-entropy.  The tables train with SparseAdam (each step
-- touches only the rows its batch used), the MLPs with Adam.  Reported:
-- held-out AUC beside the AUC of the true model (which knows every id's
-- effect, also those seen too rarely to learn), and samples per second.
-- --small (or LGRAD_SMALL=1): tables of 10^3 to 2 x 10^4 and 60K samples.
local lg = require "lgrad"
local nn = lg.nn
local F = lg.F

local S = dofile((arg and arg[0] and arg[0]:match("^(.*)/") or "scripts")
  .. "/scenario.lua")
local o = S.options(arg, { train = 2000000, test = 200000, epochs = 1,
  batch = 2048, dim = 16, zipf = 1.2, lr = 1e-3, sparse_lr = 0.01,
  seed = 1 })
local sizes = { 100000, 200000, 300000, 500000, 800000, 1200000, 1600000,
  2000000 }
if o.small then
  for f = 1, #sizes do sizes[f] = sizes[f] // 100 end
  o.train, o.test = math.min(o.train, 60000), math.min(o.test, 20000)
end
local NF, ND, K = #sizes, 13, 4
lg.manual_seed(o.seed)
local t_start = lg.clock()

-- ---- click logs from a known model ----

local g = lg.Generator(o.seed)
local true_w = lg.randn({ ND }, { generator = g }) * 0.3
local true_a, true_v = {}, {}
for f = 1, NF do
  true_a[f] = lg.randn({ sizes[f] }, { generator = g }) * 0.5
  true_v[f] = lg.randn({ sizes[f], K }, { generator = g }) * 0.3
end
local true_bias = -1.2

-- ids 1..n with P(k) ~ k^-s: the inverse CDF of the continuous power law
-- on [1, n + 1), floored
local function zipf_ids(n, count, s)
  local u = lg.rand({ count }, { generator = g, dtype = lg.float64 })
  local top = (n + 1) ^ (1 - s)
  return ((u * (top - 1) + 1):pow(1 / (1 - s))):floor():long():clamp(1, n)
end

-- count samples: dense (count, 13), ids (count, 8), true logits, clicks
local function draw(count)
  local x = lg.randn({ count, ND }, { generator = g })
  local ids, logit = {}, x:matmul(true_w) + true_bias
  local vs = {}
  for f = 1, NF do
    ids[f] = zipf_ids(sizes[f], count, o.zipf)
    logit = logit + true_a[f]:index_select(1, ids[f])
    vs[f] = true_v[f]:index_select(1, ids[f])
  end
  for f = 1, NF do
    for h = f + 1, NF do logit = logit + (vs[f] * vs[h]):sum(2) end
  end
  local y = lg.rand({ count }, { generator = g }):lt(logit:sigmoid()):float()
  return x, lg.stack(ids, 2), logit, y
end

local xtr, idtr, _, ytr = draw(o.train)
local xte, idte, logit_te, yte = draw(o.test)
for f = 1, NF do true_a[f], true_v[f] = nil, nil end
collectgarbage()
print(string.format("%d training and %d held-out impressions, CTR %.3f; "
  .. "tables of %s ids (Zipf %.2f)", o.train, o.test, ytr:mean():item(),
  table.concat((function()
    local t = {}
    for f = 1, NF do t[f] = tostring(sizes[f]) end
    return t
  end)(), ", "), o.zipf))

-- ---- the model ----

local DLRM = nn.Module:extend("DLRM")

function DLRM:init(table_sizes, dim)
  self.bottom = nn.Sequential(nn.Linear(ND, 64), nn.ReLU(),
    nn.Linear(64, dim), nn.ReLU())
  local bags = {}
  for f, n in ipairs(table_sizes) do
    bags[f] = nn.EmbeddingBag(n, dim, { mode = "sum", sparse = true })
    nn.init.uniform_(bags[f].weight, -0.01, 0.01)
  end
  self.tables = nn.ModuleList(bags)
  local nf = #table_sizes
  self.top = nn.Sequential(nn.Linear(dim + nf * (nf + 1) // 2, 64),
    nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1))
  -- the strict lower triangle of the (nf + 1)^2 dot products, flat
  local tri = {}
  for i = 2, nf + 1 do
    for j = 1, i - 1 do tri[#tri + 1] = (i - 1) * (nf + 1) + j end
  end
  self.tri = lg.tensor(tri, { dtype = lg.int64 })
end

-- x (B, 13), ids (B, 8) -> click logits (B)
function DLRM:forward(x, ids)
  local B = x:size(1)
  local h = self.bottom(x)
  local vs = { h }
  for f = 1, #self.tables do
    vs[f + 1] = self.tables[f](ids:narrow(2, f, 1)) -- one id per bag
  end
  local z = lg.stack(vs, 2)                           -- (B, 9, dim)
  local dots = lg.matmul(z, z:transpose(2, 3)):view(B, -1)
  return self.top(lg.cat({ h, dots:index_select(2, self.tri) }, 2)):view(B)
end

local model = DLRM(sizes, o.dim)
print(model)
local sparse_params, dense_params = {}, {}
for _, p in ipairs(model:parameters()) do
  local list = p:dim() == 2 and p:size(2) == o.dim and p:size(1) >= 1000
    and sparse_params or dense_params
  list[#list + 1] = p
end
local sparse_opt = lg.optim.SparseAdam(sparse_params, { lr = o.sparse_lr })
local dense_opt = lg.optim.Adam(dense_params, { lr = o.lr })

local function scores(x, ids)
  model:eval()
  local out = {}
  lg.no_grad(function()
    for i = 1, x:size(1), 16384 do
      local n = math.min(16384, x:size(1) - i + 1)
      out[#out + 1] = model(x:narrow(1, i, n), ids:narrow(1, i, n))
    end
  end)
  model:train()
  return lg.cat(out, 1)
end

-- ---- training ----

local t_train, c_train, seen = lg.clock(), os.clock(), 0
for epoch = 1, o.epochs do
  local perm = lg.randperm(o.train, { generator = g })
  local sum, nb = 0, 0
  for i = 1, o.train - o.batch + 1, o.batch do
    local j = perm:narrow(1, i, o.batch)
    local logit = model(xtr:index_select(1, j), idtr:index_select(1, j))
    local loss = F.bce_with_logits(logit, ytr:index_select(1, j))
    sparse_opt:zero_grad()
    dense_opt:zero_grad()
    loss:backward()
    sparse_opt:step()
    dense_opt:step()
    sum, nb, seen = sum + loss:item(), nb + 1, seen + o.batch
  end
  local auc = lg.train.auc(scores(xte, idte), yte)
  print(string.format("epoch %d: train loss %.4f, held-out AUC %.4f", epoch,
    sum / nb, auc))
end
local wall, cpu = lg.clock() - t_train, os.clock() - c_train

-- ---- results ----

local auc = lg.train.auc(scores(xte, idte), yte)
local true_auc = lg.train.auc(logit_te, yte)
local const = F.binary_cross_entropy(lg.full({ o.test }, ytr:mean():item()),
  yte):item()
local model_bce = F.bce_with_logits(scores(xte, idte), yte):item()
local true_bce = F.bce_with_logits(logit_te, yte):item()
print(string.format("held-out log loss: model %.4f, true model %.4f, "
  .. "constant CTR %.4f", model_bce, true_bce, const))
print(string.format("held-out AUC: model %.4f, true model %.4f (gap %.4f)",
  auc, true_auc, true_auc - auc))
print(string.format("training: %d samples in %.1f s, %.0f samples/s (CPU "
  .. "%.1f s, %d threads); total %.1f s", seen, wall, seen / wall, cpu,
  lg.get_num_threads(), lg.clock() - t_start))
