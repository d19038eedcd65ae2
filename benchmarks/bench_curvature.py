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
import platform
import statistics
import time
from typing import Callable

import torch
import torch.nn.functional as F

from persist.curvature.fisher import per_sample_squared_grad_norms
from persist.curvature.hvp import flat_hvp_rows, flatten, hvp, make_objective, measurement_mode
from persist.models import count_parameters, create_model, list_models


def median_ms(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Median wall time of ``fn`` after one warm-up call, synchronizing the device around each call."""
    fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def double_backward_hvp(model, x, y, v: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    params = [p for p in model.parameters() if p.requires_grad]
    loss = F.cross_entropy(model(x).float(), y)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    return dict(zip(names, torch.autograd.grad(grads, params, grad_outputs=[v[n] for n in names])))


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


def models(quick: bool) -> list[tuple[str, float]]:
    wanted = [("mlp", 1.0), ("cnn", 1.0), ("resnet18", 0.25)]
    return [(name, width) for name, width in wanted if name in list_models()]


def bench_model(name: str, width: float, args, device: torch.device) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=100, in_channels=3, image_size=32, width=width).to(device)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, 32, 32, generator=gen).to(device)
    y = torch.randint(0, 100, (args.batch,), generator=gen).to(device)
    with measurement_mode(model):
        obj = make_objective(model, x, y, batch_size=args.batch)
        v = {n: torch.randn(p.shape, generator=gen).to(device) for n, p in obj.params.items()}
        func_ms = median_ms(lambda: hvp(obj, v), args.repeats, device)
        double_ms = median_ms(lambda: double_backward_hvp(model, x, y, v), args.repeats, device)
        agree = relative_difference(hvp(obj, v), double_backward_hvp(model, x, y, v))

        rows = torch.stack([flatten(v)] * args.probe_batch)
        matmat = flat_hvp_rows(obj)
        batched_ms = median_ms(lambda: matmat(rows), args.repeats, device) / args.probe_batch
        single_ms = median_ms(lambda: matmat(rows[:1]), args.repeats, device)

        n = min(args.batch, args.per_sample)
        xs, ys = x[:n], y[:n]
        vmap_ms = median_ms(lambda: per_sample_squared_grad_norms(obj, xs, ys, chunk_size=n), args.repeats, device)
        loop_ms = median_ms(lambda: looped_squared_grad_norms(model, xs, ys), args.repeats, device)
        norms_agree = float(
            (per_sample_squared_grad_norms(obj, xs, ys, n) - looped_squared_grad_norms(model, xs, ys)).abs().max()
            / looped_squared_grad_norms(model, xs, ys).abs().max()
        )

    print(f"\n{name} (width {width}, {count_parameters(model):,} parameters, batch {args.batch}, 3x32x32)")
    print(f"  HVP             torch.func {func_ms:9.1f} ms   double backward {double_ms:9.1f} ms   "
          f"ratio {func_ms / double_ms:5.2f}   rel. diff {agree:.1e}")
    print(f"  HVP per probe   vmap x{args.probe_batch:<3d}  {batched_ms:9.1f} ms   one per pass    {single_ms:9.1f} ms   "
          f"ratio {batched_ms / single_ms:5.2f}")
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
    args = parser.parse_args()
    args.repeats = args.repeats or (2 if args.quick else 5)
    args.batch = args.batch or (8 if args.quick else 32)
    args.probe_batch = 4 if args.quick else 8
    args.per_sample = 8 if args.quick else 16
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, device {device}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads; median of {args.repeats} calls after one warm-up; "
          "ratio = persist / baseline (< 1: persist is faster)")
    for name, width in models(args.quick):
        bench_model(name, width, args, device)


if __name__ == "__main__":
    main()
