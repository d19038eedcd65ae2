"""The whole study: for every architecture x seed, train -> landscape -> forgetting, then the analysis.

With several direction families (``study.directions``) each member gets one landscape run per family
(tagged ``persist.directions``; curvature once, with the first family). The ``modes`` plane runs last:
it goes through theta_A of the seed, theta_A of the architecture's next seed (trained first, or reused)
and theta_B after the seed's forgetting run, so it needs two seeds and is skipped, with the reason, on one.

Runs nest as study -> architecture -> phase -> slice. A phase whose FINISHED run exists for the same
config hash, upstream run and code version is reused, and an unfinished one is resumed, so a rerun
after a kill continues where it stopped and duplicates nothing.
"""

from __future__ import annotations

import contextlib
import warnings
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
    run_ids: dict[str, str] = field(default_factory=dict)  # phase (and landscape_<family>) -> run id
    skipped: dict[str, str] = field(default_factory=dict)  # family -> why it was not run


def families(cfg: RunConfig) -> tuple[str, ...]:
    """``study.directions`` with ``modes`` last (it needs the forgetting run's theta_B)."""
    return tuple(f for f in cfg.study.directions if f != "modes") + (("modes",) if "modes" in cfg.study.directions
                                                                     else ())


def family_config(cfg: RunConfig, family: str, first: bool, run_ids: tuple[str, ...] = ()) -> RunConfig:
    """The landscape config of one family: random keeps ``landscape.slices`` and ``span``, the others are
    one 2-D plane (hessian over ``study.hessian_span``, docs/landscape-directions.md); curvature is measured once per member, with the ``first`` family."""
    sets = [f"landscape.directions={family}"] + ([] if family == "random" else ["landscape.dims=2"])
    if family == "hessian":
        sets.append(f"landscape.span={cfg.study.hessian_span}")
    if family == "modes":
        sets.append("landscape.run_ids=" + ",".join(run_ids))
    if not first:
        sets.append("curvature.enabled=false")
    return override(cfg, sets)


def other_seed(cfg: RunConfig) -> int | None:
    """The seed whose theta_A spans the modes plane with this one: the next of ``study.seeds`` (cyclic)."""
    seeds = list(dict.fromkeys(cfg.study.seeds))
    if cfg.seed not in seeds:
        seeds.append(cfg.seed)
    if len(seeds) < 2:
        return None
    return seeds[(seeds.index(cfg.seed) + 1) % len(seeds)]


def run_keys(cfg: RunConfig) -> tuple[str, ...]:
    return PHASES + tuple(f"landscape_{f}" for f in families(cfg))


def run_architecture(cfg: RunConfig, progress: bool = True) -> ArchitectureRuns:
    """train -> landscape(s) -> forgetting [-> modes landscape] for ``cfg.model`` under one parent run
    (reused when finished)."""
    out = ArchitectureRuns(cfg.model.arch, cfg.model.width, cfg.seed)
    key = config_hash(cfg, [s for s in RunConfig.__dataclass_fields__ if s not in ("study", "device")])
    if families(cfg) != ("random",):  # the default study keeps its old key
        key += "-" + "+".join(families(cfg)) + (f"-o{other_seed(cfg)}" if "modes" in families(cfg) else "")
    done = find_finished("architecture", key)
    if done is not None:  # its phase run ids are tags, wherever those runs live
        tags = get_run(done).data.tags
        out.run_ids = {"architecture": done, **{p: tags[f"persist.{p}_run_id"] for p in run_keys(cfg)
                                                if f"persist.{p}_run_id" in tags}}
        out.skipped = {k[len("persist.skipped."):]: v for k, v in tags.items() if k.startswith("persist.skipped.")}
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


def _landscape(cfg: RunConfig, train_id: str, progress: bool) -> str:
    return reuse_or_run("landscape", landscape_hash(cfg, train_id), lambda: run_landscape(cfg, train_id, progress))


def _run_phases(cfg: RunConfig, out: ArchitectureRuns, progress: bool) -> None:
    train_id = reuse_or_run("train", train_hash(cfg), lambda: run_train(cfg, progress=progress))
    out.run_ids["train"] = train_id
    order = families(cfg)
    for i, family in enumerate(f for f in order if f != "modes"):
        run_id = _landscape(family_config(cfg, family, first=i == 0), train_id, progress)
        out.run_ids.setdefault("landscape", run_id)  # the first family's run: curvature, sweep objectives
        out.run_ids[f"landscape_{family}"] = run_id
    out.run_ids["forgetting"] = reuse_or_run("forgetting", forgetting_hash(cfg, train_id),
                                             lambda: run_forgetting(cfg, train_id, progress=progress))
    if "modes" in order:
        _run_modes(cfg, out, progress, first=order == ("modes",))
    set_tags({f"persist.{p}_run_id": out.run_ids[p] for p in run_keys(cfg) if p in out.run_ids})
    set_tags({f"persist.skipped.{f}": why for f, why in out.skipped.items()})


def modes_refs(train_id: str, other_train_id: str, forgetting_id: str) -> tuple[str, str, str]:
    """The modes plane: origin theta_A(seed), first axis towards theta_B(seed) after forgetting, and
    theta_A(other seed). In this order the first axis holds 0, 1 and the projection of the other seed
    (moderate: two seeds differ mostly orthogonally to the forgetting path) and the second axis 0 and
    the other seed's distance, so the three models get their own grid nodes at small resolutions (with
    the other seed first, theta_B lies a tiny fraction of an axis from theta_A and shares its node)."""
    return train_id, f"{forgetting_id}:final", other_train_id


def _run_modes(cfg: RunConfig, out: ArchitectureRuns, progress: bool, first: bool) -> None:
    """The mode-connecting landscape; the other seed's train run is reused, or trained here under its lock
    (a sweep worker running that member waits for it instead of training it twice)."""
    other = other_seed(cfg)
    if other is None:
        out.skipped["modes"] = f"study.seeds has one seed ({cfg.seed}): the modes plane needs theta_A of two seeds"
        return
    other_cfg = override(cfg, [f"seed={other}"])
    other_id = reuse_or_run("train", train_hash(other_cfg), lambda: run_train(other_cfg, progress=progress))
    train_id = out.run_ids["train"]
    mcfg = family_config(cfg, "modes", first, modes_refs(train_id, other_id, out.run_ids["forgetting"]))
    run_id = _landscape(mcfg, train_id, progress)
    out.run_ids.setdefault("landscape", run_id)
    out.run_ids["landscape_modes"] = run_id


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
    from persist.phases.study_report import log_study_report
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
        skipped = [{"arch": m.arch, "width": m.width, "seed": m.seed, "family": f, "reason": why}
                   for m in result.architectures for f, why in m.skipped.items()]
        if skipped:
            log_json(skipped, "study/skipped.json")
        if result.missing:
            log_json(result.missing, STUDY_MISSING)
            set_tags({"persist.missing": "; ".join(f"{m['arch']}@{m['width']:g} s{m['seed']}: {m['reason']}"
                                                   for m in result.missing)[:5000]})
        if not result.architectures:
            raise PersistError(f"every study member failed (first: {result.missing[0]['reason']})")
        log_study_rows(result.architectures, study.info.run_id, study.info.experiment_id, cfg.study.analysis_spec)
        train_ids = {member.run_ids["train"] for member in result.architectures}
        result.analysis_run_id, result.analysis = run_analysis_phase(
            cfg.study.analysis_spec, experiment=experiment_name(study), train_run_ids=train_ids,
            missing=result.missing)
        try:  # the report reads what is logged; a failure is recorded and does not undo the study
            log_study_report(experiment_name(study), train_ids, result.analysis, families(cfg),
                             title=f"Study {cfg.experiment}: {cfg.data.dataset}")
        except Exception as exc:
            set_tags({"persist.report_error": one_line(exc)})
            warnings.warn(f"the study report failed: {one_line(exc)}", stacklevel=2)
    return result
