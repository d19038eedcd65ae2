"""The whole study: for every architecture x seed, train -> landscape -> forgetting, then the analysis.

Runs nest as study -> architecture -> phase -> slice. A phase whose FINISHED run exists for the same
config hash, upstream run and code version is reused, and an unfinished one is resumed, so a rerun
after a kill continues where it stopped and duplicates nothing.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from tqdm.auto import tqdm

from persist.artifacts import STUDY_MISSING
from persist.config import RunConfig, config_hash, override
from persist.errors import ConfigError, PersistError
from persist.phases.common import phase_lock, run_tags
from persist.phases.forgetting import forgetting_hash, run_forgetting
from persist.phases.landscape import landscape_hash, run_landscape
from persist.phases.table import PIPELINE_PHASES
from persist.phases.train import run_train, train_hash
from persist.tracking import find_finished, get_run, log_json, phase_run, set_tags
from persist.tracking.runs import experiment_name

PHASES = PIPELINE_PHASES


def architecture_config(cfg: RunConfig, entry: str, seed: int) -> RunConfig:
    """The config of one study member; ``entry`` is ``NAME`` or ``NAME@WIDTH``."""
    name, _, width = entry.partition("@")
    if not name:
        raise ConfigError(f"study.archs entry '{entry}' has no architecture name")
    return override(cfg, [f"model.arch={name}", f"seed={seed}"] + ([f"model.width={width}"] if width else []))


def reuse_or_run(phase: str, key: str, run: Callable[[], str]) -> str:
    """The finished run of ``phase`` for ``key``, else run it, holding the key's lock so concurrent sweep
    workers that need the same run wait for it instead of computing it twice."""
    with phase_lock(phase, key):
        return find_finished(phase, key) or run()


@dataclass
class ArchitectureRuns:
    arch: str
    width: float
    seed: int
    run_ids: dict[str, str] = field(default_factory=dict)


def run_architecture(cfg: RunConfig, progress: bool = True) -> ArchitectureRuns:
    """train -> landscape -> forgetting for ``cfg.model`` under one parent run (reused when finished)."""
    out = ArchitectureRuns(cfg.model.arch, cfg.model.width, cfg.seed)
    key = config_hash(cfg, [s for s in RunConfig.__dataclass_fields__ if s not in ("study", "device")])
    done = find_finished("architecture", key)
    if done is not None:  # its phase run ids are tags, wherever those runs live
        tags = get_run(done).data.tags
        out.run_ids = {"architecture": done, **{p: tags[f"persist.{p}_run_id"] for p in PHASES}}
        return out
    name = f"{cfg.model.arch}@{cfg.model.width:g}-{cfg.data.dataset}-s{cfg.seed}"
    with phase_run("architecture", cfg, run_tags(cfg, **{"persist.config_hash": key}), run_name=name) as parent:
        out.run_ids["architecture"] = parent.info.run_id
        with record_failure():
            _run_phases(cfg, out, progress)
    return out


@contextlib.contextmanager
def record_failure() -> Iterator[None]:
    """Tag the active run with the one-line reason of an error before it ends FAILED (then re-raise)."""
    try:
        yield
    except Exception as exc:
        set_tags({"persist.error": one_line(exc)})
        raise


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return (text if isinstance(exc, PersistError) else f"{type(exc).__name__}: {text}")[:500]


def _run_phases(cfg: RunConfig, out: ArchitectureRuns, progress: bool) -> None:
    train_id = reuse_or_run("train", train_hash(cfg), lambda: run_train(cfg, progress=progress))
    out.run_ids["train"] = train_id
    out.run_ids["landscape"] = reuse_or_run("landscape", landscape_hash(cfg, train_id),
                                            lambda: run_landscape(cfg, train_id, progress=progress))
    out.run_ids["forgetting"] = reuse_or_run("forgetting", forgetting_hash(cfg, train_id),
                                             lambda: run_forgetting(cfg, train_id, progress=progress))
    set_tags({f"persist.{p}_run_id": out.run_ids[p] for p in PHASES})


@dataclass
class PipelineResult:
    study_run_id: str
    architectures: list[ArchitectureRuns]
    analysis: Any = None
    analysis_run_id: str | None = None
    missing: list[dict[str, Any]] = field(default_factory=list)  # members that failed, with the reason


def run_pipeline(cfg: RunConfig, progress: bool = True, fail_fast: bool = False) -> PipelineResult:
    """Every architecture x seed of ``cfg.study``, then the declared analysis over all of them.

    A member that fails is recorded on its architecture run (FAILED, tag ``persist.error``) and on the
    study run (``study/missing.json``, tag ``persist.missing``), and the study goes on with the rest; the
    analysis then covers the members that finished. ``fail_fast`` stops at the first failure instead.
    """
    from persist.phases.analysis import run_analysis_phase
    from persist.phases.study_row import log_study_rows

    members = [(entry, seed) for entry in cfg.study.archs for seed in cfg.study.seeds]
    configs = [architecture_config(cfg, entry, seed) for entry, seed in members]  # validate all before work
    tags = {"persist.config_hash": config_hash(cfg), "persist.dataset": cfg.data.dataset}
    with phase_run("pipeline", cfg, tags, run_name=f"study-{cfg.experiment}") as study:
        result = PipelineResult(study.info.run_id, [])
        bar = tqdm(configs, desc="study", unit="arch", disable=not progress)
        for member in bar:
            bar.set_postfix_str(f"{member.model.arch}@{member.model.width:g} seed {member.seed}")
            try:
                result.architectures.append(run_architecture(member, progress=progress))
            except Exception as exc:
                if fail_fast:
                    raise
                result.missing.append({"arch": member.model.arch, "width": member.model.width, "seed": member.seed,
                                       "reason": one_line(exc)})
        if result.missing:
            log_json(result.missing, STUDY_MISSING)
            set_tags({"persist.missing": "; ".join(f"{m['arch']}@{m['width']:g} s{m['seed']}: {m['reason']}"
                                                   for m in result.missing)[:5000]})
        if not result.architectures:
            raise PersistError(f"every study member failed (first: {result.missing[0]['reason']})")
        log_study_rows(result.architectures, study.info.run_id, study.info.experiment_id, cfg.study.analysis_spec)
        result.analysis_run_id, result.analysis = run_analysis_phase(
            cfg.study.analysis_spec, experiment=experiment_name(study),
            train_run_ids={member.run_ids["train"] for member in result.architectures})
    return result
