"""Human-readable outputs of an analysis: a terminal table, a Markdown report, CSVs and figures.

The report states n and ties next to every headline number: with 14 architectures, several
tied at zero, a coefficient without its n, interval and tie count invites over-reading.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from persist.stats.analysis import AnalysisResult
from persist.stats.spec import ALL

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_SYMBOL = {"spearman": "rho", "kendall": "tau_b", "partial_spearman": "rho_partial"}


def headline_rows(result: AnalysisResult) -> pd.DataFrame:
    """Every Spearman test on all rows: topology and its baselines side by side."""
    res = result.results
    return res[(res["subset"] == ALL) & (res["method"] == "spearman")]


def headline_table(result: AnalysisResult) -> str:
    """A short fixed-width table of the headline tests, for the CLI to print."""
    rows = headline_rows(result)
    if rows.empty:
        return "(no headline tests)"
    table = _display(rows, result).drop(columns=["subset", "family"], errors="ignore")
    return table.to_string(index=False)


def write_report(result: AnalysisResult, out_dir: str | Path, figures: bool = True) -> list[Path]:
    """Write CSVs, report.md and (optionally) PNG figures under ``out_dir``; return the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [_csv(result.results, out / "results.csv"), _csv(result.influence, out / "influence.csv")]
    if not result.regressions.empty:
        paths.append(_csv(result.regressions, out / "regressions.csv"))
    if result.prediction is not None:
        paths.append(_csv(result.prediction.scores, out / "prediction_scores.csv"))
        paths.append(_csv(result.prediction.predictions, out / "predictions.csv"))
    figure_paths = _figures(result, out / "figures") if figures else []
    report = out / "report.md"
    report.write_text(_markdown(result, [p.relative_to(out) for p in figure_paths]))
    return [*paths, report, *figure_paths]


# ---------------------------------------------------------------------------------------------
# formatting


def _fmt_p(p: float) -> str:
    if not np.isfinite(p):
        return "–"
    return f"{p:.1e}" if p < 0.001 else f"{p:.3f}"


def _fmt_r(r: float, lo: float, hi: float) -> str:
    if not np.isfinite(r):
        return "–"
    ci = f" [{lo:+.2f}, {hi:+.2f}]" if np.isfinite(lo) and np.isfinite(hi) else ""
    return f"{r:+.2f}{ci}"


def _display(rows: pd.DataFrame, result: AnalysisResult) -> pd.DataFrame:
    level = int(round(100 * result.spec.confidence))
    corr = result.spec.corrections[0] if result.spec.corrections else None
    out = pd.DataFrame({
        "subset": rows["subset"],
        "family": rows["family"].replace("", "(exploratory)"),
        "predictor": rows["predictor"],
        "outcome": rows["outcome"],
        "method": [_SYMBOL[m] + (f" | {c}" if c else "") for m, c in zip(rows["method"], rows["covariates"])],
        "n": rows["n"],
        f"r [{level}% CI]": [_fmt_r(*v) for v in rows[["r", "ci_low", "ci_high"]].to_numpy(float)],
        "p": rows["p"].map(_fmt_p),
        "p_perm": rows["p_perm"].map(_fmt_p),
    })
    if corr:
        out[f"p_{corr}"] = rows[f"p_{corr}"].map(_fmt_p)
    out["LOO p<a"] = rows["loo_n_significant"].fillna("–")
    out["tied x/y"] = [f"{a}/{b}" for a, b in zip(rows["ties_x"], rows["ties_y"])]
    return out


def _markdown_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "_(none)_\n"
    cells = df.astype(object).map(lambda v: "" if pd.isna(v) else str(v).replace("|", "\\|"))
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(row) + " |" for row in cells.to_numpy()]
    return "\n".join(lines) + "\n"


def _markdown(result: AnalysisResult, figures: list[Path]) -> str:
    spec, res = result.spec, result.results
    n_rows = len(result.table)
    corr = ", ".join(spec.corrections) or "none"
    parts = [
        "# Analysis report\n\n",
        f"{n_rows} rows (one per `{spec.label}`); {len(res)} tests over "
        f"{len(spec.subset_names)} subset(s). p = asymptotic (pingouin), p_perm = permutation "
        f"({spec.n_permutations:,} permutations, seed {spec.seed}); CIs: paired {spec.ci_method} bootstrap "
        f"({spec.n_bootstrap:,} resamples). Corrections ({corr}) are applied to "
        f"`{result.p_column}` within each declared family.\n",
        f"\n## Headline: {_headline_title(result)}\n\n",
        _markdown_table(_display(headline_rows(result), result)),
        "\n## All tests\n\n",
        _markdown_table(_display(res, result)),
    ]
    parts += _regression_section(result)
    parts += _prediction_section(result)
    parts += ["\n## Notes\n\n", *(f"- {note}\n" for note in _notes(result))]
    if figures:
        parts.append("\n## Figures\n\n")
        parts += [f"![{p.stem}]({p.as_posix()})\n" for p in figures]
    return "".join(parts)


def _headline_title(result: AnalysisResult) -> str:
    if not result.spec.families:
        return "Spearman, all rows (no family declared: uncorrected)"
    fam = result.spec.families[0].name
    k = int((result.results["family"] == fam).sum())
    corr = result.spec.corrections[0] if result.spec.corrections else "no correction"
    return f"family `{fam}` ({k} test{'s' if k != 1 else ''}, {corr})"


def _regression_section(result: AnalysisResult) -> list[str]:
    reg = result.regressions
    if reg.empty:
        return []
    show = reg.assign(
        coef=reg["coef"].map(lambda v: f"{v:+.3f}"), t=reg["t"].map(lambda v: f"{v:+.2f}"),
        p=reg["p"].map(_fmt_p), r2=reg["r2"].map(lambda v: f"{v:.2f}"),
        vif=reg["vif"].map(lambda v: f"{v:.2f}" if np.isfinite(v) else ""),
    )[["subset", "model", "term", "coef", "t", "p", "r2", "n", "vif"]]
    return [
        "\n## Rank regressions (OLS on mid-ranks, t-tests)\n\n",
        _markdown_table(show[show["term"] != "Intercept"]),
    ]


def _prediction_section(result: AnalysisResult) -> list[str]:
    pred = result.prediction
    if pred is None:
        return []
    spec = result.spec.prediction
    show = pred.scores.assign(
        r2=pred.scores["r2"].map(lambda v: f"{v:+.3f}"),
        spearman=pred.scores["spearman"].map(lambda v: f"{v:+.2f}" if np.isfinite(v) else "–"),
        spearman_p=pred.scores["spearman_p"].map(_fmt_p),
        mae=pred.scores["mae"].map(lambda v: f"{v:.3g}"),
    )
    return [
        f"\n## Leave-one-{result.spec.label}-out prediction of `{spec.target}`\n\n",
        f"Ridge ({spec.transform}-transformed features, alpha chosen by inner leave-one-out over "
        f"{list(spec.alphas)}); outer folds hold out one {result.spec.label}. R^2 is out of sample; "
        "the intercept-only row is the floor any model must beat.\n\n",
        _markdown_table(show),
    ]


def _notes(result: AnalysisResult) -> list[str]:
    spec, res, table = result.spec, result.results, result.table
    notes = list(result.notes)
    short = res[(res["subset"] == ALL) & (res["n"] < len(table))]
    if not short.empty:
        pairs = sorted({f"{p}~{o} (n={n})" for p, o, n in short[["predictor", "outcome", "n"]].to_numpy()})
        notes.append(f"Missing values were dropped per test; tests on fewer rows than the table: {'; '.join(pairs)}.")
    notes += _tie_notes(table, [*spec.predictors, *spec.outcomes])
    undefined = res[res["note"] != ""]
    if not undefined.empty:
        cols = undefined[["predictor", "outcome", "subset", "note"]].to_numpy()
        reasons = sorted({f"{p}~{o} [{s}]: {m}" for p, o, s, m in cols})
        notes.append(f"{len(undefined)} test(s) not computed: {'; '.join(reasons)}.")
    exploratory = int((res["family"] == "").sum())
    if exploratory:
        notes.append(f"{exploratory} test(s) belong to no declared family: exploratory, not corrected.")
    if "partial_spearman" in spec.methods:
        notes.append("Partial Spearman: p from pingouin's t approximation; p_perm by Freedman-Lane "
                     "(residuals of rank(outcome) on rank(covariates) permuted).")
    notes.append(f"LOO column: folds (of n) with asymptotic p < {spec.alpha} after dropping one {spec.label}; "
                 "an influence check, not cross-validation (see influence.csv for the most influential row).")
    notes.append(f"With n = {len(table)}, a 95% interval for a rank correlation is typically +-0.4 or wider; "
                 "read effects through their intervals.")
    return notes


def _tie_notes(table: pd.DataFrame, columns: list[str]) -> list[str]:
    notes = []
    for col in dict.fromkeys(columns):
        if col not in table.columns:
            continue
        counts = table[col].dropna().value_counts()
        if len(counts) and counts.iloc[0] > 1:
            notes.append(f"Ties: {counts.iloc[0]} of {int(table[col].notna().sum())} values of `{col}` "
                         f"equal {counts.index[0]:g} (mid-ranks used).")
    return notes


# ---------------------------------------------------------------------------------------------
# files


def _csv(df: pd.DataFrame, path: Path) -> Path:
    df.to_csv(path, index=False)
    return path


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")


def _save(fig: Figure, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path


def _figures(result: AnalysisResult, folder: Path) -> list[Path]:
    # imported here so `import persist.stats` needs no matplotlib; figures are an optional output
    from persist.plots.stats import correlation_heatmap, forest_plot

    folder.mkdir(parents=True, exist_ok=True)
    res = result.results
    main = res[(res["subset"] == ALL) & res["r"].notna()]
    paths = []
    spear = main[main["method"] == "spearman"]
    if not spear.empty:
        r = spear.pivot(index="predictor", columns="outcome", values="r")
        p = spear.pivot(index="predictor", columns="outcome", values=result.p_column).loc[r.index, r.columns]
        heat = correlation_heatmap(r, p, f"Spearman rho (stars: uncorrected {result.p_column})")
        paths.append(_save(heat, folder / "heatmap.png"))
    if not main.empty:
        corrected = main["p_corrected"].to_numpy(float) < result.spec.alpha
        labels = [f"{p} ({_SYMBOL[m]})" for p, m in zip(main["predictor"], main["method"])]
        paths.append(_save(forest_plot(labels, main["r"], main["ci_low"], main["ci_high"], groups=list(main["outcome"]),
                                       highlight=corrected), folder / "forest.png"))
    for row in spear.itertuples():
        paths.append(_save(_scatter(result, row), folder / f"scatter_{_slug(row.predictor)}__{_slug(row.outcome)}.png"))
    if result.prediction is not None:
        paths.append(_save(_prediction_figure(result), folder / "prediction.png"))
    return paths


def _scatter(result: AnalysisResult, row) -> Figure:
    from persist.plots.stats import rank_scatter

    data = result.table[[result.spec.label, row.predictor, row.outcome]].dropna()
    text = (f"rho = {_fmt_r(row.r, row.ci_low, row.ci_high)}\np = {_fmt_p(row.p)}, p_perm = {_fmt_p(row.p_perm)}\n"
            f"n = {row.n}; tied values: x {row.ties_x}, y {row.ties_y}")
    return rank_scatter(data[row.predictor].to_numpy(), data[row.outcome].to_numpy(),
                        list(data[result.spec.label].astype(str)), row.predictor, row.outcome, text)


def _prediction_figure(result: AnalysisResult) -> Figure:
    from persist.plots.stats import prediction_plot

    pred = result.prediction
    spec = result.spec
    models = list(pred.scores["model"])
    scores = {m: f"R^2 = {r2:+.2f}\nrho = {rho:+.2f}" if np.isfinite(rho) else f"R^2 = {r2:+.2f}"
              for m, r2, rho in pred.scores[["model", "r2", "spearman"]].to_numpy()}
    target = spec.prediction.target
    return prediction_plot(pred.predictions[target].to_numpy(), {m: pred.predictions[m].to_numpy() for m in models},
                           list(pred.predictions[spec.label].astype(str)), target, scores)
