"""Human-readable outputs of an analysis: a terminal table, a Markdown report and CSVs.

The report states n, ties and how each interval was made next to every headline number: with
7-20 architectures, several tied at zero, a coefficient without its n, interval method and tie
count invites over-reading. Figures are drawn by persist/plots/stats.py and saved by the
analysis phase; this module only lists the ones it is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from persist.stats.analysis import AnalysisResult
from persist.stats.intervals import POLICY
from persist.stats.spec import ALL

SYMBOL = {"spearman": "rho", "kendall": "tau_b", "partial_spearman": "rho_partial"}


def headline_rows(result: AnalysisResult) -> pd.DataFrame:
    """The declared primary hypotheses first (in spec order), then every other Spearman test on all rows."""
    res = result.results
    primary = [res[(res["predictor"] == h.predictor) & (res["outcome"] == h.outcome) & (res["method"] == h.method)
                   & (res["subset"] == h.subset)] for h in result.spec.primary]
    rest = res[(res["subset"] == ALL) & (res["method"] == "spearman") & ~res["primary"].astype(bool)]
    return pd.concat([*primary, rest])


def headline_table(result: AnalysisResult) -> str:
    """A short fixed-width table for the CLI to print: primary hypotheses first, then the rest."""
    rows = headline_rows(result)
    if rows.empty:
        return "(no headline tests)"
    blocks = []
    primary = rows[rows["primary"].astype(bool)]
    if not primary.empty:
        blocks.append("Primary hypotheses (declared in the spec):\n" + _console(primary, result))
    rest = rows[~rows["primary"].astype(bool)]
    if not rest.empty:
        title = "Other tests (Spearman, all rows):\n" if blocks else ""
        blocks.append(title + _console(rest, result))
    return "\n\n".join(blocks)


def write_report(result: AnalysisResult, out_dir: str | Path, figures: Sequence[str | Path] = ()) -> list[Path]:
    """Write CSVs and report.md under ``out_dir``; ``figures`` (paths relative to it) are listed in the report."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [_csv(result.results, out / "results.csv"), _csv(result.influence, out / "influence.csv")]
    if not result.regressions.empty:
        paths.append(_csv(result.regressions, out / "regressions.csv"))
    if not result.mixed.empty:
        paths.append(_csv(result.mixed, out / "mixed.csv"))
    if result.prediction is not None:
        paths.append(_csv(result.prediction.scores, out / "prediction_scores.csv"))
        paths.append(_csv(result.prediction.predictions, out / "predictions.csv"))
    report = out / "report.md"
    report.write_text(_markdown(result, [Path(p) for p in figures]))
    return [*paths, report]


# ---------------------------------------------------------------------------------------------
# formatting


def format_p(p: float) -> str:
    """A p-value as printed: 3 decimals, scientific below 0.001, an en dash when undefined."""
    if not np.isfinite(p):
        return "–"
    return f"{p:.1e}" if p < 0.001 else f"{p:.3f}"


def format_r(r: float, lo: float, hi: float) -> str:
    """A coefficient with its interval when there is one."""
    if not np.isfinite(r):
        return "–"
    ci = f" [{lo:+.2f}, {hi:+.2f}]" if np.isfinite(lo) and np.isfinite(hi) else ""
    return f"{r:+.2f}{ci}"


def _console(rows: pd.DataFrame, result: AnalysisResult) -> str:
    table = _display(rows, result).drop(columns=["subset", "family", "CI undefined"], errors="ignore")
    if "subset" in rows and (rows["subset"] != ALL).any():
        table.insert(0, "subset", rows["subset"].to_numpy())
    return table.to_string(index=False)


def _display(rows: pd.DataFrame, result: AnalysisResult) -> pd.DataFrame:
    level = int(round(100 * result.spec.confidence))
    corr = result.spec.corrections[0] if result.spec.corrections else None
    out = pd.DataFrame({
        "subset": rows["subset"],
        "family": rows["family"].replace("", "(exploratory)"),
        "predictor": rows["predictor"],
        "outcome": rows["outcome"],
        "method": [SYMBOL[m] + (f" | {c}" if c else "")
                   for m, c in zip(rows["method"], rows["covariates"], strict=True)],
        "n": rows["n"],
        f"r [{level}% CI]": [format_r(*v) for v in rows[["r", "ci_low", "ci_high"]].to_numpy(float)],
        "CI": [m if np.isfinite(r) else "–"
               for m, r in zip(rows["ci_method"], rows["r"].to_numpy(float), strict=True)],
        "CI undefined": [f"{v:.1%}" if np.isfinite(v) else "–" for v in rows["ci_undefined"].to_numpy(float)],
        "p": rows["p"].map(format_p),
        "p_perm": rows["p_perm"].map(format_p),
    })
    if corr:
        out[f"p_{corr}"] = rows[f"p_{corr}"].map(format_p)
    out["LOO p<a"] = rows["loo_n_significant"].fillna("–")
    out["tied x/y"] = [f"{a:g}/{b:g}" if np.isfinite(a) else "–"
                       for a, b in rows[["ties_x", "ties_y"]].to_numpy(float)]
    if (rows["note"] != "").any():
        out["note"] = rows["note"].to_numpy()
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
        f"{n_rows} rows (one per `{spec.label}`); {len(res)} declared tests over "
        f"{len(spec.subset_names)} subset(s). p = asymptotic (t approximation), p_perm = permutation "
        f"({spec.n_permutations:,} permutations, seed {spec.seed}); bootstrap: paired {spec.ci_method} "
        f"({spec.n_bootstrap:,} resamples). Corrections ({corr}) are applied to `{result.p_column}` within each "
        "declared family; a declared test that could not run counts as p = 1 there.\n\n",
        POLICY.format(label=spec.label) + "\n\n",
        _seed_statement(result),
        f"\n## Primary hypotheses\n\n{_primary_section(result)}",
        f"\n## Headline: {_headline_title(result)}\n\n",
        _markdown_table(_display(headline_rows(result), result)),
        "\n## All tests\n\n",
        _markdown_table(_display(res, result).assign(**{"CI note": res["ci_note"].to_numpy()})),
    ]
    parts += _mixed_section(result)
    parts += _regression_section(result)
    parts += _prediction_section(result)
    parts += ["\n## Notes\n\n", *(f"- {note}\n" for note in _notes(result))]
    if figures:
        parts.append("\n## Figures\n\n")
        parts += [f"![{p.stem}]({p.as_posix()})\n" for p in figures]
    return "".join(parts)


def _seed_statement(result: AnalysisResult) -> str:
    label = result.spec.label
    if result.rows_per_label <= 1:
        return f"One row per `{label}`: no seed replication to propagate.\n"
    return (f"Up to {result.rows_per_label} rows (seeds) per `{label}`. **Primary: the per-{label}-mean analysis** "
            f"below: its intervals are made from the {label} means (a bootstrap, where one is used, resamples "
            f"whole {label}s) and its permutations permute whole {label}s. The mixed-effects check (random intercept per {label}) of each "
            "primary hypothesis is reported in its own section.\n")


def _primary_section(result: AnalysisResult) -> str:
    if not result.spec.primary:
        return "_None declared: every test below is read as exploratory or within its family._\n"
    rows = headline_rows(result)
    return _markdown_table(_display(rows[rows["primary"].astype(bool)], result))


def _headline_title(result: AnalysisResult) -> str:
    if not result.spec.families:
        return "primary hypotheses, then Spearman on all rows (no family declared: uncorrected)"
    fam = result.spec.families[0].name
    k = int((result.results["family"] == fam).sum())
    corr = result.spec.corrections[0] if result.spec.corrections else "no correction"
    tests = f"{k} test{'s' if k != 1 else ''}"
    return f"primary hypotheses, then Spearman on all rows (first family `{fam}`: {tests}, {corr})"


def _mixed_section(result: AnalysisResult) -> list[str]:
    mixed = result.mixed
    if mixed.empty:
        return []
    show = mixed.assign(coef=mixed["coef"].map(lambda v: f"{v:+.3f}" if np.isfinite(v) else "–"),
                        p=mixed["p"].map(format_p))
    return [
        f"\n## Mixed-effects check of the primary hypotheses (a check, not the primary answer)\n\n"
        f"statsmodels MixedLM, REML: rank(outcome) ~ 1 + rank(predictor) [+ rank(covariates)] on the per-seed "
        f"rows, random intercept per `{result.spec.label}`; coef is the rank slope, p its Wald z test.\n\n",
        _markdown_table(show),
    ]


def _regression_section(result: AnalysisResult) -> list[str]:
    reg = result.regressions
    if reg.empty:
        return []
    show = reg.assign(
        coef=reg["coef"].map(lambda v: f"{v:+.3f}"), t=reg["t"].map(lambda v: f"{v:+.2f}"),
        p=reg["p"].map(format_p), r2=reg["r2"].map(lambda v: f"{v:.2f}"),
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
    assert spec is not None  # a prediction result exists only when the spec declares one
    scores = pred.scores
    show = scores.assign(
        r2=scores["r2"].map(lambda v: f"{v:+.3f}" if np.isfinite(v) else "–"),
        spearman=scores["spearman"].map(lambda v: f"{v:+.2f}" if np.isfinite(v) else "–"),
        spearman_p=scores["spearman_p"].map(format_p),
        mae=scores["mae"].map(lambda v: f"{v:.3g}" if np.isfinite(v) else "–"),
    )
    return [
        f"\n## Leave-one-{result.spec.label}-out prediction of `{spec.target}`\n\n",
        f"Ridge ({spec.transform}-transformed features, alpha chosen by inner leave-one-out over "
        f"{list(spec.alphas)}); outer folds hold out one {result.spec.label}. R^2 is out of sample; "
        "the intercept-only row is the floor any model must beat; a model whose predictions equal "
        "intercept-only's is not scored.\n\n",
        _markdown_table(show),
    ]


def _notes(result: AnalysisResult) -> list[str]:
    spec, res, table = result.spec, result.results, result.table
    notes = list(result.notes)
    short = res[(res["subset"] == ALL) & (res["n"] < len(table)) & (res["n"] > 0)]
    if not short.empty:
        pairs = sorted({f"{p}~{o} (n={n})" for p, o, n in short[["predictor", "outcome", "n"]].to_numpy()})
        notes.append(f"Missing values were dropped per test; tests on fewer rows than the table: {'; '.join(pairs)}.")
    notes += _tie_notes(table, [*spec.predictors, *spec.outcomes])
    undefined = res[res["note"] != ""]
    if not undefined.empty:
        cols = undefined[["predictor", "outcome", "method", "subset", "note"]].to_numpy()
        reasons = sorted({f"{p}~{o} {SYMBOL[m]} [{s}]: {msg}" for p, o, m, s, msg in cols})
        notes.append(f"{len(undefined)} declared test(s) not computed (counted as p = 1 in their family): "
                     f"{'; '.join(reasons)}.")
    exploratory = int((res["family"] == "").sum())
    if exploratory:
        notes.append(f"{exploratory} test(s) belong to no declared family: exploratory, not corrected.")
    if "partial_spearman" in (spec.methods or ()):
        notes.append("Partial Spearman: Pearson's r of the residuals of rank(x) and rank(y) on [1, rank(covariates)] "
                     "(undefined when a residual is zero); p from the t approximation on n - 2 - k df; p_perm by "
                     "Freedman-Lane (residuals of rank(outcome) on rank(covariates) permuted); the bootstrap and "
                     "leave-one-out use the same estimator.")
    notes.append("Not testable: a test whose predictor or outcome has >= n - 2 equal values is not computed.")
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


def _csv(df: pd.DataFrame, path: Path) -> Path:
    df.to_csv(path, index=False)
    return path
