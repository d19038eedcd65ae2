"""Curvature kernels against their obvious baselines, measured in the same run on the same inputs.

1. Hessian-vector product: torch.func forward-over-reverse (what persist uses) vs double backward
   (``autograd.grad(create_graph=True)``, what the published code used). Both must agree numerically.
2. Hutchinson probes: ``probe_batch`` probes per vmapped pass vs one probe per pass (time per probe).
3. Per-sample gradient norms for the Fisher trace: ``vmap(grad)`` vs a Python loop of backward passes.

Prints median milliseconds and the ratio to the baseline. Usage:
    python benchmarks/bench_curvature.py [--quick] [--device cpu|cuda] [--repeats N] [--batch B]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from typing import Callable

import torch
import torch.nn.functional as F

from persist.curvature.fisher import per_sample_squared_grad_norms
from persist.curvature.hvp import flat_hvp_rows, flatten, hvp, make_objective, measurement_mode
from persist.models import count_parameters, create_model, list_models


def paired_median_ms(
    fn: Callable[[], object], baseline: Callable[[], object], repeats: int, device: torch.device
) -> tuple[float, float]:
    """Median wall times of ``fn`` and ``baseline``, timed alternately after one warm-up call each.

    Alternating means load from other processes on a shared machine hits both sides alike, so the ratio
    stays meaningful even when the absolute times drift.
    """
    fn(), baseline()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for side, f in zip(times, (fn, baseline), strict=True):
            _sync(device)
            start = time.perf_counter()
            f()
            _sync(device)
            side.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times[0]), 1e3 * statistics.median(times[1])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def double_backward_hvp(model, x, y, v: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    params = [p for p in model.parameters() if p.requires_grad]
    loss = F.cross_entropy(model(x).float(), y)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    return dict(zip(names, torch.autograd.grad(grads, params, grad_outputs=[v[n] for n in names]), strict=True))


def looped_squared_grad_norms(model, x, y) -> torch.Tensor:
    params = [p for p in model.parameters() if p.requires_grad]
    out = []
    for i in range(len(x)):
        grads = torch.autograd.grad(F.cross_entropy(model(x[i : i + 1]).float(), y[i : i + 1]), params)
        out.append(sum(g.double().square().sum() for g in grads))
    return torch.stack(out)


def relative_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    diff = torch.cat([(a[n] - b[n]).flatten() for n in b]).norm()
    return float(diff / torch.cat([t.flatten() for t in b.values()]).norm())


# (architecture, width, input channels, image size, batch or None for --batch). The last case is the
# overhead-bound regime of the test suite: a deep network on a few tiny inputs.
CASES = [
    ("mlp", 1.0, 3, 32, None),
    ("cnn", 1.0, 3, 32, None),
    ("resnet18", 0.25, 3, 32, None),
    ("densenet121", 0.125, 1, 8, 4),
]


def bench_model(name: str, width: float, channels: int, size: int, batch: int, args, device: torch.device) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=100, in_channels=channels, image_size=size, width=width).to(device)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, channels, size, size, generator=gen).to(device)
    y = torch.randint(0, 100, (batch,), generator=gen).to(device)
    with measurement_mode(model):
        obj = make_objective(model, x, y, batch_size=batch)
        v = {n: torch.randn(p.shape, generator=gen).to(device) for n, p in obj.params.items()}
        func_ms, double_ms = paired_median_ms(
            lambda: hvp(obj, v), lambda: double_backward_hvp(model, x, y, v), args.repeats, device
        )
        agree = relative_difference(hvp(obj, v), double_backward_hvp(model, x, y, v))

        rows = torch.stack([flatten(v)] * args.probe_batch)
        matmat = flat_hvp_rows(obj)
        batched_ms, single_ms = paired_median_ms(
            lambda: matmat(rows), lambda: matmat(rows[:1]), args.repeats, device
        )
        batched_ms /= args.probe_batch

        n = min(batch, args.per_sample)
        xs, ys = x[:n], y[:n]
        vmap_ms, loop_ms = paired_median_ms(
            lambda: per_sample_squared_grad_norms(obj, xs, ys, chunk_size=n),
            lambda: looped_squared_grad_norms(model, xs, ys),
            args.repeats,
            device,
        )
        looped = looped_squared_grad_norms(model, xs, ys)
        norms_agree = float((per_sample_squared_grad_norms(obj, xs, ys, n) - looped).abs().max() / looped.abs().max())

    print(f"\n{name} (width {width}, {count_parameters(model):,} parameters, batch {batch}, {channels}x{size}x{size})")
    print(f"  HVP             torch.func {func_ms:9.1f} ms   double backward {double_ms:9.1f} ms   "
          f"ratio {func_ms / double_ms:5.2f}   rel. diff {agree:.1e}")
    print(f"  HVP per probe   vmap x{args.probe_batch:<3d}  {batched_ms:9.1f} ms   "
          f"one per pass    {single_ms:9.1f} ms   ratio {batched_ms / single_ms:5.2f}")
    print(f"  per-sample |g|² vmap       {vmap_ms:9.1f} ms   python loop     {loop_ms:9.1f} ms   "
          f"ratio {vmap_ms / loop_ms:5.2f}   rel. diff {norms_agree:.1e}   ({n} samples)")
    if agree > 1e-3 or norms_agree > 1e-3:
        raise SystemExit(f"{name}: torch.func and autograd disagree (HVP {agree:.1e}, norms {norms_agree:.1e})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny batch and 2 repeats (a smoke run)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per kernel (median reported)")
    parser.add_argument("--batch", type=int, default=None, help="samples per HVP")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steady on a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.repeats = args.repeats or (2 if args.quick else 5)
    args.batch = args.batch or (8 if args.quick else 64)
    args.probe_batch = 4 if args.quick else 8
    args.per_sample = 8 if args.quick else 16
    device = torch.device(args.device)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, device {device}, {platform.machine()}, {os.cpu_count()} cores, "
          f"{torch.get_num_threads()} threads, load {load:.1f}; median of {args.repeats} alternating calls "
          "after one warm-up; ratio = persist / baseline (< 1: persist is faster)")
    for name, width, channels, size, batch in CASES:
        if name in list_models():
            bench_model(name, width, channels, size, batch or args.batch, args, device)


if __name__ == "__main__":
    main()
