#!/usr/bin/python3
"""The PyTorch twin of scripts/char_lstm.lua: the same corpus (every
extension-less file of /usr/share/games/fortunes, sorted by name), the same
byte vocabulary, 90/10 split and training streams, the same model
(embedding 64, 2-layer LSTM 256, linear head), Adam with the gradient norm
clipped at 5, truncated BPTT over `bptt` bytes with the state carried, and
the same validation pass over the whole held-out text.

  /usr/bin/python3 scripts/peers/char_lstm_torch.py [--iters 1000]
      [--threads 1] [--seed 1] [--small]
"""
import argparse
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--iters", type=int, default=1000)
p.add_argument("--seed", type=int, default=1)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--embed", type=int, default=64)
p.add_argument("--hidden", type=int, default=256)
p.add_argument("--layers", type=int, default=2)
p.add_argument("--batch", type=int, default=32)
p.add_argument("--bptt", type=int, default=64)
p.add_argument("--lr", type=float, default=2e-3)
p.add_argument("--clip", type=float, default=5.0)
p.add_argument("--eval_every", type=int, default=250)
p.add_argument("--val_chunks", type=int, default=0)
p.add_argument("--sample", type=int, default=300)
p.add_argument("--temperature", type=float, default=0.8)
p.add_argument("--small", action="store_true")
o = p.parse_args()
if o.small:
    o.iters, o.embed, o.hidden, o.batch, o.bptt = 12, 16, 32, 4, 16
    o.eval_every, o.val_chunks, o.sample = 6, 3, 60
torch.manual_seed(o.seed)
torch.set_num_threads(o.threads)
t_start = time.perf_counter()

# ---- data ----
DIR = "/usr/share/games/fortunes"
names = sorted(f for f in os.listdir(DIR)
               if "." not in f and os.path.isfile(os.path.join(DIR, f)))
text = b"".join(open(os.path.join(DIR, f), "rb").read() for f in names)
chars = sorted(set(text))
lut = {b: i for i, b in enumerate(chars)}
V = len(chars)
ids = torch.tensor([lut[b] for b in text], dtype=torch.int64)
n = ids.numel()
ntrain = int(n * 0.9)
train_ids, val_ids = ids[:ntrain], ids[ntrain:]
print("fortunes: %d bytes, %d distinct; %d train, %d validation"
      % (n, V, ntrain, n - ntrain))


def streams(split, batch):
    length = (split.numel() - 1) // batch
    x = split[:batch * length].view(batch, length)
    y = split[1:batch * length + 1].view(batch, length)
    return x, y, length


train_x, train_y, train_len = streams(train_ids, o.batch)
val_x, val_y, val_len = streams(val_ids, o.batch)
chunks_per_epoch = train_len // o.bptt


class CharLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(V, o.embed)
        self.lstm = nn.LSTM(o.embed, o.hidden, o.layers, batch_first=True)
        self.head = nn.Linear(o.hidden, V)

    def forward(self, x, state=None):
        out, state = self.lstm(self.embedding(x), state)
        return self.head(out), state


model = CharLSTM()
print(model)
opt = torch.optim.Adam(model.parameters(), lr=o.lr)


def loss_of(logits, y):
    return F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))


def validate():
    model.eval()
    total, count, state = 0.0, 0, None
    nchunks = val_len // o.bptt
    if o.val_chunks > 0:
        nchunks = min(nchunks, o.val_chunks)
    with torch.no_grad():
        for k in range(nchunks):
            s = k * o.bptt
            logits, state = model(val_x[:, s:s + o.bptt], state)
            total += loss_of(logits, val_y[:, s:s + o.bptt]).item()
            count += 1
    model.train()
    return total / count


print("%d iterations of %d x %d bytes (%.2f epochs), Adam lr %g, %d threads"
      % (o.iters, o.batch, o.bptt, o.iters / chunks_per_epoch, o.lr,
         torch.get_num_threads()))
state = None
t_train = time.perf_counter()
recent, nrecent, val_loss = 0.0, 0, float("nan")
for it in range(1, o.iters + 1):
    k = (it - 1) % chunks_per_epoch
    if k == 0:
        state = None
    s = k * o.bptt
    x, y = train_x[:, s:s + o.bptt], train_y[:, s:s + o.bptt]
    opt.zero_grad()
    logits, state = model(x, state)
    loss = loss_of(logits, y)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), o.clip)
    opt.step()
    state = tuple(t.detach() for t in state)
    recent, nrecent = recent + loss.item(), nrecent + 1
    if it % o.eval_every == 0 or it == o.iters:
        val_loss = validate()
        print("iter %5d  train loss %.4f  val loss %.4f  (%.1f s)"
              % (it, recent / nrecent, val_loss,
                 time.perf_counter() - t_train))
        recent, nrecent = 0.0, 0
train_time = time.perf_counter() - t_train

model.eval()
out = bytearray(b"The ")
with torch.no_grad():
    x = torch.tensor([[lut[b] for b in b"The "]])
    st = None
    for _ in range(o.sample):
        logits, st = model(x, st)
        probs = F.softmax(logits[0, -1] / o.temperature, dim=0)
        pick = torch.multinomial(probs, 1).item()
        out.append(chars[pick])
        x = torch.tensor([[pick]])
print("sample (temperature %g):" % o.temperature)
print(out.decode("utf-8", "replace"))
print("final validation loss: %.4f nats/byte (%.3f bits); training %.1f s "
      "(%.3f s/iter), total %.1f s"
      % (val_loss, val_loss / math.log(2), train_time, train_time / o.iters,
         time.perf_counter() - t_start))
