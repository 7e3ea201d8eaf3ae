#!/usr/bin/python3
"""The PyTorch peer of scripts/char_gpt.lua: the same character-level GPT
(nanoGPT's CPU shakespeare_char configuration: 4 layers, 4 heads, width 128,
context 64, batch 12, dropout 0, AdamW lr 1e-3 betas 0.9/0.99 with weight
decay 0.1 on the 2-d weights only, 100 warm-up steps and cosine decay to 1e-4
over 2,000 steps, clipping at 1, tied embedding) on the same data: every
extension-less regular file of /usr/share/games/fortunes sorted by name and
concatenated, bytes as tokens, the first 90% to train and the last 10% to
validate.  Each block is torch.nn.TransformerEncoderLayer(norm_first=True,
activation="gelu", batch_first=True), as lgrad's script uses its own.

Prints the train and validation loss (20 random batches each) every 250
steps, the validation loss over 200 batches at the end, the training time,
and 300 characters sampled with temperature 0.8 and top-k 10.

  /usr/bin/python3 scripts/peers/char_gpt_torch.py [--steps N] [--threads N]
"""
import argparse
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--steps", type=int, default=2000)
ap.add_argument("--seed", type=int, default=1337)
ap.add_argument("--threads", type=int, default=0)
ap.add_argument("--final_eval_iters", type=int, default=200)
args = ap.parse_args()
if args.threads:
    torch.set_num_threads(args.threads)
torch.manual_seed(args.seed)

LAYERS, HEADS, WIDTH, CONTEXT, BATCH = 4, 4, 128, 64, 12
LR, MIN_LR, WARMUP, WD, CLIP = 1e-3, 1e-4, 100, 0.1, 1.0
EVAL_INTERVAL, EVAL_ITERS = 250, 20

# ---- data ----
DIR = "/usr/share/games/fortunes"
names = sorted(f for f in os.listdir(DIR)
               if "." not in f and os.path.isfile(os.path.join(DIR, f)))
text = b"".join(open(os.path.join(DIR, f), "rb").read() for f in names)
vocab = sorted(set(text))
V = len(vocab)
index = {b: i for i, b in enumerate(vocab)}
ids = torch.tensor([index[b] for b in text], dtype=torch.long)
n_train = int(0.9 * len(ids))
train_ids, val_ids = ids[:n_train], ids[n_train:]
print("corpus: %d characters, vocabulary %d, train %d, val %d"
      % (len(ids), V, n_train, len(ids) - n_train))


def batch(split):
    data = train_ids if split == "train" else val_ids
    ix = torch.randint(len(data) - CONTEXT, (BATCH,))
    x = torch.stack([data[i:i + CONTEXT] for i in ix])
    y = torch.stack([data[i + 1:i + 1 + CONTEXT] for i in ix])
    return x, y


# ---- model ----
class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(V, WIDTH)
        self.wpe = nn.Embedding(CONTEXT, WIDTH)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(WIDTH, HEADS, 4 * WIDTH, dropout=0.0,
                                       activation="gelu", batch_first=True,
                                       norm_first=True)
            for _ in range(LAYERS))
        self.ln_f = nn.LayerNorm(WIDTH)
        resid = 0.02 / math.sqrt(2 * LAYERS)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("bias") and "norm" not in name \
                        and not name.startswith("ln_f"):
                    p.zero_()
                elif p.dim() == 2:
                    last = name.endswith("out_proj.weight") or \
                        name.endswith("linear2.weight")
                    p.normal_(0, resid if last else 0.02)
        self.register_buffer("mask", torch.triu(
            torch.full((CONTEXT, CONTEXT), float("-inf")), diagonal=1))

    def forward(self, idx):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(T))
        for b in self.blocks:
            x = b(x, src_mask=self.mask[:T, :T])
        return F.linear(self.ln_f(x), self.wte.weight)


model = GPT()
print("model: %d layers, %d heads, width %d, context %d: %d parameters"
      % (LAYERS, HEADS, WIDTH, CONTEXT,
         sum(p.numel() for p in model.parameters())))
decay = [p for p in model.parameters() if p.dim() >= 2]
no_decay = [p for p in model.parameters() if p.dim() < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD},
                         {"params": no_decay, "weight_decay": 0.0}],
                        lr=LR, betas=(0.9, 0.99))


def lr_at(it):
    if it < WARMUP:
        return LR * (it + 1) / (WARMUP + 1)
    if it > args.steps:
        return MIN_LR
    ratio = (it - WARMUP) / (args.steps - WARMUP)
    return MIN_LR + 0.5 * (1 + math.cos(math.pi * ratio)) * (LR - MIN_LR)


def loss_of(x, y):
    return F.cross_entropy(model(x).view(-1, V), y.view(-1))


@torch.no_grad()
def estimate(split, iters):
    model.eval()
    total = sum(loss_of(*batch(split)).item() for _ in range(iters))
    model.train()
    return total / iters


t0 = time.time()
for it in range(args.steps + 1):
    if it % EVAL_INTERVAL == 0 or it == args.steps:
        print("step %4d: train loss %.4f, val loss %.4f (%.1f s)"
              % (it, estimate("train", EVAL_ITERS), estimate("val", EVAL_ITERS),
                 time.time() - t0), flush=True)
    if it == args.steps:
        break
    for g in opt.param_groups:
        g["lr"] = lr_at(it)
    x, y = batch("train")
    loss = loss_of(x, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
    opt.step()
train_time = time.time() - t0
final_val = estimate("val", args.final_eval_iters)


@torch.no_grad()
def sample(nchars, temperature=0.8, top_k=10):
    model.eval()
    out = [index[ord("\n")]]
    for _ in range(nchars):
        ctx = torch.tensor([out[-CONTEXT:]])
        logits = model(ctx)[0, -1] / temperature
        cut = torch.topk(logits, min(top_k, V)).values[-1]
        logits[logits < cut] = float("-inf")
        out.append(int(torch.multinomial(F.softmax(logits, -1), 1)))
    return bytes(vocab[i] for i in out[1:]).decode("utf-8", "replace")


text_out = sample(300)
print("final: val loss %.4f (%d batches), training %.1f s for %d steps"
      % (final_val, args.final_eval_iters, train_time, args.steps))
print("sample (temperature 0.8, top-k 10):")
print(text_out)
