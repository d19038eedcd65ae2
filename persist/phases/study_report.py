"""The study report: one Markdown page (and its HTML rendering) with the figures, logged on the study run.

It puts the study's answer first: the headline table (per architecture, means over seeds), the declared
primary tests with their intervals and corrected p-values, and the mixed-effects checks; then per-family
scatter plots, persistence diagrams side by side, forgetting curves and the skip vs no-skip depth series.
``build_report`` is pure (a table and an analysis result in, text and figures out), so it is tested on a
synthetic table; ``log_study_report`` fetches what it needs from the tracking store.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from persist.plots.study import depth_series, depth_series_figure, diagrams_grid, family_scatter, retention_curves

REPORT = "report/study.md"  # artifact paths on the study run (HTML next to it, figures under report/figures/)


def md_table(df: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub Markdown table (no tabulate dependency); floats rounded, NaN shown as a dash."""
    def cell(v: Any) -> str:
        if isinstance(v, (float, np.floating)):
            return "–" if not math.isfinite(float(v)) else f"{float(v):.{digits}g}"
        return str(v).replace("|", "\\|")
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    return "\n".join([head, rule, *("| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(False))])


def _interval(row: Mapping[str, Any]) -> str:
    low, high = row.get("ci_low"), row.get("ci_high")
    if low is None or high is None or not (np.isfinite(low) and np.isfinite(high)):
        return "none"
    return f"[{low:+.2f}, {high:+.2f}] ({row.get('ci_method', '')})"


def primary_section(result: Any) -> str:
    """The declared primary tests, each answered whatever its result."""
    res = result.results
    rows = res[res["primary"].astype(bool)] if "primary" in res else res.iloc[0:0]
    if rows.empty:
        return "No primary hypothesis was declared or testable.\n"
    alpha = result.spec.alpha
    lines = []
    for _, r in rows.iterrows():
        r_val = r.get("r")
        estimate = f"{r_val:+.2f}" if r_val is not None and np.isfinite(r_val) else "undefined"
        p = r.get(result.p_column)
        pc = r.get("p_corrected")
        if estimate == "undefined":
            verdict = "not testable"
        elif pc is not None and np.isfinite(pc) and pc < alpha:
            verdict = f"association at alpha {alpha:g} after correction"
        else:
            verdict = "no evidence at this n"
        note = f" — {r['note']}" if isinstance(r.get("note"), str) and r["note"] else ""
        lines.append(f"| {r['predictor']} | {r['outcome']} | {r['method']} | {int(r['n'])} | {estimate} | "
                     f"{_interval(r)} | {_p(p)} | {_p(pc)} | {verdict}{note} |")
    head = (f"| predictor | outcome | method | n | r | {result.spec.confidence:.0%} interval | p | "
            f"p ({result.spec.corrections[0] if result.spec.corrections else 'uncorrected'}) | answer |\n"
            "|---|---|---|---|---|---|---|---|---|")
    return head + "\n" + "\n".join(lines) + "\n"


def _p(value: Any) -> str:
    return f"{float(value):.3g}" if value is not None and np.isfinite(value) else "–"


def headline(result: Any) -> pd.DataFrame:
    """The analysed table (one row per architecture, means over seeds) restricted to the declared columns."""
    spec, table = result.spec, result.table
    wanted = [spec.label, *dict.fromkeys([*spec.covariates, *spec.outcomes, *spec.predictors])]
    return table[[c for c in wanted if c in table.columns]]


def build_report(table: pd.DataFrame, result: Any, families: Sequence[str],
                 diagrams: Mapping[str, Mapping[str, Mapping[int, np.ndarray]]] | None = None,
                 floors: Mapping[str, Mapping[str, float]] | None = None,
                 title: str = "Study report") -> tuple[str, list[tuple[str, Figure]]]:
    """Markdown text and its figures (file name, figure) from the study table and its analysis result.

    ``table`` is the study table (one row per architecture x seed, columns ``topology_<family>/*``,
    ``forgetting/*``), ``result`` the analysis of it, ``diagrams[family][member]`` {dim: diagram}.
    """
    spec = result.spec
    renamed = table.rename(columns=dict(spec.columns))
    label = "arch" if "arch" in renamed else spec.label
    figures: list[tuple[str, Figure]] = []
    text = [f"# {title}", "",
            f"{table[label].nunique()} architectures, {len(table)} rows (architecture x seed); seeds per "
            f"architecture up to {result.rows_per_label}. Values are means over seeds; the analysis is the one "
            "declared in the spec (per-architecture means primary: intervals of the means, permutations of whole "
            "architectures; docs/statistics.md).", "",
            "## Primary tests (declared before the study was run)", "", primary_section(result)]
    if not result.mixed.empty:
        mixed = result.mixed[["predictor", "outcome", "covariates", "n_rows", "n_groups", "coef", "se", "p", "note"]]
        text += ["### Mixed-effects check (per-seed rows, random intercept per architecture)", "", md_table(mixed), ""]
    if result.notes:
        text += ["Notes: " + "; ".join(result.notes), ""]
    text += ["## Headline table", "", md_table(headline(result)), ""]
    outcomes = [o for o in spec.outcomes if o in renamed]
    text += ["## Topology against retention, per direction family", ""]
    for measure in ("h0_count", "h0_total"):
        predictors = [f"{f}_{measure}" for f in families]
        for outcome in outcomes[:2]:
            name = f"scatter_{measure}_{outcome.replace('@', '_')}.png"
            figures.append((name, family_scatter(renamed, predictors, outcome, label=label)))
            text += [f"![{measure} vs {outcome}](figures/{name})", ""]
    if diagrams:
        text += ["## Persistence diagrams (one slice per member, first seed)", ""]
        for family, members in diagrams.items():
            name = f"diagrams_{family}.png"
            figures.append((name, diagrams_grid(members, (floors or {}).get(family))))
            text += [f"### {family}", "", f"![{family} diagrams](figures/{name})", ""]
    figures += [("forgetting.png", retention_curves(table, label)), ("forgetting_masked.png",
                                                                    retention_curves(table, label, masked=True))]
    text += ["## Forgetting curves", "", "![class-incremental](figures/forgetting.png)",
             "![task-masked](figures/forgetting_masked.png)", ""]
    series = depth_series(table, families, arch="architecture" if "architecture" in table else label)
    text += ["## Skip vs no-skip depth series", "",
             "Count and total persistence (H0 + H1) of bars above the noise floor against depth, resnet1d_* "
             "(skip connections) vs plain1d_* (none): Li et al. (2018) found deep plain nets' random slices "
             "chaotic and residual nets' smooth.", ""]
    if series.empty:
        text += ["No resnet1d_D / plain1d_D members in this study.", ""]
    else:
        summary = series.groupby(["family", "skip", "depth"], as_index=False)[["count", "total"]].mean()
        text += [md_table(summary), "", "![depth series](figures/depth_series.png)", ""]
        figures.append(("depth_series.png", depth_series_figure(series)))
    return "\n".join(text), figures


def write_report(out_dir: str | Path, text: str, figures: Sequence[tuple[str, Figure]]) -> list[Path]:
    """``study.md``, ``study.html`` and ``figures/*.png`` under ``out_dir``; returns the paths."""
    import markdown

    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figures:
        fig.savefig(out / "figures" / name, dpi=110)
        paths.append(out / "figures" / name)
    (out / "study.md").write_text(text)
    body = markdown.markdown(text, extensions=["tables"])
    (out / "study.html").write_text("<!doctype html><html><head><meta charset='utf-8'><title>persist study</title>"
                                    "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}"
                                    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}"
                                    f"img{{max-width:100%}}</style></head><body>{body}</body></html>")
    return [out / "study.md", out / "study.html", *paths]


def slice_diagrams(table: pd.DataFrame, families: Sequence[str]) -> tuple[dict, dict]:
    """The first slice's diagrams (and floor) of each family for the first seed of each member."""
    from persist.tracking import downloaded, find_runs

    diagrams: dict[str, dict[str, dict[int, np.ndarray]]] = {}
    floors: dict[str, dict[str, float]] = {}
    first = table.sort_values("seed").drop_duplicates("arch")
    for family in families:
        column = f"landscape_{family}_run_id"
        if column not in first:
            continue
        for _, row in first.iterrows():
            if not isinstance(row[column], str):
                continue
            slices = find_runs(f"tags.`persist.phase` = 'landscape_slice' and tags.`mlflow.parentRunId` = "
                               f"'{row[column]}' and attributes.status = 'FINISHED'")
            if not slices:
                continue
            run = min(slices, key=lambda r: int(r.data.tags.get("persist.slice", 0)))
            member: dict[int, np.ndarray] = {}
            for dim in (0, 1):
                try:
                    with downloaded(run.info.run_id, f"persistence/h{dim}.npy") as path:
                        member[dim] = np.load(path)
                except Exception:  # noqa: BLE001 - a missing diagram leaves a gap in the figure, not a failed study
                    continue
            diagrams.setdefault(family, {})[row["arch"]] = member
            floors.setdefault(family, {})[row["arch"]] = run.data.metrics.get("topology/noise_floor", float("nan"))
    return diagrams, floors


def log_study_report(experiment: str, train_run_ids: set[str], result: Any, families: Sequence[str],
                     title: str) -> None:
    """Build the report from the study's runs and log it on the active (study) run under ``report/``."""
    from persist.phases.analysis import study_table
    from persist.tracking import log_directory

    table = study_table(experiment, train_run_ids)
    diagrams, floors = slice_diagrams(table, families)
    text, figures = build_report(table, result, families, diagrams, floors, title=title)
    with tempfile.TemporaryDirectory() as tmp:
        write_report(tmp, text, figures)
        log_directory(tmp, "report")
