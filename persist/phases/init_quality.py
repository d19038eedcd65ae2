"""Initialization-quality phase: run stages of the study in a resumable working directory, log each stage.

The stages themselves (:mod:`persist.init_quality.study`) compute and write files; here they are run in
order, reused when finished, checked against the config that made their inputs, logged, and drawn.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from persist.config import config_hash, override
from persist.errors import ConfigError
from persist.init_quality import STAGES, UPSTREAM, InitQualityConfig
from persist.init_quality.features import REAL
from persist.init_quality.study import config_dict, load_output, read_record, read_scores, scheme_names, write_record
from persist.phases.common import workdir
from persist.plots import init_quality as plots
from persist.tracking import log_directory, log_figure, log_metrics, phase_run


def init_quality_config(quick: bool, overrides: list[str]) -> InitQualityConfig:
    return override(InitQualityConfig.quick() if quick else InitQualityConfig(), overrides)


def run_init_quality(cfg: InitQualityConfig, stages: list[int], progress: bool = True) -> tuple[str, dict[str, float]]:
    """Run ``stages`` in order in a working directory keyed by the config hash.

    A stage that already finished there is not recomputed, so a rerun after an interruption continues and
    ``--stage 3`` reuses the outputs of stages 1-2.
    """
    key = config_hash(cfg)
    work = workdir("init_quality", key)
    metrics: dict[str, float] = {}
    tags = {"persist.config_hash": key, "persist.stages": ",".join(map(str, stages))}
    with phase_run("init_quality", cfg, tags, run_name=f"init-quality-{key[:8]}", resume=False) as run:
        for stage in stages:
            record = read_record(work, stage)
            values = record["metrics"] if record is not None else run_stage(stage, cfg, work, progress)
            log_metrics(values, prefix="init_quality/")
            for name, fig in stage_figures(stage, cfg, work).items():
                log_figure(fig, f"init_quality/figures/{name}.png")
            metrics.update(values)
        log_directory(work, "init_quality")
        return run.info.run_id, metrics


def run_stage(stage: int, cfg: InitQualityConfig, work: Path, progress: bool = False) -> dict[str, float]:
    """Run one stage from the files earlier stages left in ``work``, then record it; returns flat metrics."""
    if stage not in STAGES:
        raise ConfigError(f"stage must be one of {sorted(STAGES)}, got {stage}")
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    for up in UPSTREAM[stage]:
        _check_upstream(work, cfg, up)
    metrics = STAGES[stage](cfg, work, progress)
    write_record(work, stage, metrics, cfg)  # last: its presence means the stage finished
    return metrics


def run_all(cfg: InitQualityConfig, work: Path, progress: bool = False) -> dict[str, float]:
    """All five stages in order, without tracking; the metrics of every stage in one dict."""
    metrics: dict[str, float] = {}
    for stage in STAGES:
        metrics.update(run_stage(stage, cfg, work, progress))
    return metrics


def _check_upstream(work: Path, cfg: InitQualityConfig, stage: int) -> None:
    """Warn (not fail: later-stage settings may differ on purpose) when inputs came from another config."""
    record = read_record(work, stage)
    if record is not None and record.get("config") != config_dict(cfg):
        warnings.warn(f"stage {stage} outputs in {work} were made with a different config", stacklevel=3)


def parse_stages(text: str) -> list[int]:
    """``all``, one stage (``3``) or a comma list (``2,3``)."""
    if text == "all":
        return sorted(STAGES)
    try:
        stages = [int(part) for part in text.split(",")]
    except ValueError:
        raise ConfigError(f"--stage must be 'all' or stage numbers 1-5, got '{text}'") from None
    if any(s not in STAGES for s in stages):
        raise ConfigError(f"--stage must be 'all' or stage numbers 1-5, got '{text}'")
    return stages


# --- figures, drawn from each stage's files ---------------------------------------------------------


def stage_figures(stage: int, cfg: InitQualityConfig, work: Path) -> dict[str, Figure]:
    """The figures of a finished stage, by name, from the files it wrote."""
    return FIGURES[stage](cfg, Path(work))


def _samples_figures(cfg: InitQualityConfig, work: Path) -> dict[str, Figure]:
    inits = load_output(work, "inits.npz", 1)
    return {"initial_loss_by_scheme": plots.plot_outcomes_by_scheme(
        np.log(inits["losses"]), inits["scheme"], scheme_names(cfg), "log initial loss")}


def _surrogate_figures(cfg: InitQualityConfig, work: Path) -> dict[str, Figure]:
    test = load_output(work, "surrogate_test.npz", 2)
    return {"surrogate_fit": plots.plot_surrogate_fit(test["log_loss"], test["predicted"])}


def _local_figures(cfg: InitQualityConfig, work: Path) -> dict[str, Figure]:
    local, feats = load_output(work, "local.npz", 3), load_output(work, "features.npz", 3)
    real, scheme, names = local["real"], feats["scheme"], scheme_names(cfg)
    prefix = f"betti_{REAL}"
    curves = {k.removeprefix(prefix): v for k, v in feats.items() if k.startswith(prefix)}
    thresholds = {k: feats[f"thresholds_{k.split('_')[0]}"] for k in curves}
    figures = {"betti_curves": plots.plot_betti_curves(thresholds, curves, scheme, names)}
    if cfg.slice_dim >= 2:
        i = int(np.argsort(real.mean(1))[len(real) // 2])  # the init with the median local loss
        figures["local_landscape"] = plots.plot_local_landscape(
            local["coords"][i], real[i], local["surrogate"][i], names[scheme[i]])
    return figures


def _outcomes_figures(cfg: InitQualityConfig, work: Path) -> dict[str, Figure]:
    out = load_output(work, "outcomes.npz", 4)
    return {"test_loss_by_scheme": plots.plot_outcomes_by_scheme(
        np.log(out["test_loss"]), out["scheme"], scheme_names(cfg), "log test loss after training")}


def _prediction_figures(cfg: InitQualityConfig, work: Path) -> dict[str, Figure]:
    scores = read_scores(work)
    labels = [f"{s.feature_set} / {s.model}" for s in scores]
    figures = {"prediction_scores": plots.plot_prediction_scores(
        labels, np.array([s.r2 for s in scores]), np.array([s.spearman for s in scores]))}
    for s in scores:
        if s.importance:
            figures[f"importance_{s.model}"] = plots.plot_importance(
                list(s.importance), np.array(list(s.importance.values())))
    return figures


FIGURES: dict[int, Callable[[InitQualityConfig, Path], dict[str, Figure]]] = {
    1: _samples_figures,
    2: _surrogate_figures,
    3: _local_figures,
    4: _outcomes_figures,
    5: _prediction_figures,
}
