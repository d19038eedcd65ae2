"""Initialization-quality phase: run stages of the study in a resumable working directory, log each stage."""

from __future__ import annotations

import json

from persist.config import config_hash, override
from persist.errors import ConfigError
from persist.init_quality import InitQualityConfig, run_stage
from persist.init_quality.study import STAGES
from persist.phases.common import workdir
from persist.tracking import log_directory, log_metrics, phase_run


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
            done = work / f"stage{stage}.json"  # written last and atomically by the stage: it finished
            values = json.loads(done.read_text())["metrics"] if done.is_file() else run_stage(stage, cfg, work, progress)
            log_metrics(values, prefix="init_quality/")
            metrics.update(values)
        log_directory(work, "init_quality")
        return run.info.run_id, metrics


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

