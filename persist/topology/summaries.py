"""Scalar summaries of persistence diagrams, as flat ``dict[str, float]`` ready to log.

Totals are over finite bars only: the essential H0 bar of the global minimum has no lifetime, so it is
reported on its own (``h0_essential_birth``, the minimum loss) instead of making every total infinite.
Short bars are split off at a noise floor ``eps``: a bar no longer than the evaluation noise can appear or
vanish between two evaluations of the same landscape (see :mod:`persist.topology.noise`), so counts and
totals above ``eps`` are the reproducible part and the part below is reported next to them.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from persist.errors import ConfigError, DataError
from persist.topology.diagrams import as_diagram, close_essential, lifetimes, split_essential


def total_persistence(diagram: np.ndarray, p: float = 1.0) -> float:
    """The p-norm ``(sum l**p) ** (1/p)`` of the finite lifetimes; ``p=1`` is the total persistence.

    ``p=1`` weighs every bar by its depth, so many shallow bars add up; larger ``p`` lets the deepest
    basins and widest loops dominate, which is less sensitive to noise; ``p=inf`` is the longest bar.
    """
    _check_p(p)
    life = lifetimes(diagram)
    if life.size == 0:
        return 0.0
    if np.isinf(p):
        return float(life.max())
    return float(np.sum(life**p) ** (1.0 / p))


def persistence_entropy(diagram: np.ndarray) -> float:
    """Shannon entropy (nats) of the finite lifetimes normalised to sum to one.

    It is high when persistence is spread over many comparable bars (a rugged landscape) and 0 when one
    bar carries it all, independently of the loss scale.
    """
    life = lifetimes(diagram)
    total = life.sum()
    if total == 0.0:
        return 0.0
    share = life / total
    return float(-np.sum(share * np.log(share)))


def summarize(
    diagrams: Mapping[int, np.ndarray],
    dims: Sequence[int] = (0, 1),
    eps: float | Mapping[int, float] = 0.0,
    p: float = 2.0,
    essential_death: float | None = None,
) -> dict[str, float]:
    """All scalar summaries of ``diagrams`` for the homology dimensions ``dims``.

    Keys per dimension ``k``: ``hk_count``, ``hk_total_persistence``, ``hk_persistence_norm_p{p}``,
    ``hk_max_lifetime``, ``hk_persistence_entropy``, ``hk_count_above_eps``, ``hk_total_above_eps``,
    ``hk_count_below_eps``, ``hk_total_below_eps``, ``hk_essential_count``; plus ``h0_essential_birth``
    (the global minimum, NaN without an essential H0 bar) when 0 is in ``dims``. A dimension missing
    from ``diagrams`` counts as empty, so the keys depend only on the arguments.

    Args:
        diagrams: ``{k: (n, 2)}`` as returned by :func:`lower_star_diagrams`.
        dims: homology dimensions to summarise.
        eps: noise floor in loss units; bars with lifetime ``> eps`` count as above it. A mapping gives
            one floor per homology dimension (floors measured per dimension, e.g. bottleneck or bootstrap).
        p: exponent of the extra p-norm key.
        essential_death: if given, essential bars are closed at this value (e.g. the grid maximum) and
            enter the totals; by default they are excluded and only counted.
    """
    if isinstance(eps, Mapping) and not set(dims) <= set(eps):
        raise ConfigError(f"eps has no floor for homology dimension(s) {sorted(set(dims) - set(eps))}")
    floors = {k: eps[k] for k in dims} if isinstance(eps, Mapping) else {k: eps for k in dims}
    for floor in floors.values():
        if not (floor >= 0 and np.isfinite(floor)):
            raise ConfigError(f"eps must be a finite number >= 0, got {floor!r}")
    _check_p(p)
    out: dict[str, float] = {}
    for k in dims:
        diagram = as_diagram(diagrams.get(k, ()))
        _, essential_births = split_essential(diagram)
        if essential_death is not None:
            diagram = close_essential(diagram, essential_death)
        out.update(_dimension_summary(f"h{k}", diagram, floors[k], p))
        out[f"h{k}_essential_count"] = float(essential_births.size)
        if k == 0:
            out["h0_essential_birth"] = float(essential_births.min()) if essential_births.size else float("nan")
    return out


def aggregate_summaries(summaries: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Mean and sample standard deviation (``_mean``, ``_sd``) of each key over slices.

    One random slice of a landscape is one draw; the slice-to-slice spread is the error bar of any
    topological claim, so it is reported next to the mean. ``_sd`` uses ``ddof=1`` (NaN for one slice).
    """
    if not summaries:
        raise DataError("summaries is empty; aggregate at least one slice")
    keys = list(summaries[0])
    for i, summary in enumerate(summaries):
        if set(summary) != set(keys):
            differing = sorted(set(keys) ^ set(summary))
            raise DataError(f"summaries[{i}] keys differ from summaries[0]: {', '.join(differing)}")
    table = np.array([[s[k] for k in keys] for s in summaries], dtype=np.float64)
    sd = table.std(axis=0, ddof=1) if len(summaries) > 1 else np.full(len(keys), np.nan)
    out: dict[str, float] = {}
    for key, mean, spread in zip(keys, table.mean(axis=0), sd, strict=True):
        out[f"{key}_mean"] = float(mean)
        out[f"{key}_sd"] = float(spread)
    return out


def _dimension_summary(prefix: str, diagram: np.ndarray, eps: float, p: float) -> dict[str, float]:
    life = lifetimes(diagram)
    above = life > eps
    return {
        f"{prefix}_count": float(life.size),
        f"{prefix}_total_persistence": float(life.sum()),
        f"{prefix}_persistence_norm_p{p:g}": total_persistence(diagram, p),
        f"{prefix}_max_lifetime": float(life.max()) if life.size else 0.0,
        f"{prefix}_persistence_entropy": persistence_entropy(diagram),
        f"{prefix}_count_above_eps": float(above.sum()),
        f"{prefix}_total_above_eps": float(life[above].sum()),
        f"{prefix}_count_below_eps": float((~above).sum()),
        f"{prefix}_total_below_eps": float(life[~above].sum()),
    }


def _check_p(p: float) -> None:
    if not p >= 1:
        raise ConfigError(f"p must be >= 1 (a norm exponent), got {p!r}")
