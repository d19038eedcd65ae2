"""The study row on the architecture runs, so MLflow's own views can ask the study's question.

MLflow's compare, scatter and parallel-coordinates views plot metrics *within* a run, but topology and
curvature sit on landscape runs, retention on forgetting runs and parameter counts on train runs. Here
each architecture run (one per architecture x width x seed) receives its row of the joined study table
as ``study/*`` metrics under stable names (``study/h1_total``, ``study/ret_100``, ``study/params``, ...);
when a study has several seeds, one ``architecture_mean`` run per architecture holds their means (what
the analysis averages); and the study run holds the whole table via ``mlflow.log_table``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Protocol, Sequence

import numpy as np
import pandas as pd

from persist.artifacts import STUDY_TABLE
from persist.phases.table import PIPELINE_PHASES
from persist.tracking.native import child_run, log_metrics_to, log_table, run_metrics, set_run_tags
from persist.tracking.runs import metric_name

# phase-run metric -> study name; the analysis spec's `columns` are added (and win on a clash)
BASE_COLUMNS: dict[str, str] = {
    "topology/h0_total_persistence_mean": "h0_total",
    "topology/h1_total_persistence_mean": "h1_total",
    "topology/h0_count_above_eps_mean": "h0_count",
    "topology/h1_count_above_eps_mean": "h1_count",
    "topology/h1_max_lifetime_mean": "h1_max_lifetime",
    "topology/grid_mean_mean": "mean_loss",
    "topology/noise_floor_mean": "noise_floor",
    "curvature/hessian_trace": "hessian_trace",
    "curvature/lambda_max": "top_eigenvalue",
    "curvature/fisher_trace_model": "fisher_trace_model",
    "curvature/fisher_trace_empirical": "fisher_trace_empirical",
    "curvature/sharpness": "sharpness",
    "model/num_params": "params",
    "train/test_accuracy": "task_a_accuracy",
    "forgetting/aurc": "aurc",
    "forgetting/aurc_masked": "aurc_masked",
    "forgetting/bwt": "bwt",
}
# retention at every evaluated step, whatever the schedule: forgetting/ret_100 -> ret_100
RETENTION = re.compile(r"^forgetting/(ret(?:_masked)?_\d+)$")
PHASES = PIPELINE_PHASES


class Member(Protocol):
    arch: str
    width: float
    seed: int
    run_ids: dict[str, str]


def study_columns(spec_path: str | Path | None = None) -> dict[str, str]:
    """Phase-run metric -> study-row name: the base set plus the analysis spec's ``columns``."""
    columns = dict(BASE_COLUMNS)
    if spec_path is not None:
        from persist.phases.analysis import resolve_spec
        from persist.stats import load_spec

        spec_columns = dict(load_spec(resolve_spec(spec_path)).columns)
        clash = set(spec_columns.values())
        columns = {k: v for k, v in columns.items() if v not in clash}
        columns.update(spec_columns)
    return columns


def study_row(phase_metrics: Mapping[str, float], columns: Mapping[str, str]) -> dict[str, float]:
    """``study/<name>`` metrics of one member from the merged metrics of its phase runs."""
    row = {f"study/{metric_name(name)}": float(phase_metrics[m]) for m, name in columns.items() if m in phase_metrics}
    for m, value in phase_metrics.items():
        match = RETENTION.match(m)
        if match:
            row.setdefault(f"study/{match.group(1)}", float(value))
    return row


def member_metrics(run_ids: Mapping[str, str]) -> dict[str, float]:
    """The metrics of the member's phase runs; each ``landscape_<family>`` run's ``topology/*`` also as
    ``topology_<family>/*`` (the names study_table gives them)."""
    merged: dict[str, float] = {}
    for phase in PHASES:
        if phase in run_ids:
            merged.update(run_metrics(run_ids[phase]))
    for key, run_id in run_ids.items():
        if key.startswith("landscape_"):
            merged.update(family_metrics(key[len("landscape_"):], run_metrics(run_id)))
    return merged


def family_metrics(family: str, metrics: Mapping[str, float]) -> dict[str, float]:
    """``topology/x`` of one family's landscape run as ``topology_<family>/x``."""
    return {f"topology_{family}/{m[len('topology/'):]}": v for m, v in metrics.items() if m.startswith("topology/")}


def label(member: Member) -> str:
    return f"{member.arch}@{member.width:g}"


def log_architecture_row(member: Member, columns: Mapping[str, str]) -> dict[str, float]:
    """Log the member's row on its architecture run (finished or not); returns the row."""
    row = study_row(member_metrics(member.run_ids), columns)
    run_id = member.run_ids["architecture"]
    log_metrics_to(run_id, row)
    set_run_tags(run_id, {"persist.member": label(member)})  # group-by key in the UI's runs table
    return row


def mean_rows(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Per architecture (label): mean and sd of every ``study/*`` value over seeds, and ``n_seeds``."""
    df = pd.DataFrame(list(rows))
    metrics = [c for c in df.columns if c.startswith("study/")]
    grouped = df.groupby("member", sort=False)[metrics]
    means = grouped.mean()
    sds = grouped.std(ddof=1).add_suffix("_sd").rename(columns=lambda c: c.replace("study/", "study_sd/", 1))
    out = pd.concat([means, sds], axis=1)
    out["study/n_seeds"] = df.groupby("member", sort=False).size()
    return out


def log_study_rows(members: Sequence[Member], study_run_id: str, experiment_id: str,
                   spec_path: str | Path | None = None) -> pd.DataFrame:
    """Rows on every architecture run, seed means on ``architecture_mean`` runs (several seeds only),
    and the joined table ``study/table.json`` on the study run; returns that table."""
    columns = study_columns(spec_path)
    records = []
    for member in members:
        row = log_architecture_row(member, columns)
        records.append({"member": label(member), "arch": member.arch, "width": member.width, "seed": member.seed,
                        **{f"{p}_run_id": member.run_ids.get(p, "") for p in ("architecture", *PHASES)},
                        **{f"{p}_run_id": r for p, r in member.run_ids.items() if p.startswith("landscape_")}, **row})
    table = pd.DataFrame(records)
    if table["seed"].nunique() > 1:
        for name, values in mean_rows(records).iterrows():
            finite = {k: float(v) for k, v in values.items() if np.isfinite(v)}
            run_id = child_run(study_run_id, experiment_id, f"{name} mean of {int(values['study/n_seeds'])} seeds",
                               {"persist.phase": "architecture_mean", "persist.member": str(name)})
            log_metrics_to(run_id, finite)
    log_table(table, STUDY_TABLE, run_id=study_run_id)
    return table
