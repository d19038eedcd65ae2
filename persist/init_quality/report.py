"""The stage-5 Markdown report: verdicts first, in plain words, then the numbers behind them."""

from __future__ import annotations

from persist.init_quality.prediction import Score, seed_sd

WITHIN_RANK_OK = 0.5  # mean within-landscape Spearman below which surrogate topology is not trusted


def _fidelity_lines(fidelity: dict[str, float]) -> list[str]:
    within = fidelity.get("local/surrogate_spearman_within_mean", float("nan"))
    lines = [
        f"- Held-out inits (group split): R^2 of log loss {fidelity.get('surrogate/test_r2', float('nan')):.3f}, "
        f"Spearman {fidelity.get('surrogate/test_spearman', float('nan')):.3f}.",
        f"- Inside the sampled local landscapes: pooled R^2 of log loss "
        f"{fidelity.get('local/surrogate_r2_pooled', float('nan')):.3f}; mean within-landscape Spearman {within:.3f}.",
    ]
    if not within >= WITHIN_RANK_OK:
        lines.append(
            f"- The surrogate does not rank nearby points reliably (within-landscape Spearman < {WITHIN_RANK_OK}); "
            "topology computed on it describes the surrogate, not the network."
        )
    return lines


def _score_table(scores: list[Score], n_features: dict[str, int]) -> list[str]:
    rows = ["| feature set | model | features | R^2 (mean ± sd) | Spearman (mean ± sd) |", "|---|---|---|---|---|"]
    for s in sorted(scores, key=lambda s: -s.r2.mean()):
        rows.append(
            f"| {s.feature_set} | {s.model} | {n_features[s.feature_set]} | "
            f"{s.r2.mean():.3f} ± {seed_sd(s.r2):.3f} | {s.spearman.mean():.3f} ± {seed_sd(s.spearman):.3f} |"
        )
    return rows


def _importance_lines(scores: list[Score], top: int) -> list[str]:
    lines = []
    for s in scores:
        if not s.importance:
            continue
        ranked = sorted(s.importance.items(), key=lambda kv: -kv[1])[:top]
        lines += [f"**{s.feature_set} / {s.model}** (mean drop in R^2 when shuffled):", ""]
        lines += [f"{i + 1}. `{name}`: {drop:+.4f}" for i, (name, drop) in enumerate(ranked)]
        lines.append("")
    return lines


def render_report(
    setup: list[str],
    verdicts: list[str],
    fidelity: dict[str, float],
    scores: list[Score],
    n_features: dict[str, int],
    top_importance: int = 10,
) -> str:
    """Markdown text; ``setup`` lines describe the data and protocol, ``verdicts`` are plain sentences."""
    parts = [
        "# Initialization quality: does local landscape topology predict the trained test loss?",
        "",
        *setup,
        "",
        "## Verdict",
        "",
        *[f"- {v}" for v in verdicts],
        "",
        "## Surrogate fidelity",
        "",
        *_fidelity_lines(fidelity),
        "",
        "## Out-of-fold scores",
        "",
        "R^2 = 0 is the training-fold mean; negative is worse than that.",
        "",
        *_score_table(scores, n_features),
        "",
        "## Permutation importance",
        "",
        *_importance_lines(scores, top_importance),
    ]
    return "\n".join(parts) + "\n"
