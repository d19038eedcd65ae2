"""Registry of curvature measures and :func:`measure_curvature`, which runs a selection of them.

A measure is ``fn(model, x, y, *, batch_size, seed, **options) -> dict[str, float]``: flat named values,
each estimate beside its uncertainty (standard error, residual, convergence flag, non-finite count), so a
tracking layer can log them as metrics unchanged. Registering a function makes it selectable by name and
puts it under the registry-parametrized tests.
"""

from __future__ import annotations

import inspect
from dataclasses import fields, replace
from typing import Any, Callable

import torch.nn as nn
from torch import Tensor

from persist.config import CurvatureConfig
from persist.curvature._checks import at_least
from persist.curvature.eigen import EigenResult, extreme_eigenvalues
from persist.curvature.fisher import fisher_trace
from persist.curvature.hvp import flat_hvp, flat_hvp_rows, flatten, make_objective, measurement_mode
from persist.curvature.sharpness import epsilon_sharpness, loss_barrier
from persist.curvature.trace import hutchinson_trace, hutchpp_trace
from persist.errors import ConfigError
from persist.registry import Registry

Measure = Callable[..., dict[str, float]]
_MEASURES: Registry[Measure] = Registry("curvature measure", ConfigError)
DEFAULTS = CurvatureConfig()  # every default below comes from the config section
DEFAULT_MEASURES = DEFAULTS.measures


def register_measure(name: str | None = None) -> Callable[[Measure], Measure]:
    """Make a measure selectable by ``name`` in :func:`measure_curvature`."""
    return _MEASURES.register(name)


def list_measures() -> list[str]:
    """Names of all registered measures, sorted."""
    return _MEASURES.names()


def get_measure(name: str) -> Measure:
    """The registered measure called ``name`` (one-line error listing the choices otherwise)."""
    return _MEASURES.get(name)


@register_measure("hessian_trace")
def hessian_trace(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    batch_size: int = DEFAULTS.batch_size,
    seed: int = 0,
    trace_probes: int = DEFAULTS.probes,
    trace_method: str = "hutchinson",
    probe_batch: int = 4,
) -> dict[str, float]:
    """Trace of the subset-loss Hessian; ``trace_probes`` is the number of Hessian-vector products spent.

    ``trace_method='hutch++'`` spends the same budget on Hutch++, which is far more accurate when a few
    eigenvalues dominate, as they do after training. ``probe_batch`` products share one vmapped pass
    (faster, with activation-tangent memory growing in proportion); it never changes the result.
    """
    estimators = {"hutchinson": hutchinson_trace, "hutch++": hutchpp_trace}
    if trace_method not in estimators:
        raise ConfigError(f"trace_method must be one of {sorted(estimators)}, got {trace_method!r}")
    with measurement_mode(model):
        obj = make_objective(model, x, y, batch_size)
        out = estimators[trace_method](flat_hvp_rows(obj), flatten(obj.params), trace_probes, seed, probe_batch)
    return {"hessian_trace": out["trace"], "hessian_trace_se": out["trace_se"], "hessian_trace_matvecs": out["matvecs"]}


@register_measure("top_eigenvalues")
def top_eigenvalues(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    batch_size: int = DEFAULTS.batch_size,
    seed: int = 0,
    top_k: int = 1,
    eigen_tol: float = DEFAULTS.eigen_tol,
    eigen_maxiter: int = 50,
    eigen_ncv: int | None = None,
    largest_magnitude: bool = True,
) -> dict[str, float]:
    """Signed largest Hessian eigenvalues (``lambda_max``, ``lambda_2``, ...) and the largest-magnitude one.

    Each value comes with ``_residual`` (explicit ``‖Hu − λu‖``) and ``_converged`` (1.0/0.0). The largest-
    magnitude eigenvalue (``lambda_abs_max``, signed) equals ``lambda_max`` unless a negative eigenvalue
    dominates; it is what power iteration reports, kept under its own name for comparison.
    """
    at_least("top_k", top_k, 1)
    at_least("eigen_maxiter", eigen_maxiter, 1)
    with measurement_mode(model):
        obj = make_objective(model, x, y, batch_size)
        matvec, like = flat_hvp(obj), flatten(obj.params)
        solve: dict[str, Any] = dict(tol=eigen_tol, maxiter=eigen_maxiter, ncv=eigen_ncv, seed=seed)
        results = {"LA": extreme_eigenvalues(matvec, like, k=top_k, which="LA", **solve)}
        if largest_magnitude:
            results["LM"] = extreme_eigenvalues(matvec, like, k=1, which="LM", **solve)
    out = _eigen_values(results["LA"], ["lambda_max"] + [f"lambda_{i}" for i in range(2, top_k + 1)])
    if largest_magnitude:
        out.update(_eigen_values(results["LM"], ["lambda_abs_max"]))
    out["lambda_matvecs"] = float(sum(r.matvecs for r in results.values()))
    return out


def _eigen_values(result: EigenResult, names: list[str]) -> dict[str, float]:
    out = {}
    for i, name in enumerate(names):
        out[name] = float(result.values[i])
        out[f"{name}_residual"] = float(result.residuals[i])
        out[f"{name}_converged"] = float(result.converged[i])
    return out


register_measure("fisher_trace")(fisher_trace)
register_measure("sharpness")(epsilon_sharpness)
register_measure("barrier")(loss_barrier)

_COMMON = {"model", "x", "y", "batch_size", "seed"}


def measure_options(name: str) -> list[str]:
    """The options a measure accepts besides the common ``batch_size`` and ``seed``."""
    return [p for p in inspect.signature(get_measure(name)).parameters if p not in _COMMON]


def measure_curvature(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    config: CurvatureConfig = DEFAULTS,
    *,
    seed: int = 0,
    **options: Any,
) -> tuple[dict[str, float], dict[str, str]]:
    """Run ``config.measures`` on the first ``config.subset`` examples of ``(x, y)``; returns ``(values, failures)``.

    ``config`` is a :class:`CurvatureConfig` (defaults: ``CurvatureConfig()``); a keyword named like one of its
    fields (``measures=``, ``batch_size=``, ``probes=``, ...) overrides it. Every other keyword is a measure
    option and goes to every selected measure that accepts it (``trace_probes=`` overrides ``probes``); an
    option no registered measure accepts is a typo and raises. A measure that fails is recorded as
    ``name -> one-line reason`` and the others still run (the published code dropped failed metrics silently,
    shrinking n for exactly the attention and hardsigmoid architectures). Option errors (:class:`ConfigError`)
    are the caller's to fix and raise.
    """
    section = {f.name for f in fields(CurvatureConfig)}
    fixed: dict[str, Any] = {k: (tuple(v) if k == "measures" else v) for k, v in options.items() if k in section}
    c = replace(config, **fixed)
    options = {"trace_probes": c.probes, "eigen_tol": c.eigen_tol, "directions": c.barrier_directions,
               **{k: v for k, v in options.items() if k not in section}}
    measures, batch_size, x, y = c.measures, c.batch_size, x[: c.subset], y[: c.subset]
    selected = [get_measure(name) for name in measures]
    known = {opt for name in list_measures() for opt in measure_options(name)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"unknown curvature option '{unknown[0]}'; choose from: {', '.join(sorted(known))}")
    values: dict[str, float] = {}
    failures: dict[str, str] = {}
    for name, fn in zip(measures, selected, strict=True):
        accepted = {k: v for k, v in options.items() if k in measure_options(name)}
        try:
            values.update(fn(model, x, y, batch_size=batch_size, seed=seed, **accepted))
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001  (a failed measure must not stop the others)
            failures[name] = _one_line(exc)
    return values, failures


def _one_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:300] if lines else ''}".rstrip(": ")
