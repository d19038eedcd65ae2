"""Evaluate many parameter vectors ("nodes") on one data set: the hot path of grids and paths.

Two fast strategies, both with losses accumulated in fp32 on the device and no host sync per batch:

* ``vmap``: ``torch.func.functional_call`` mapped over a chunk of K nodes, so one forward pass serves
  K models. Pays off when per-call overhead (Python, dispatch, kernel launches) dominates a node's
  cost: small models, small batches, GPUs.
* ``foreach``: one node at a time, written into the model with a single ``torch._foreach_copy_``.
  Pays off when one forward pass already saturates the device (large models, big batches).

Both run under ``torch.inference_mode`` (no version counters or autograd bookkeeping per op: 25-45 %
less per-node overhead for the small models on a CPU than ``no_grad``).

``auto`` times both on one batch and keeps the faster; the choice is recorded.
"""

from __future__ import annotations

import time
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Iterator, Literal

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, vmap

from persist.errors import ConfigError
from persist.landscape.parameters import FlatLayout

Method = Literal["auto", "vmap", "foreach"]
Precision = Literal["fp32", "tf32", "bf16", "fp16"]
METHODS = ("auto", "vmap", "foreach")
PRECISIONS = {"fp32": None, "tf32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def check_choice(name: str, value: str, choices) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got '{value}'")


def check_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def autocast_for(device: torch.device, precision: str):
    """Reduced precision only when asked for; the loss itself is always computed and summed in fp32."""
    dtype = PRECISIONS[precision]
    return nullcontext() if dtype is None else torch.autocast(device_type=device.type, dtype=dtype)


@contextmanager
def tf32_policy(precision: str) -> Iterator[dict[str, bool]]:
    """``fp32`` means IEEE fp32: TF32 (cuDNN's default for convolutions on Ampere+ GPUs, a silent
    10-bit-mantissa mode) is switched off for the duration; ``tf32`` switches it on explicitly.
    Reduced-precision autocast runs leave the global flags alone. Yields the flags in force."""
    if precision not in ("fp32", "tf32"):
        yield {"cudnn_tf32": torch.backends.cudnn.allow_tf32, "matmul_tf32": torch.backends.cuda.matmul.allow_tf32}
        return
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    allow = precision == "tf32"
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = allow
    try:
        yield {"cudnn_tf32": allow, "matmul_tf32": allow}
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels, so the ``auto`` probe times work rather than its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def nonfinite_to_inf(loss: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """NaN becomes +inf (a diverged node is "infinitely high", never a finite stand-in); counts both."""
    loss = np.array(loss, dtype=np.float64)
    nan = np.isnan(loss)
    counts = {"nonfinite_count": int(np.count_nonzero(~np.isfinite(loss))), "nan_count": int(np.count_nonzero(nan))}
    loss[nan] = np.inf
    return loss, counts


@dataclass
class NodeEvaluator:
    """Everything fixed across nodes: the model, which tensors vary per node, the data and the precision.

    ``params`` lays out the named parameters of each node vector; ``buffers`` (optional) lays out
    floating buffers that also vary per node (interpolated BN statistics on a path). Buffers not in
    ``buffers`` are the model's own and stay fixed.
    """

    model: nn.Module
    params: FlatLayout
    x: torch.Tensor
    y: torch.Tensor
    batch_size: int
    precision: str = "fp32"
    buffers: FlatLayout | None = None
    per_example: bool = False  # also return each example's loss at each node, (K, N) float32
    _targets: list[torch.Tensor] = field(init=False, repr=False)
    _buffer_targets: list[torch.Tensor] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        named_params, named_buffers = dict(self.model.named_parameters()), dict(self.model.named_buffers())
        self._targets = [named_params[n] for n in self.params.names]
        self._buffer_targets = [] if self.buffers is None else [named_buffers[n] for n in self.buffers.names]

    def batches(self, limit: int | None = None):
        n = len(self.x) if limit is None else min(limit, len(self.x))
        for start in range(0, n, self.batch_size):
            stop = min(start + self.batch_size, n)
            yield self.x[start:stop], self.y[start:stop]

    @torch.inference_mode()
    def run(self, method: str, params: torch.Tensor, buffers: torch.Tensor | None = None,
            limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Summed cross-entropy (fp32), correct counts (int64) and, when ``per_example``, each example's
        cross-entropy ``(K, N)`` (else None) of each node, on the device.

        ``params`` is ``(K, P)``; ``buffers`` is ``(K, B)`` when per-node buffers are laid out.
        ``limit`` evaluates only the first samples (used by the ``auto`` probe).
        """
        if method == "vmap":
            return self._run_vmap(params, buffers, limit)
        return self._run_foreach(params, buffers, limit)

    def _run_vmap(self, params, buffers, limit):
        model, device = self.model, self.x.device
        named = self.params.unflatten(params)
        if buffers is None:
            def forward(p, xb):
                return functional_call(model, p, (xb,))
            mapped = vmap(forward, in_dims=(0, None))
            args = (named,)
        else:
            def forward_with_buffers(p, b, xb):
                return functional_call(model, (p, b), (xb,))
            mapped = vmap(forward_with_buffers, in_dims=(0, 0, None))
            args = (named, self.buffers.unflatten(buffers))
        loss = torch.zeros(len(params), dtype=torch.float32, device=device)
        correct = torch.zeros(len(params), dtype=torch.int64, device=device)
        kept = []
        for xb, yb in self.batches(limit):
            with autocast_for(device, self.precision):
                logits = mapped(*args, xb)
            logits = logits.float()  # (K, B, C)
            target = yb.expand(len(params), -1)
            each = F.cross_entropy(logits.transpose(1, 2), target, reduction="none")
            loss += each.sum(1)
            correct += (logits.argmax(-1) == target).sum(1)
            if self.per_example:
                kept.append(each)
        return loss, correct, (torch.cat(kept, dim=1) if self.per_example else None)

    def _run_foreach(self, params, buffers, limit):
        model, device = self.model, self.x.device
        losses, corrects, kept = [], [], []
        for k in range(len(params)):
            torch._foreach_copy_(self._targets, list(self.params.unflatten(params[k]).values()))
            if buffers is not None:
                torch._foreach_copy_(self._buffer_targets, list(self.buffers.unflatten(buffers[k]).values()))
            loss = torch.zeros((), dtype=torch.float32, device=device)
            correct = torch.zeros((), dtype=torch.int64, device=device)
            each = []
            for xb, yb in self.batches(limit):
                with autocast_for(device, self.precision):
                    logits = model(xb)
                logits = logits.float()
                if self.per_example:
                    each.append(F.cross_entropy(logits, yb, reduction="none"))
                    loss += each[-1].sum()
                else:
                    loss += F.cross_entropy(logits, yb, reduction="sum")
                correct += (logits.argmax(-1) == yb).sum()
            losses.append(loss)
            corrects.append(correct)
            if self.per_example:
                kept.append(torch.cat(each))
        return torch.stack(losses), torch.stack(corrects), (torch.stack(kept) if self.per_example else None)


def forward_limit(evaluator: NodeEvaluator, repeats: int = 3) -> dict[str, float]:
    """The forward-only limit of node evaluation: the model's own forward passes over the same batches, in
    inference mode at the same precision, best of ``repeats`` after a warm-up. No grid evaluation can beat
    one such pass per node (vmap aside, which shares a pass among nodes), so ``grid rate / this rate``
    says how much of the hardware the evaluation leaves unused."""
    device, model = evaluator.x.device, evaluator.model
    times, cpu_times = [], []
    with torch.inference_mode():
        for _ in range(repeats + 1):
            synchronize(device)
            start, cpu_start = time.perf_counter(), time.process_time()
            for xb, _ in evaluator.batches():
                with autocast_for(device, evaluator.precision):
                    model(xb)
            synchronize(device)
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
    best = min(times[1:])
    return {"forward_seconds": best, "forward_nodes_per_second": 1.0 / best if best > 0 else float("inf"),
            "forward_cpu_seconds": min(cpu_times[1:])}


def _timed(evaluator: NodeEvaluator, method: str, params: torch.Tensor, buffers: torch.Tensor | None
           ) -> tuple[float, tuple]:
    """Seconds per node on the first batch (after a 2-sample warm-up for first-call costs), and the result."""
    device = evaluator.x.device
    evaluator.run(method, params, buffers, limit=2)
    synchronize(device)
    start = time.perf_counter()
    result = evaluator.run(method, params, buffers, limit=evaluator.batch_size)
    synchronize(device)
    return (time.perf_counter() - start) / len(params), result


# Measured on CPU too: small models (the digits MLP) are overhead-bound and vmap wins there, while convolutions
# favour foreach (docs/benchmarks/landscape.md). When the data fit one batch, the winner's probe result is kept,
# so the probe costs one step of the loser: under 2 % of a 21x21 grid at 8 nodes per step.
PROBE_ON_CPU = True


def choose_method(evaluator: NodeEvaluator, params: torch.Tensor, buffers: torch.Tensor | None = None
                  ) -> tuple[Method, dict[str, float | str], tuple | None]:
    """Time both strategies on the first batch for ``params``' nodes; return the faster and the evidence.

    When that batch is the whole data set, the winner's result is returned too (it is exactly what a
    regular run of those nodes computes), so the probe costs only the loser's time. One node per step
    leaves nothing for vmap to batch, so that case is decided by rule. vmap loses by default when the
    chunk does not fit in GPU memory or the model uses an op vmap cannot map.
    """
    if len(params) == 1:
        return "foreach", {"rule": "one node per step"}, None
    if params.device.type == "cpu" and not PROBE_ON_CPU:
        return "foreach", {"rule": "cpu"}, None
    evidence: dict[str, float | str] = {"rule": "measured"}
    foreach_seconds, result = _timed(evaluator, "foreach", params, buffers)
    evidence["foreach_seconds_per_node"] = foreach_seconds
    chosen: Method = "foreach"
    try:
        with warnings.catch_warnings():  # ops without a batching rule fall back to a loop: the timing shows it
            warnings.filterwarnings("ignore", message="There is a performance drop")
            vmap_seconds, vmap_result = _timed(evaluator, "vmap", params, buffers)
        evidence["vmap_seconds_per_node"] = vmap_seconds
        if vmap_seconds < foreach_seconds:
            chosen, result = "vmap", vmap_result
    except (torch.cuda.OutOfMemoryError, RuntimeError) as exc:
        if isinstance(exc, torch.cuda.OutOfMemoryError):
            torch.cuda.empty_cache()
        evidence["vmap_error"] = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"
    return chosen, evidence, (result if evaluator.batch_size >= len(evaluator.x) else None)
