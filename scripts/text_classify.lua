-- Which fortune file does a fortune come from? (NLP: a learned word
-- embedding, averaged over the words, and a linear head.)
--
--   lgrad scripts/text_classify.lua [--small] [--epochs N] [--seed N] ...
--
-- Reads Debian's fortunes (/usr/share/games/fortunes, one fortune per
-- block ended by a line "%") of five categories, holds out a fifth of them
-- (stratified by category), and trains an EmbeddingBag-style model: each
-- word id goes through lg.nn.Embedding, a mask drops the padding, the sum
-- over the words divided by their count gives the text's vector, and a
-- Linear layer gives the category's logits.  A second model reads the
-- same word ids with a small transformer encoder (learned positions, two
-- pre-norm lg.nn.TransformerEncoderLayer, padding masked out with
-- src_key_padding_mask, the mean over the real words, a Linear head).
-- Prints both held-out accuracies against the majority baseline (always
-- answering the largest category).
-- --small (or LGRAD_SMALL=1) keeps 60 fortunes per category and 3 epochs
-- (2 for a one-layer transformer of width 32).
local lg = require "lgrad"
local nn = lg.nn

local S = dofile((arg and arg[0] and arg[0]:match("^(.*)/") or "scripts")
  .. "/scenario.lua")
local o = S.options(arg, { epochs = 40, seed = 1, dim = 64, batch = 32,
  lr = 5e-3, weight_decay = 1e-4, dropout = 0.3, max_len = 120,
  min_count = 2, dir = "/usr/share/games/fortunes", tf_epochs = 12,
  tf_dim = 64, tf_heads = 4, tf_layers = 2, tf_lr = 1e-3, tf_dropout = 0.1,
  categories = "science,politics,food,love,computers" })
if o.small then
  o.per_class, o.epochs = 60, math.min(o.epochs, 3)
  o.tf_epochs, o.tf_dim, o.tf_heads, o.tf_layers =
    math.min(o.tf_epochs, 2), 32, 2, 1
end
lg.manual_seed(o.seed)
local t_start = lg.clock()

-- ---- the corpus ----

local function read_fortunes(path)
  local f = io.open(path, "r")
  if not f then
    error("cannot read " .. path .. " (install Debian's fortunes package)")
  end
  local list, cur = {}, {}
  for line in f:lines() do
    if line == "%" then
      if #cur > 0 then list[#list + 1] = table.concat(cur, " ") end
      cur = {}
    else
      cur[#cur + 1] = line
    end
  end
  if #cur > 0 then list[#list + 1] = table.concat(cur, " ") end
  f:close()
  return list
end

local function tokens(text)
  local out = {}
  for w in text:lower():gmatch("[%a][%a']*") do
    w = w:gsub("'s$", ""):gsub("'", "")
    if #w >= 2 then out[#out + 1] = w end
  end
  return out
end

local categories = {}
for name in o.categories:gmatch("[^,]+") do categories[#categories + 1] = name end
local C = #categories

-- a shuffled, stratified split: every category gives a fifth to the test set
local gen = lg.Generator(o.seed)
local train_docs, test_docs = {}, {}
for c, name in ipairs(categories) do
  local docs = read_fortunes(o.dir .. "/" .. name)
  local perm = lg.randperm(#docs, { generator = gen }):totable()
  local n = o.per_class and math.min(o.per_class, #docs) or #docs
  local ntest = n // 5
  for i = 1, n do
    local d = { words = tokens(docs[perm[i]]), label = c }
    if i <= ntest then
      test_docs[#test_docs + 1] = d
    else
      train_docs[#train_docs + 1] = d
    end
  end
  print(string.format("%-10s %4d fortunes", name, n))
end

-- the vocabulary: training words seen at least min_count times; id 1 is
-- padding, and unknown words are dropped
local counts = {}
for _, d in ipairs(train_docs) do
  for _, w in ipairs(d.words) do counts[w] = (counts[w] or 0) + 1 end
end
local words = {}
for w, n in pairs(counts) do
  if n >= o.min_count then words[#words + 1] = w end
end
table.sort(words)
local vocab = {}
for i, w in ipairs(words) do vocab[w] = i + 1 end
local V = #words + 1

-- documents as rows of word ids, padded with 1 to max_len
local function encode(docs)
  local ids, labels = {}, {}
  for i, d in ipairs(docs) do
    local row, n = {}, 0
    for _, w in ipairs(d.words) do
      local id = vocab[w]
      if id and n < o.max_len then
        n = n + 1
        row[n] = id
      end
    end
    for k = n + 1, o.max_len do row[k] = 1 end
    ids[i], labels[i] = row, d.label
  end
  return lg.tensor(ids, { dtype = lg.int64 }),
    lg.tensor(labels, { dtype = lg.int64 })
end

local xtr, ytr = encode(train_docs)
local xte, yte = encode(test_docs)
print(string.format("%d training and %d test fortunes, %d words in the "
  .. "vocabulary", xtr:size(1), xte:size(1), V - 1))

-- ---- the model ----

local BagOfEmbeddings = nn.Module:extend("BagOfEmbeddings")

function BagOfEmbeddings:init(vocab_size, dim, nclasses, p)
  self.embedding = nn.Embedding(vocab_size, dim, { padding_idx = 1 })
  self.dropout = nn.Dropout(p)
  self.head = nn.Linear(dim, nclasses)
end

-- ids: (B, L) word ids, 1 = padding -> (B, C) logits
function BagOfEmbeddings:forward(ids)
  local e = self.embedding(ids)                  -- (B, L, D)
  local mask = ids:ne(1):unsqueeze(3):float()    -- (B, L, 1)
  local sum = (e * mask):sum(2)                  -- (B, D)
  local count = mask:sum(2):clamp(1, math.huge)  -- (B, 1)
  return self.head(self.dropout(sum / count))
end

local TransformerClassifier = nn.Module:extend("TransformerClassifier")

function TransformerClassifier:init(vocab_size, nclasses)
  self.embedding = nn.Embedding(vocab_size, o.tf_dim, { padding_idx = 1 })
  self.position = nn.Embedding(o.max_len, o.tf_dim)
  self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(o.tf_dim,
    o.tf_heads, { dim_feedforward = 2 * o.tf_dim, dropout = o.tf_dropout,
      norm_first = true }), o.tf_layers, { norm = nn.LayerNorm(o.tf_dim) })
  self.dropout = nn.Dropout(o.tf_dropout)
  self.head = nn.Linear(o.tf_dim, nclasses)
end

-- ids: (B, L) word ids, 1 = padding -> (B, C) logits; a text without a
-- known word attends to nothing and pools to zeros
function TransformerClassifier:forward(ids)
  local pad = ids:eq(1)                          -- (B, L), true: ignore
  local x = self.embedding(ids) + self.position(lg.range(1, ids:size(2)))
  x = self.encoder(x, { src_key_padding_mask = pad })
  local keep = pad:logical_not():unsqueeze(3):float()
  local mean = (x * keep):sum(2) / keep:sum(2):clamp(1, math.huge)
  return self.head(self.dropout(mean))
end

local train = lg.data.DataLoader(lg.data.TensorDataset(xtr, ytr),
  { batch_size = o.batch, shuffle = true, seed = o.seed })
local test = lg.data.DataLoader(lg.data.TensorDataset(xte, yte),
  { batch_size = 256 })

-- trains model; returns its last held-out accuracy and the seconds taken
local function fit(model, epochs, lr, weight_decay)
  print(model)
  local t = lg.clock()
  local opt = lg.optim.AdamW(model:parameters(),
    { lr = lr, weight_decay = weight_decay })
  local history = lg.train.fit {
    model = model, loss = lg.F.cross_entropy, optimizer = opt,
    data = train, val = test, epochs = epochs,
    scheduler = lg.sched.Cosine(opt, { T_max = epochs }),
    metrics = { accuracy = lg.train.accuracy },
  }
  return history.accuracy[#history.accuracy], lg.clock() - t
end

local model = BagOfEmbeddings(V, o.dim, C, o.dropout)
local acc, secs = fit(model, o.epochs, o.lr, o.weight_decay)
local tf_model = TransformerClassifier(V, C)
local tf_acc, tf_secs = fit(tf_model, o.tf_epochs, o.tf_lr, 1e-2)

-- ---- results ----

local per_class = {}
for c = 1, C do per_class[c] = 0 end
for i = 1, ytr:size(1) do
  local c = ytr[i]
  per_class[c] = per_class[c] + 1
end
local majority = 1
for c = 2, C do
  if per_class[c] > per_class[majority] then majority = c end
end
local baseline = yte:eq(majority):sum():item() / yte:size(1)

print("held-out accuracy by category (averaged embeddings, transformer):")
local preds = {}
for i, m in ipairs({ model, tf_model }) do
  m:eval()
  preds[i] = lg.no_grad(function() return m(xte):argmax(2) end)
end
for c, name in ipairs(categories) do
  local is_c = yte:eq(c)
  local n = is_c:sum():item()
  local right = {}
  for i = 1, 2 do right[i] = preds[i]:eq(c):logical_and(is_c):sum():item() end
  print(string.format("  %-10s %3d/%3d  %3d/%3d", name, right[1], n,
    right[2], n))
end
print(string.format("majority baseline (%s): %.4f", categories[majority],
  baseline))
print(string.format("test accuracy: %.4f (averaged embeddings, %d epochs, "
  .. "%.1f s)", acc, o.epochs, secs))
print(string.format("transformer encoder test accuracy: %.4f (%d epochs, "
  .. "%.1f s; %.1f s in all)", tf_acc, o.tf_epochs, tf_secs,
  lg.clock() - t_start))
