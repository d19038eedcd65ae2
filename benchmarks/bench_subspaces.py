"""3-D Hessian-eigenvector landscape: persist vs Landscaper's ``compute_loss_landscape``, same run, same nodes.

    pip install -e '.[bench]'                      # landscaper (optional benchmark dependency)
    python benchmarks/bench_subspaces.py            # 21^3 grid, small CNN on digits (a few minutes on 2 cores)
    python benchmarks/bench_subspaces.py --quick    # 9^3

A small CNN (width 0.5) is trained for a few epochs on digits task A. The top-3 eigenvectors of the
Hessian of its training loss (512 examples) come from persist's Lanczos. Landscaper receives those three
eigenvectors; it rescales each (per tensor to sqrt(numel), then to ``||theta|| * distance / (steps / 2)``)
and walks the grid by repeated in-place additions of that step, one node and one forward at a time.
persist receives the very step vectors Landscaper ends up using (computed here with Landscaper's own
normalization on copies) with integer coordinates ``-c .. c`` per axis, so both visit the same nodes;
persist builds each node in closed form (``[1, a, b, c] @ [theta; d1; d2; d3]``) and evaluates several
at once. Reported: wall and CPU time of each, their ratio, and the largest difference between the two
loss hypercubes (Landscaper adds noise to its maximum node "to avoid flat regions"; that node is left out
of the comparison and counted). Without landscaper installed, the baseline is persist's naive per-node
loop (``evaluate_grid_reference``) on the same nodes.
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch
import torch.nn.functional as F

from persist.config import TrainConfig
from persist.data import load_task
from persist.landscape import Directions, evaluate_grid, evaluate_grid_reference
from persist.landscape.parameters import parameter_layout
from persist.landscape.subspaces import hessian_directions
from persist.models import create_model
from persist.training import train


def trained_cnn(epochs: int):
    task = load_task("digits", "A")
    torch.manual_seed(0)
    model = create_model("cnn", task.num_classes, task.in_channels, task.image_size, 0.5)
    cfg = TrainConfig(epochs=epochs, batch_size=64, lr=0.05, warmup_epochs=1)
    model.load_state_dict(train(cfg, model, task, seed=0).best_state)
    return model.eval(), task


def landscaper_steps(model, eigvecs: list[list[torch.Tensor]], steps: int, distance: float) -> list[list[torch.Tensor]]:
    """The step vectors Landscaper derives from ``eigvecs`` (its own normalization, applied to copies)."""
    from landscaper.compute import get_model_norm, get_model_parameters, normalize_direction

    start = get_model_parameters(model, False)
    out = []
    for d in copy.deepcopy(eigvecs):
        d = normalize_direction(d, start)
        scale = ((get_model_norm(start) * distance) / (steps / 2)) / get_model_norm(d)
        out.append([t * scale for t in d])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="9^3 instead of 21^3")
    parser.add_argument("--distance", type=float, default=0.1, help="Landscaper's distance (share of ||theta||)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        from landscaper.compute import compute_loss_landscape
    except ImportError:
        compute_loss_landscape = None
        print("landscaper is not installed (pip install --no-deps landscaper): the baseline is persist's naive "
              "per-node loop (evaluate_grid_reference) on the same directions and nodes")

    steps = 9 if args.quick else 21
    model, task = trained_cnn(3 if args.quick else 6)
    x, y = task.x_test, task.y_test
    began = time.perf_counter()
    hessian = hessian_directions(model, task.x_train[:512], task.y_train[:512], 3, batch_size=128, tol=1e-4)
    print(f"Hessian top-3 eigenvalues {np.round(hessian.record['eigenvalues'], 4).tolist()} "
          f"({hessian.record['matvecs']} HVPs, {time.perf_counter() - began:.1f} s)")
    names = [n for n, _ in model.named_parameters()]
    eigvecs = [[v[n].clone() for n in names] for v in hessian.vectors]
    step_vectors = (landscaper_steps(model, eigvecs, steps, args.distance) if compute_loss_landscape else
                    [[t * args.distance / (steps / 2) for t in v] for v in eigvecs])
    center = steps // 2
    axis = np.arange(steps, dtype=np.float64) - center
    shared = Directions(tuple(dict(zip(names, s, strict=True)) for s in step_vectors), {"family": "landscaper steps"},
                        axes=(axis, axis, axis))
    assert len(parameter_layout(model).names) == len(names)

    def scalar_fn(m, data):
        with torch.no_grad():
            return float(F.cross_entropy(m(data[0]), data[1]))

    wall, cpu = time.perf_counter(), time.process_time()
    ours = evaluate_grid(model, shared, x, y, resolution=steps, batch_size=len(x), method="auto",
                         measure_limit=True)
    ours_wall, ours_cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"persist: {ours_wall:.1f} s wall, {ours_cpu:.1f} s CPU ({ours.meta['method']}); "
          f"limit ratio {ours.meta['limit_ratio']:.2f} wall, {ours.meta['limit_ratio_cpu']:.2f} CPU")

    wall, cpu = time.perf_counter(), time.process_time()
    if compute_loss_landscape is not None:
        theirs, _ = compute_loss_landscape(model, (x, y), eigvecs, scalar_fn, steps=steps, distance=args.distance,
                                           dim=3, device="cpu")
        noisy = theirs == theirs.max()
    else:
        theirs = evaluate_grid_reference(model, shared, x, y, resolution=steps, batch_size=len(x)).loss
        noisy = np.zeros(theirs.shape, dtype=bool)
    their_wall, their_cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{'landscaper' if compute_loss_landscape else 'naive loop'}: {their_wall:.1f} s wall, "
          f"{their_cpu:.1f} s CPU")

    diff = np.abs(ours.loss - theirs)[~noisy]
    rel = diff / np.abs(theirs[~noisy])
    print(f"nodes {steps ** 3}; speed-up (baseline / persist): {their_wall / ours_wall:.1f}x wall, "
          f"{their_cpu / ours_cpu:.1f}x CPU")
    print(f"max |difference| of the loss hypercubes: {diff.max():.2e} (relative {rel.max():.2e}); "
          f"{int(noisy.sum())} node(s) left out (landscaper's noised maximum); loss range "
          f"{ours.loss.min():.4f} .. {ours.loss.max():.4f}, centre {ours.loss[(center,) * 3]:.6f}")
    return 0 if rel.max() < 1e-4 else 1


if __name__ == "__main__":
    raise SystemExit(main())
