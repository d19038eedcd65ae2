"""Analysis phase: join the study's runs from the tracking store (or read a table) and test the spec.

The statistics (persist.stats) draw nothing; this phase asks persist/plots/stats.py for the figures
and writes them next to the report."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from persist.architectures import family_of
from persist.errors import DataError, UpstreamRunNotFound
from persist.phases.table import PHASE_TABLE, PIPELINE_PHASES
from persist.stats import AnalysisResult, load_spec, run_analysis, write_report
from persist.tracking import find_runs, log_directory, log_metrics, phase_run
from persist.tracking.runs import experiment_id

MEMBER_TAGS = ("persist.arch", "persist.width", "persist.dataset", "persist.seed")
PHASE_PREFIXES = {phase: PHASE_TABLE[phase].prefixes for phase in PIPELINE_PHASES}


def _member(tags: dict[str, str]) -> tuple[str, ...]:
    return tuple(tags.get(t, "") for t in MEMBER_TAGS)


def study_table(experiment: str, train_run_ids: set[str] | None = None) -> pd.DataFrame:
    """One row per architecture x width x dataset x seed with the newest finished run of each phase.

    Landscape and forgetting runs count only when their upstream is that row's train run, so a row
    never mixes measurements of two different trained models. ``train_run_ids`` restricts the rows to
    those models (the pipeline passes its own, so unrelated runs in the experiment are never mixed in).
    """
    exp = experiment_id(experiment)
    runs = sorted((run for phase in PHASE_PREFIXES for run in
                   find_runs(f"attributes.status = 'FINISHED' and tags.`persist.phase` = '{phase}'", [exp])),
                  key=lambda run: run.info.start_time, reverse=True)
    trains: dict[tuple[str, ...], Any] = {}  # member -> its newest finished train run
    for run in runs:  # newest first
        if run.data.tags["persist.phase"] == "train" and (train_run_ids is None or run.info.run_id in train_run_ids):
            trains.setdefault(_member(run.data.tags), run)
    rows = []
    for member, train in trains.items():
        arch, width, dataset, seed = member
        row: dict[str, Any] = {"arch": arch if float(width or 1) == 1.0 else f"{arch}@{float(width):g}",
                               "architecture": arch, "width": float(width or 1), "dataset": dataset,
                               "seed": int(seed or 0), "type": family_of(arch),
                               "train_run_id": train.info.run_id}
        done = {"train"}
        row.update({k: v for k, v in train.data.metrics.items() if k.startswith(PHASE_PREFIXES["train"])})
        for run in runs:
            phase = run.data.tags["persist.phase"]
            if run.data.tags.get("persist.upstream_run_id") != train.info.run_id:
                continue
            if phase == "landscape":
                add_family_columns(row, run, done)
            if phase in done or (phase == "landscape" and directions_of(run.data.tags) != "random"):
                continue
            done.add(phase)
            row[f"{phase}_run_id"] = run.info.run_id
            row.update({k: v for k, v in run.data.metrics.items() if k.startswith(PHASE_PREFIXES[phase])})
        rows.append(row)
    if not rows:
        raise UpstreamRunNotFound(f"experiment '{experiment}' has no finished train runs to analyse")
    return pd.DataFrame(rows)


def directions_of(tags: dict[str, str]) -> str:
    """A landscape run's direction family (runs from before the tag are random)."""
    return tags.get("persist.directions", "random")


def add_family_columns(row: dict[str, Any], run: Any, done: set[str]) -> None:
    """The newest landscape run of each direction family fills ``topology_<family>/*`` and
    ``landscape_<family>_run_id``; curvature comes from whichever family measured it. The random
    family also keeps the plain ``topology/*`` names (filled by the caller)."""
    family = directions_of(run.data.tags)
    if f"landscape_{family}" in done:
        return
    done.add(f"landscape_{family}")
    row[f"landscape_{family}_run_id"] = run.info.run_id
    for name, value in run.data.metrics.items():
        if name.startswith("topology/"):
            row[f"topology_{family}/{name[len('topology/'):]}"] = value
        elif name.startswith("curvature/"):
            row.setdefault(name, value)


def resolve_spec(path: str | Path) -> Path:
    """A spec path as given, else relative to the persist checkout that ships ``analysis/``."""
    given = Path(path)
    shipped = Path(__file__).resolve().parents[2] / given
    return given if given.is_file() or given.is_absolute() or not shipped.is_file() else shipped


def read_table(path: str | Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"--table {path} cannot be read as CSV ({type(exc).__name__})") from None


def write_outputs(result: AnalysisResult, out_dir: str | Path) -> list[Path]:
    """The report, its CSVs and its figures (figures/*.png) under ``out_dir``; returns the paths."""
    import matplotlib.pyplot as plt

    from persist.plots.stats import analysis_figures

    folder = Path(out_dir) / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    figures = []
    for name, fig in analysis_figures(result):
        fig.savefig(folder / name, dpi=150)
        plt.close(fig)
        figures.append(folder / name)
    paths = write_report(result, out_dir, [p.relative_to(Path(out_dir)) for p in figures])
    return [*paths, *figures]


def run_analysis_phase(
    spec_path: str | Path, experiment: str | None = None, table_path: str | Path | None = None,
    out_dir: str | Path | None = None, train_run_ids: set[str] | None = None,
    missing: list[dict[str, Any]] | None = None,
) -> tuple[str, AnalysisResult]:
    """Test the spec's hypotheses on the study (or a CSV table); log results.csv, report.md and figures.

    ``missing`` lists study members that failed before the analysis (arch, width, seed, reason): the
    report names them, so a table that lacks them is never read as the whole study."""
    spec = load_spec(resolve_spec(spec_path))
    table = read_table(table_path) if table_path else study_table(experiment or "persist", train_run_ids)
    source = f"table {table_path}" if table_path else f"experiment {experiment}"
    with phase_run("analysis", None, {"persist.analysis_source": source, "persist.analysis_spec": str(spec_path)},
                   run_name="analysis", resume=False) as run:
        result = run_analysis(table, spec)
        if missing:
            absent = tuple(f"Study member {m['arch']}@{m['width']:g} seed {m['seed']} is missing: {m['reason']}"
                           for m in missing)
            result = dataclasses.replace(result, notes=absent + result.notes)
        with tempfile.TemporaryDirectory() as tmp:
            table.to_csv(Path(tmp) / "table.csv", index=False)
            write_outputs(result, tmp)
            log_directory(tmp, "analysis")
        if out_dir is not None:
            write_outputs(result, out_dir)
        log_metrics({"n_rows": len(table)}, prefix="analysis/")
        return run.info.run_id, result
