"""Benchmark neural persistence: vectorized Borůvka vs compiled Kruskal vs a pure-Python reference.

1. One 768 x 3072 layer (GPT-2 MLP width): the diagram's deaths from Borůvka (torch, on --device), scipy's
   Kruskal, and a straightforward sort + pure-Python union-find; all three must agree exactly.
2. Every linear layer of a GPT-2-small-shaped stack of random N(0, 0.02) matrices: 12 blocks of qkv
   768x2304, attention proj 768x768, fc 768x3072, mlp proj 3072x768, plus the 768x50257 lm head
   (123.5M weights), through the full ``neural_persistence`` call; Kruskal is timed on one block.

Usage: python benchmarks/bench_np.py [--quick] [--device cpu|cuda] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from persist.neural_persistence import neural_persistence, spanning_forest_weights


def timed(fn: Callable[[], object], repeats: int, device: torch.device) -> tuple[float, object]:
    """Median wall time over ``repeats`` calls (device synchronized), and the last result."""
    times, result = [], None
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        result = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def python_union_find(w: np.ndarray) -> np.ndarray:
    """The textbook algorithm: sort all edges by weight, descending, then Kruskal with a Python union-find."""
    m, k = w.shape
    flat = w.ravel().tolist()
    parent = list(range(m + k))
    deaths = []
    for edge in sorted(range(len(flat)), key=flat.__getitem__, reverse=True):
        u, v = edge // k, m + edge % k
        while parent[u] != u:
            parent[u] = parent[parent[u]]
            u = parent[u]
        while parent[v] != v:
            parent[v] = parent[parent[v]]
            v = parent[v]
        if u != v:
            parent[u] = v
            deaths.append(flat[edge])
    return np.asarray(deaths)


def gpt2_stack(blocks: int, lm_head: bool, device: torch.device) -> nn.Module:
    """Random GPT-2-small linear layers (nn.Linear weight shapes are out x in); no biases, N(0, 0.02)."""
    shapes = [(2304, 768), (768, 768), (3072, 768), (768, 3072)] * blocks + ([(50257, 768)] if lm_head else [])
    gen = torch.Generator(device=device).manual_seed(0)
    layers = nn.ModuleList()
    for out_features, in_features in shapes:
        layer = nn.utils.skip_init(nn.Linear, in_features, out_features, bias=False, device=device)
        with torch.no_grad():
            layer.weight.normal_(0.0, 0.02, generator=gen)
        layers.append(layer)
    return layers


def bench_layer(shape: tuple[int, int], repeats: int, device: torch.device) -> None:
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(shape, generator=gen).abs()
    w = (w / w.max()).to(device)
    t_boruvka, deaths = timed(lambda: spanning_forest_weights(w, "boruvka"), repeats, device)
    t_kruskal, deaths_k = timed(lambda: spanning_forest_weights(w, "kruskal"), repeats, torch.device("cpu"))
    cpu_w = w.cpu().numpy()
    t_python, deaths_py = timed(lambda: python_union_find(cpu_w), max(1, repeats - 1), torch.device("cpu"))
    same = torch.equal(deaths.cpu(), deaths_k.cpu()) and np.array_equal(deaths.cpu().numpy(), deaths_py)
    print(f"layer {shape[0]}x{shape[1]} ({w.numel() / 1e6:.2f}M edges), identical deaths: {same}")
    print(f"  boruvka ({device.type})   {t_boruvka:8.3f} s   1.0x")
    print(f"  kruskal (scipy)  {t_kruskal:8.3f} s   {t_kruskal / t_boruvka:6.1f}x slower")
    print(f"  python union-find {t_python:7.3f} s   {t_python / t_boruvka:6.1f}x slower")


def bench_stack(blocks: int, lm_head: bool, repeats: int, device: torch.device) -> None:
    model = gpt2_stack(blocks, lm_head, device)
    n_weights = sum(p.numel() for p in model.parameters())
    t_full, values = timed(lambda: neural_persistence(model), repeats, device)
    print(f"GPT-2-small-shaped stack: {blocks} blocks{' + lm head' if lm_head else ''}, "
          f"{len(model)} layers, {n_weights / 1e6:.1f}M weights, mean normalized NP {values['np/mean_normalized']:.4f}")
    print(f"  neural_persistence, boruvka ({device.type})   {t_full:8.3f} s")
    block = nn.ModuleList(list(model)[:4])  # Kruskal on every block would dominate the run; one block shows the ratio
    t_block, _ = timed(lambda: neural_persistence(block), repeats, device)
    t_block_k, _ = timed(lambda: neural_persistence(block, method="kruskal"), repeats, device)
    print(f"  one block, boruvka ({device.type})            {t_block:8.3f} s   1.0x")
    print(f"  one block, kruskal (scipy)          {t_block_k:8.3f} s   {t_block_k / t_block:6.1f}x slower")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 256x1024 layer and a 2-block stack, no lm head")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, repeats {args.repeats}")
    bench_layer((256, 1024) if args.quick else (768, 3072), args.repeats, device)
    bench_stack(2 if args.quick else 12, not args.quick, args.repeats, device)


if __name__ == "__main__":
    main()
