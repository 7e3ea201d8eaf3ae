#!/usr/bin/python3
"""PyTorch side of the dlrm-sparse workload (scripts/bench/WORKLOADS.md).

Usage: dlrm_torch.py dlrm-sparse [--threads N] [--rows N]
Prints one line of JSON, as ../../shared/bench/peers/torch_bench.py does.
The model, sizes and data are those of W.dlrm_sparse in
scripts/bench/workloads.lua: 8 nn.EmbeddingBag(rows, 16, mode="sum",
sparse=True) tables trained by SparseAdam, bottom MLP 13-64-16, the
strict lower triangle of the 9 x 9 dot products, top MLP 52-64-32-1 and
Adam, BCE with logits, batch 2048, 5 warm-up steps then 50 timed steps.
"""
import argparse
import json
import math
import os
import time

# as torch_bench.py: passive OpenMP waits are PyTorch's best setting here
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def mlp(sizes):
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def dlrm_sparse(rows):
    torch.manual_seed(0)
    T, B, D, NF, steps, warm = rows, 2048, 16, 8, 50, 5
    tables = nn.ModuleList()
    for _ in range(NF):
        e = nn.EmbeddingBag(T, D, mode="sum", sparse=True)
        nn.init.uniform_(e.weight, -0.05, 0.05)
        tables.append(e)
    bottom = mlp([13, 64, D])
    top = mlp([D + NF * (NF + 1) // 2, 64, 32, 1])
    sparse_opt = torch.optim.SparseAdam(list(tables.parameters()), lr=1e-3)
    dense_opt = torch.optim.Adam(list(bottom.parameters()) +
                                 list(top.parameters()), lr=1e-3)
    li, lj = torch.tril_indices(NF + 1, NF + 1, offset=-1)
    batches = []
    for _ in range(8):
        ids = [torch.floor(torch.exp(torch.rand(B, 1) * math.log(T + 1)))
               .long().clamp(1, T) - 1 for _ in range(NF)]
        batches.append((torch.randn(B, 13), ids,
                        (torch.rand(B) < 0.25).float()))

    def step(b):
        x_dense, ids, y = b
        x = bottom(x_dense)
        vs = [x] + [tables[f](ids[f]) for f in range(NF)]
        z = torch.stack(vs, 1)
        zz = torch.bmm(z, z.transpose(1, 2))
        logit = top(torch.cat([x, zz[:, li, lj]], 1)).view(B)
        loss = F.binary_cross_entropy_with_logits(logit, y)
        sparse_opt.zero_grad()
        dense_opt.zero_grad()
        loss.backward()
        sparse_opt.step()
        dense_opt.step()
        return loss

    for s in range(warm):
        step(batches[(s + 1) % 8])
    times = []
    t, c = time.perf_counter(), time.process_time()
    for s in range(1, steps + 1):
        t1 = time.perf_counter()
        loss = step(batches[s % 8])
        times.append(time.perf_counter() - t1)
    dt, dc = time.perf_counter() - t, time.process_time() - c
    times.sort()
    return {"metric": "steps_per_s", "value": steps / dt,
            "step_ms": 1000 * dt / steps, "cpu_ms": 1000 * dc / steps,
            "median_ms": 1000 * times[steps // 2 - 1],
            "min_ms": 1000 * times[0], "rows": T, "loss": loss.item()}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("workload", choices=["dlrm-sparse"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rows", type=int, default=1000000)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    r = dlrm_sparse(a.rows)
    r.update({"workload": a.workload, "threads": a.threads,
              "peer": "torch-" + torch.__version__})
    print(json.dumps(r))


if __name__ == "__main__":
    main()
