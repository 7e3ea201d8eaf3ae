-- A character-level LSTM language model (char-rnn) on Debian's fortunes.
--
--   lgrad scripts/char_lstm.lua [--small] [--iters N] [--seed N] ...
--
-- The corpus is lg.data.text_corpus("fortunes") (every extension-less file
-- of /usr/share/games/fortunes, sorted by name, 2.5 MB), byte-level ids;
-- the first 90% trains, the last 10% validates.  Model: embedding 64, a
-- 2-layer LSTM of 256 units, a linear head over the bytes.  Training is
-- char-rnn's truncated backpropagation through time: the training text is
-- cut into `batch` contiguous streams, each iteration reads the next `bptt`
-- bytes of every stream and carries the LSTM state (detached) from one
-- chunk to the next; Adam, gradient norm clipped at 5.  The validation
-- loss (nats per byte) runs the same way over the whole held-out text.
-- Prints the losses, the time, and a sample of 300 bytes (temperature
-- 0.8).  scripts/peers/char_lstm_torch.py trains the same model on the
-- same streams in PyTorch.
-- --small (or LGRAD_SMALL=1): a tiny model and a few iterations.
local lg = require "lgrad"
local nn = lg.nn

local S = dofile((arg and arg[0] and arg[0]:match("^(.*)/") or "scripts")
  .. "/scenario.lua")
local o = S.options(arg, { iters = 1000, seed = 1, embed = 64, hidden = 256,
  layers = 2, batch = 32, bptt = 64, lr = 2e-3, clip = 5, eval_every = 250,
  val_chunks = 0, sample = 300, temperature = 0.8 })
if o.small then
  o.iters, o.embed, o.hidden, o.batch, o.bptt = 12, 16, 32, 4, 16
  o.eval_every, o.val_chunks, o.sample = 6, 3, 60
end
lg.manual_seed(o.seed)
local t_start = lg.clock()

-- ---- data ----

local text = lg.data.text_corpus("fortunes")
local tok = lg.data.CharTokenizer(text)
local ids = tok:encode(text)
local n = ids:numel()
local ntrain = math.floor(n * 0.9)
local train_ids = ids:narrow(1, 1, ntrain)
local val_ids = ids:narrow(1, ntrain + 1, n - ntrain)
print(string.format("fortunes: %d bytes, %d distinct; %d train, %d "
  .. "validation", n, tok.vocab_size, ntrain, n - ntrain))

-- (batch, len) streams: stream b is the b-th contiguous slice of the
-- split; chunk k is columns (k-1)*bptt+1 .. k*bptt, targets shifted by one
local function streams(split, batch)
  local len = (split:numel() - 1) // batch
  local x = split:narrow(1, 1, batch * len):view(batch, len)
  local y = split:narrow(1, 2, batch * len):view(batch, len)
  return x, y, len
end
local train_x, train_y, train_len = streams(train_ids, o.batch)
local val_x, val_y, val_len = streams(val_ids, o.batch)
local chunks_per_epoch = train_len // o.bptt

-- ---- model ----

local CharLSTM = nn.Module:extend("CharLSTM")

function CharLSTM:init(V, E, H, L)
  self.embedding = nn.Embedding(V, E)
  self.lstm = nn.LSTM(E, H, { num_layers = L, batch_first = true })
  self.head = nn.Linear(H, V)
end

-- ids (B, T) -> logits (B, T, V), and the new state
function CharLSTM:forward(x, h, c)
  local out, hn, cn = self.lstm(self.embedding(x), h, c)
  return self.head(out), hn, cn
end

local V = tok.vocab_size
local model = CharLSTM(V, o.embed, o.hidden, o.layers)
print(model)
local opt = lg.optim.Adam(model:parameters(), { lr = o.lr })

local function loss_of(logits, y)
  return lg.F.cross_entropy(logits:reshape(-1, V), y:reshape(-1))
end

-- mean loss over the validation streams (all of them unless val_chunks)
local function validate()
  model:eval()
  local total, count, h, c = 0, 0, nil, nil
  local nchunks = val_len // o.bptt
  if o.val_chunks > 0 then nchunks = math.min(nchunks, o.val_chunks) end
  lg.no_grad(function()
    for k = 1, nchunks do
      local s = (k - 1) * o.bptt + 1
      local logits
      logits, h, c = model(val_x:narrow(2, s, o.bptt), h, c)
      total = total + loss_of(logits, val_y:narrow(2, s, o.bptt)):item()
      count = count + 1
    end
  end)
  model:train()
  return total / count
end

-- ---- training ----

print(string.format("%d iterations of %d x %d bytes (%.2f epochs), Adam "
  .. "lr %g, %d threads", o.iters, o.batch, o.bptt,
  o.iters / chunks_per_epoch, o.lr, lg.get_num_threads()))
local h, c
local t_train = lg.clock()
local recent, nrecent = 0, 0
local val_loss
for it = 1, o.iters do
  local k = (it - 1) % chunks_per_epoch
  if k == 0 then h, c = nil, nil end -- a new epoch starts the streams over
  local s = k * o.bptt + 1
  local x, y = train_x:narrow(2, s, o.bptt), train_y:narrow(2, s, o.bptt)
  opt:zero_grad()
  local logits
  logits, h, c = model(x, h, c)
  local loss = loss_of(logits, y)
  loss:backward()
  lg.reg.clip_grad_norm(model:parameters(), o.clip)
  opt:step()
  h, c = h:detach(), c:detach()
  recent, nrecent = recent + loss:item(), nrecent + 1
  if it % o.eval_every == 0 or it == o.iters then
    val_loss = validate()
    print(string.format("iter %5d  train loss %.4f  val loss %.4f  (%.1f s)",
      it, recent / nrecent, val_loss, lg.clock() - t_train))
    recent, nrecent = 0, 0
  end
end
local train_time = lg.clock() - t_train

-- ---- a sample ----

local gen = lg.Generator(o.seed)
local function sample(prime, len, temperature)
  model:eval()
  local out = { prime }
  lg.no_grad(function()
    local hs, cs
    local x = tok:encode(prime):view(1, -1)
    for _ = 1, len do
      local logits
      logits, hs, cs = model(x, hs, cs)
      local last = logits:select(2, logits:size(2)):view(-1)
      local p = (last / temperature):softmax(1):totable()
      local u, acc, pick = lg.rand({ 1 }, { generator = gen }):item(), 0, V
      for i = 1, V do
        acc = acc + p[i]
        if u < acc then pick = i break end
      end
      out[#out + 1] = tok:decode({ pick })
      x = lg.tensor({ { pick } }, { dtype = lg.int64 })
    end
  end)
  return table.concat(out)
end

local text_out = sample("The ", o.sample, o.temperature)
print("sample (temperature " .. o.temperature .. "):")
print(text_out)
print(string.format("final validation loss: %.4f nats/byte (%.3f bits); "
  .. "training %.1f s (%.3f s/iter), total %.1f s", val_loss,
  val_loss / math.log(2), train_time, train_time / o.iters,
  lg.clock() - t_start))
