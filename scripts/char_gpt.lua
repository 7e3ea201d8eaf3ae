-- A character-level GPT on Debian's fortunes, in nanoGPT's CPU
-- "shakespeare_char" configuration: 4 layers, 4 heads, width 128, context
-- 64, batch 12, dropout 0, AdamW (lr 1e-3, betas 0.9/0.99, weight decay
-- 0.1 on the 2-d weights only) with 100 warm-up steps and cosine decay to
-- 1e-4 over 2,000 steps, gradient clipping at 1, the token embedding tied
-- to the output layer.
--
--   lgrad scripts/char_gpt.lua [--small] [--steps N] [--seed N] ...
--
-- The corpus is lg.data.text_corpus("fortunes") (about 2.5 MB), bytes as
-- tokens; the first 90% trains, the last 10% validates.  Every 250 steps
-- (and at the end) prints the mean loss of 20 random batches of each
-- split; at the end the validation loss over 200 batches, and 300
-- characters sampled with temperature 0.8 and top-k 10.
-- scripts/peers/char_gpt_torch.py trains the same model the same way in
-- PyTorch.  Each block is lg.nn.TransformerEncoderLayer with norm_first
-- and GELU (nanoGPT's pre-norm block, with biases), causal through the
-- fused attention op.
-- --small (or LGRAD_SMALL=1): 2 layers of width 32, context 16, 40 steps
-- on the first 100 kB of the corpus, a 40-character sample.
local lg = require "lgrad"
local nn = lg.nn
local F = lg.F

local S = dofile((arg and arg[0] and arg[0]:match("^(.*)/") or "scripts")
  .. "/scenario.lua")
local o = S.options(arg, { steps = 2000, seed = 1337, layers = 4, heads = 4,
  width = 128, context = 64, batch = 12, lr = 1e-3, min_lr = 1e-4,
  warmup = 100, weight_decay = 0.1, clip = 1.0, eval_interval = 250,
  eval_iters = 20, final_eval_iters = 200, sample = 300, temperature = 0.8,
  top_k = 10, chars = 0 })
if o.small then
  o.layers, o.heads, o.width, o.context, o.batch = 2, 2, 32, 16, 4
  o.steps, o.warmup, o.eval_interval, o.eval_iters = 40, 5, 20, 2
  o.final_eval_iters, o.sample, o.chars = 4, 40, 100000
end
lg.manual_seed(o.seed)
local gen = lg.Generator(o.seed)

-- ---- data ----
local text = lg.data.text_corpus("fortunes")
if o.chars > 0 then text = text:sub(1, o.chars) end
local tok = lg.data.CharTokenizer(text)
local ids = tok:encode(text)
local n = ids:numel()
local n_train = math.floor(0.9 * n)
local train_ids = ids:narrow(1, 1, n_train)
local val_ids = ids:narrow(1, n_train + 1, n - n_train)
local V = tok.vocab_size
print(("corpus: %d characters, vocabulary %d, train %d, val %d"):format(n,
  V, n_train, n - n_train))

local function batch(split)
  return lg.data.lm_batches(split == "train" and train_ids or val_ids,
    { block_size = o.context, batch_size = o.batch, generator = gen })
end

-- ---- model ----
local GPT = nn.Module:extend("GPT")

function GPT:init(vocab, cfg)
  self.context = cfg.context
  self.wte = nn.Embedding(vocab, cfg.width)
  self.wpe = nn.Embedding(cfg.context, cfg.width)
  local blocks = {}
  for i = 1, cfg.layers do
    blocks[i] = nn.TransformerEncoderLayer(cfg.width, cfg.heads, {
      dim_feedforward = 4 * cfg.width, dropout = 0, activation = "gelu",
      norm_first = true })
  end
  self.blocks = nn.ModuleList(table.unpack(blocks))
  self.ln_f = nn.LayerNorm(cfg.width)
  -- nanoGPT's initialization: N(0, 0.02) weights, zero biases, and
  -- N(0, 0.02 / sqrt(2 * layers)) for the projections into the residual
  local resid = 0.02 / math.sqrt(2 * cfg.layers)
  lg.no_grad(function()
    for name, p in self:named_parameters() do
      if name:find("bias$") and not name:find("^ln_f") and
          not name:find("norm") then
        p:zero_()
      elseif p:dim() == 2 then
        local last = name:match("out_proj%.weight$")
          or name:match("linear2%.weight$")
        p:normal_(0, last and resid or 0.02)
      end
    end
  end)
end

-- idx (B, T) int64 ids -> logits (B, T, V)
function GPT:forward(idx)
  local T = idx:size(2)
  local x = self.wte(idx) + self.wpe(lg.range(1, T))
  for i = 1, #self.blocks do x = self.blocks[i](x, { is_causal = true }) end
  return F.linear(self.ln_f(x), self.wte.weight) -- tied embedding
end

local model = GPT(V, o)
local nparams = 0
for _, p in ipairs(model:parameters()) do nparams = nparams + p:numel() end
print(("model: %d layers, %d heads, width %d, context %d: %d parameters")
  :format(o.layers, o.heads, o.width, o.context, nparams))

local function loss_of(x, y)
  local logits = model(x)
  return F.cross_entropy(logits:view(-1, V), y:view(-1))
end

-- ---- optimizer: weight decay on 2-d weights only ----
local decay, no_decay = {}, {}
for _, p in ipairs(model:parameters()) do
  if p:dim() >= 2 then decay[#decay + 1] = p else no_decay[#no_decay + 1] = p end
end
local opt = lg.optim.AdamW({
  { params = decay, weight_decay = o.weight_decay },
  { params = no_decay, weight_decay = 0 } },
  { lr = o.lr, betas = { 0.9, 0.99 } })
local params = model:parameters()

-- nanoGPT's schedule: linear warm-up, then cosine decay to min_lr
local function lr_at(it)
  if it < o.warmup then return o.lr * (it + 1) / (o.warmup + 1) end
  if it > o.steps then return o.min_lr end
  local ratio = (it - o.warmup) / (o.steps - o.warmup)
  return o.min_lr + 0.5 * (1 + math.cos(math.pi * ratio)) * (o.lr - o.min_lr)
end

local function estimate(split, iters)
  model:eval()
  local total = 0
  lg.no_grad(function()
    for _ = 1, iters do
      local x, y = batch(split)
      total = total + loss_of(x, y):item()
    end
  end)
  model:train()
  return total / iters
end

-- ---- training ----
local t0 = lg.clock()
for it = 0, o.steps do
  if it % o.eval_interval == 0 or it == o.steps then
    print(("step %4d: train loss %.4f, val loss %.4f (%.1f s)"):format(it,
      estimate("train", o.eval_iters), estimate("val", o.eval_iters),
      lg.clock() - t0))
  end
  if it == o.steps then break end
  local lr = lr_at(it)
  for _, g in ipairs(opt.param_groups) do g.lr = lr end
  local x, y = batch("train")
  local loss = loss_of(x, y)
  opt:zero_grad()
  loss:backward()
  lg.reg.clip_grad_norm(params, o.clip)
  opt:step()
end
local train_time = lg.clock() - t0
local final_val = estimate("val", o.final_eval_iters)

-- ---- sampling ----
local function sample(nchars)
  model:eval()
  local out = { tok:encode("\n")[1] }
  lg.no_grad(function()
    for _ = 1, nchars do
      local from = math.max(1, #out - o.context + 1)
      local ctx = lg.tensor({ table.move(out, from, #out, 1, {}) },
        { dtype = lg.int64 })
      local logits = model(ctx)[1][ctx:size(2)] / o.temperature
      local top = logits:topk(math.min(o.top_k, V))
      local cut = top[math.min(o.top_k, V)]
      local probs = logits:masked_fill(logits:lt(cut), -math.huge):softmax(1)
      -- inverse CDF: the first id whose cumulative probability passes u
      local u = lg.rand({ 1 }, { generator = gen, dtype = probs:dtype() })
      local id = probs:cumsum(1):le(u):sum():item() + 1
      out[#out + 1] = math.min(id, V)
    end
  end)
  table.remove(out, 1)
  return tok:decode(out)
end
local text_out = sample(o.sample)

print(("final: val loss %.4f (%d batches), training %.1f s for %d steps")
  :format(final_val, o.final_eval_iters, train_time, o.steps))
print(("sample (temperature %g, top-k %d):"):format(o.temperature, o.top_k))
print(text_out)
