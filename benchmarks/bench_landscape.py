"""Loss-landscape grids: persist's fast path vs the straightforward per-node loop, same run, same nodes.

    python benchmarks/bench_landscape.py                    # MLP, small CNN, ResNet-18/0.25 (~3 min, 2 CPU cores)
    python benchmarks/bench_landscape.py --quick            # smaller grids, one repeat
    python benchmarks/bench_landscape.py --device cuda      # the same cases on a GPU
    python benchmarks/bench_landscape.py --full --device cuda [--precision bf16]
        # full-width ResNet-18, 51x51, 5,000 random 3x32x32 images, 50 classes (the published code:
        # about 15 minutes on an RTX 4090 with AMP); the reference runs on the 3x3 sub-grid of the same nodes

Baseline ("reference"): for every node write each parameter, loop over batches, ``.item()`` per batch.
Fast paths: ``vmap`` (several nodes per forward), ``foreach`` (one node per forward, no host syncs) and
``auto`` (what users get by default: times both on one batch, keeps the faster; the probe is included
in its time). Every fast grid is checked against the reference to 1e-5 relative.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import torch

from persist.landscape import evaluate_grid, evaluate_grid_reference, random_directions
from persist.models import create_model, list_models

RTOL = 1e-5
FAST = ("auto", "vmap", "foreach")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def digits_case(device):
    from persist.data import load_task

    task = load_task("digits", "A")
    x = torch.cat([task.x_val, task.x_test]).to(device)
    y = torch.cat([task.y_val, task.y_test]).to(device)
    return create_model("mlp", task.num_classes, 1, 8).to(device), x, y


def image_case(arch: str, width: float, n: int, classes: int, device):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, 32, 32, generator=g).to(device)
    y = torch.randint(0, classes, (n,), generator=g).to(device)
    return create_model(arch, classes, 3, 32, width).to(device), x, y


def cases(quick: bool, device):
    """(label, builder, resolution, batch size, nodes per step, repeats); --quick shrinks grids and subsets."""
    yield ("MLP (83k params), digits, 294 images", lambda: digits_case(device), 11 if quick else 51, 512, 8,
           1 if quick else 3)
    yield ("small CNN (94k params), 32x32, 64 images", lambda: image_case("cnn", 1.0, 64, 10, device),
           3 if quick else 9, 64, 4, 1 if quick else 2)
    if "resnet18" in list_models():
        yield ("ResNet-18 width 0.25 (0.7M params), 32x32, 32 images",
               lambda: image_case("resnet18", 0.25, 32, 10, device), 3 if quick else 7, 32, 4, 1 if quick else 2)
    else:
        print("resnet18 is not registered: skipping the ResNet-18 row")


def clock(device: torch.device):
    """Process CPU time on CPU (the benchmark machine is shared, and one thread's CPU time is its wall time
    on an idle machine); wall time on GPU."""
    return time.process_time if device.type == "cpu" else time.perf_counter


def time_grid(fn, device) -> tuple[float, object]:
    now = clock(device)
    _sync(device)
    start = now()
    grid = fn()
    _sync(device)
    return now() - start, grid


def time_methods(model, dirs, x, y, resolution, batch_size, points, repeats, device, precision):
    """Median seconds and the last grid of the reference and of each fast method, interleaved per repeat."""
    runs = {"reference": lambda: evaluate_grid_reference(model, dirs, x, y, resolution, batch_size=batch_size)}
    for method in FAST:
        runs[method] = (lambda m: lambda: evaluate_grid(model, dirs, x, y, resolution, batch_size=batch_size,
                                                         points_per_step=points, precision=precision, method=m))(method)
    warm_x, warm_y = x[:batch_size], y[:batch_size]
    for method in FAST:  # untimed: first-call costs (kernel selection, allocator) belong to no method
        evaluate_grid(model, dirs, warm_x, warm_y, 3, batch_size=batch_size, points_per_step=points, method=method)
    evaluate_grid_reference(model, dirs, warm_x, warm_y, 3, batch_size=batch_size)
    times: dict[str, list[float]] = {k: [] for k in runs}
    grids = {}
    for _ in range(repeats):  # interleaved, so load drift on a shared machine hits every method alike
        for name, fn in runs.items():
            seconds, grids[name] = time_grid(fn, device)
            times[name].append(seconds)
    return {k: statistics.median(v) for k, v in times.items()}, grids


def run_case(label, build, resolution, batch_size, points, repeats, device, precision) -> bool:
    torch.manual_seed(0)
    model, x, y = build()
    dirs = random_directions(model, (1, 2))
    nodes = resolution * resolution
    times, grids = time_methods(model, dirs, x, y, resolution, batch_size, points, repeats, device, precision)
    base, picked = times["reference"], grids["auto"].meta["method"]
    probe = max(times["auto"] - times[picked], 0.0)
    ok = True
    print(f"\n{label}: {resolution}x{resolution} grid, batch {batch_size}, {points} nodes/step, "
          f"{repeats} repeat(s), {precision}")
    print(f"  {'method':<10} {'median s':>9} {'ms/node':>9} {'speed-up':>9} {'max rel diff':>13}")
    for name, seconds in times.items():
        diff = float(np.max(np.abs(grids[name].loss / grids["reference"].loss - 1)))
        same = name == "reference" or precision != "fp32" or diff <= RTOL
        ok &= same
        note = "" if same else "  MISMATCH"
        if name == "auto":
            note += f"  picked {picked}; its one-time probe ~{probe:.2f} s ({100 * probe / seconds:.0f}%) included"
        print(f"  {name:<10} {seconds:>9.3f} {1e3 * seconds / nodes:>9.2f} {base / seconds:>8.2f}x {diff:>13.1e}{note}")
    if resolution < 51:  # the probe is paid once per grid: what it costs on the default 51x51
        projected = (base / nodes) / (times[picked] / nodes + probe / 51**2)
        print(f"  projected 51x51 with the probe paid once: auto {projected:.2f}x the reference")
    return ok


def run_full(device, precision: str) -> bool:
    """Full-width ResNet-18 on 5,000 images, 51x51; reference on the 3x3 sub-grid (nodes -1, 0, 1)."""
    model, x, y = image_case("resnet18", 1.0, 5000, 50, device)
    dirs = random_directions(model, (1, 2))
    seconds, grid = time_grid(lambda: evaluate_grid(model, dirs, x, y, 51, batch_size=512, points_per_step=8,
                                                    precision=precision, progress=True), device)
    ref_seconds, ref = time_grid(lambda: evaluate_grid_reference(model, dirs, x, y, 3, batch_size=512), device)
    sub = grid.loss[::25, ::25]
    diff = float(np.max(np.abs(sub / ref.loss - 1)))
    per_node, ref_per_node = seconds / 51**2, ref_seconds / 9
    print(f"\nResNet-18 (full width, {sum(p.numel() for p in model.parameters()):,} parameters), 51x51, "
          f"5,000 images, 50 classes, {precision}, method {grid.meta['method']} ({grid.meta['auto']})")
    print(f"  fast path: {seconds:.1f} s total, {1e3 * per_node:.1f} ms/node")
    print(f"  reference: {1e3 * ref_per_node:.1f} ms/node (3x3) -> {ref_per_node * 51**2:.1f} s projected for 51x51")
    print(f"  speed-up {ref_per_node / per_node:.2f}x; max rel diff on the 9 shared nodes {diff:.1e}"
          f"{'' if precision != 'fp32' or diff <= RTOL else '  MISMATCH'}")
    return precision != "fp32" or diff <= RTOL


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller grids and subsets, one repeat")
    parser.add_argument("--full", action="store_true", help="full-width ResNet-18, 51x51, 5,000 images (GPU)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "tf32", "bf16", "fp16"))
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1: comparable on shared machines)")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    timer = "process CPU time" if device.type == "cpu" else "wall time"
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s), timer: {timer}")
    if args.full:
        ok = run_full(device, args.precision)
    else:
        ok = all([run_case(*case, device, args.precision) for case in cases(args.quick, device)])
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
