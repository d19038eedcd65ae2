"""The phase table: every fact about a phase that more than one module needs, kept once.

A phase's ``sections`` are the config sections its run hash depends on (a change elsewhere reuses the run),
``prefixes`` the metric-name prefixes it logs (the study table and sweep objectives find a metric's phase
by them), and ``upstream`` the phases whose runs it may read a model from (the first is its usual input).
The pipeline runs the phases with ``in_pipeline`` in table order; a downstream phase inherits the sections
of ``train`` from its upstream run and may not override them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Phase:
    name: str
    sections: tuple[str, ...]
    prefixes: tuple[str, ...]
    upstream: tuple[str, ...] = ()
    in_pipeline: bool = True


PHASE_TABLE: dict[str, Phase] = {p.name: p for p in (
    Phase("train", ("data", "model", "train", "seed"), ("model/", "train/")),
    Phase("landscape", ("landscape", "topology", "curvature"), ("topology/", "curvature/", "landscape/"), ("train",)),
    Phase("forgetting", ("data", "forgetting", "seed"), ("forgetting/",), ("train",)),
    Phase("neural_persistence", ("neural_persistence",), ("np/",), ("train", "forgetting"), in_pipeline=False),
)}

PIPELINE_PHASES: tuple[str, ...] = tuple(name for name, p in PHASE_TABLE.items() if p.in_pipeline)

