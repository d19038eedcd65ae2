"""The five stages of the initialization-quality study, each reading and writing files in a workdir.

Which stages run, resuming and logging are the wiring's business (:mod:`persist.phases.init_quality`),
and so are the figures, drawn there from these files. Stage outputs (all under ``workdir``), so the
tracking layer can log them as artifacts:

1. ``samples.npz`` (surrogate pool: params, losses, scheme, group), ``inits.npz`` (study inits)
2. ``surrogate.pt``, ``surrogate_test.npz``
3. ``local.npz`` (slice coords, real and surrogate losses), ``features.npz`` (feature table, Betti curves)
4. ``outcomes.npz`` (final train/test loss, test accuracy per init)
5. ``prediction.json``, ``report.md``

plus ``stage<k>.json`` (metrics and the resolved config, :func:`write_record`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from persist.errors import DataError
from persist.init_quality.config import InitQualityConfig
from persist.init_quality.features import (
    BASELINE_SETS,
    REAL,
    SURROGATE,
    baseline_features,
    feature_sets,
    scheme_indicators,
)
from persist.init_quality.geometry import rademacher_probes
from persist.init_quality.local_topology import feature_names, local_features
from persist.init_quality.outcomes import evaluate_outcomes, train_inits
from persist.init_quality.prediction import Score, compare, score_feature_sets, seed_sd, verdict
from persist.init_quality.report import render_report
from persist.init_quality.samples import (
    draw_study_inits,
    evaluate_losses,
    generate_pool,
    seeded_generator,
    slice_directions,
    slice_losses,
)
from persist.init_quality.surrogate import Surrogate, fidelity, fit_surrogate, load_surrogate, save_surrogate
from persist.init_quality.target import DigitsTask, TargetNetwork, build_target, load_digits_task
from persist.landscape.resume import atomic_write

# --- files ---------------------------------------------------------------------------------------


def _save_npz(path: Path, **arrays: Any) -> None:
    atomic_write(path, lambda fh: np.savez(fh, **arrays))


def _save_text(path: Path, text: str) -> None:
    atomic_write(path, lambda fh: fh.write(text.encode()))


def _require(workdir: Path, name: str, stage: int) -> Path:
    path = workdir / name
    if not path.exists():
        raise DataError(f"{path} is missing; run init-quality stage {stage} first")
    return path


def load_output(workdir: Path, name: str, stage: int) -> dict[str, np.ndarray]:
    """The arrays of ``name`` (e.g. ``inits.npz``), which stage ``stage`` writes; DataError when it has not run."""
    with np.load(_require(workdir, name, stage)) as data:
        return dict(data)


def config_dict(cfg: InitQualityConfig) -> dict:
    """The config as it reads back from a stage record (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def record_path(workdir: Path, stage: int) -> Path:
    """``stage<k>.json``: written last and atomically, so its presence means the stage finished."""
    return Path(workdir) / f"stage{stage}.json"


def write_record(workdir: Path, stage: int, metrics: dict[str, float], cfg: InitQualityConfig) -> None:
    _save_text(record_path(workdir, stage), json.dumps({"metrics": metrics, "config": config_dict(cfg)}, indent=1))


def read_record(workdir: Path, stage: int) -> dict | None:
    """A finished stage's ``{"metrics", "config"}``; None when it has not finished."""
    path = record_path(workdir, stage)
    return json.loads(path.read_text()) if path.is_file() else None


# --- shared setup ----------------------------------------------------------------------------------


def _target(cfg: InitQualityConfig) -> tuple[TargetNetwork, DigitsTask]:
    net = build_target((64, *cfg.target_hidden, 10), cfg.target_activation)
    return net, load_digits_task(cfg.device, cfg.test_fraction)


def scheme_names(cfg: InitQualityConfig) -> list[str]:
    return [s.name for s in cfg.scheme_list]


# --- stages ----------------------------------------------------------------------------------------


def stage_samples(cfg: InitQualityConfig, workdir: Path, progress: bool) -> dict[str, float]:
    """Stage 1: the surrogate's (params, loss) pool and the disjoint study initializations."""
    net, task = _target(cfg)
    pool = generate_pool(net, cfg.scheme_list, cfg.pool_inits_per_scheme, cfg.pool_perturbations, cfg.radius,
                         cfg.slice_dim, task.x_train, task.y_train, cfg.seed, cfg.chunk_size)
    inits, scheme = draw_study_inits(net, cfg.scheme_list, cfg.inits_per_scheme, cfg.seed)
    init_loss = evaluate_losses(net, inits, task.x_train, task.y_train, cfg.chunk_size).cpu().numpy()
    _save_npz(workdir / "samples.npz", params=pool.params.numpy(), losses=pool.losses.numpy(),
              scheme=pool.scheme.numpy(), group=pool.group.numpy())
    _save_npz(workdir / "inits.npz", params=inits.numpy(), losses=init_loss, scheme=scheme.numpy())
    losses = pool.losses.numpy()
    return {
        "samples/n_pool": float(len(losses)),
        "samples/n_inits": float(len(init_loss)),
        "samples/n_params": float(net.n_params),
        "samples/pool_loss_min": float(losses.min()),
        "samples/pool_loss_median": float(np.median(losses)),
        "samples/pool_loss_max": float(losses.max()),
    }


def stage_surrogate(cfg: InitQualityConfig, workdir: Path, progress: bool) -> dict[str, float]:
    """Stage 2: fit the surrogate on log loss and score it on held-out base inits."""
    pool = load_output(workdir, "samples.npz", 1)
    x = torch.as_tensor(pool["params"], device=cfg.device)
    t = torch.as_tensor(np.log(pool["losses"]), dtype=torch.float32, device=cfg.device)
    net, _ = _target(cfg)
    fit = fit_surrogate(x, t, pool["group"], cfg.surrogate, cfg.seed, net.permute_hidden_units, progress)
    save_surrogate(fit.model, workdir / "surrogate.pt")
    true = np.log(pool["losses"][fit.test_index])
    _save_npz(workdir / "surrogate_test.npz", index=fit.test_index, log_loss=true, predicted=fit.test_pred)
    return {f"surrogate/{k}": v for k, v in fit.metrics.items()}


def _local_losses(cfg: InitQualityConfig, net: TargetNetwork, task: DigitsTask, surrogate: Surrogate,
                  w0: Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slice coordinates (M, n, k) and the real and surrogate losses (M, n) at the same points."""
    gen = seeded_generator(cfg.seed, 3)
    directions = slice_directions(net, w0, cfg.slice_dim, gen)
    coords = (cfg.radius * torch.randn(len(w0), cfg.local_points, cfg.slice_dim, generator=gen)).to(w0)
    per_chunk = max(1, cfg.chunk_size // cfg.local_points)
    with torch.no_grad():
        real = slice_losses(lambda p: net.losses(p, task.x_train, task.y_train, cfg.chunk_size),
                            w0, directions, coords, per_chunk)
        surr = slice_losses(lambda p: surrogate(p).exp(), w0, directions, coords, per_chunk)
    return coords.cpu().numpy(), real.cpu().double().numpy(), surr.cpu().double().numpy()


def _topology_columns(cfg: InitQualityConfig, coords: np.ndarray, losses: dict[str, np.ndarray],
                      progress: bool) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Feature columns and Betti curves (M, T) for each loss kind, keyed ``<prefix><name>``."""
    rows: dict[str, list[dict[str, float]]] = {prefix: [] for prefix in losses}
    curves: dict[str, list[np.ndarray]] = {}
    for i in tqdm(range(len(coords)), desc="local topology", disable=not progress, leave=False):
        for prefix, values in losses.items():
            lt = local_features(coords[i], values[i], cfg.topology)
            rows[prefix].append(lt.features)
            for key, curve in lt.betti.items():
                curves.setdefault(prefix + key, []).append(curve)
    columns = {prefix + n: np.array([r[n] for r in rs]) for prefix, rs in rows.items() for n in feature_names()}
    return columns, {k: np.array(v) for k, v in curves.items()}


def stage_local(cfg: InitQualityConfig, workdir: Path, progress: bool) -> dict[str, float]:
    """Stage 3: sample each init's local slice, real and surrogate losses, baselines and topology."""
    inits = load_output(workdir, "inits.npz", 1)
    surrogate = load_surrogate(_require(workdir, "surrogate.pt", 2), cfg.device)
    net, task = _target(cfg)
    w0 = torch.as_tensor(inits["params"], device=cfg.device)
    coords, real, surr = _local_losses(cfg, net, task, surrogate, w0)
    probes = rademacher_probes(cfg.hutchinson_probes, net.n_params, seeded_generator(cfg.seed, 3, 1))
    columns = baseline_features(net, w0, task.x_train, task.y_train, inits["losses"], real, probes,
                                max(1, cfg.chunk_size // cfg.hutchinson_probes))
    columns.update(scheme_indicators(inits["scheme"], scheme_names(cfg)))
    topo, curves = _topology_columns(cfg, coords, {REAL: real, SURROGATE: surr}, progress)
    columns.update(topo)
    names = list(columns)
    thresholds = {f"thresholds_{f}": cfg.topology.thresholds(f) for f in ("sublevel", "rips")}
    _save_npz(workdir / "local.npz", coords=coords, real=real, surrogate=surr)
    _save_npz(workdir / "features.npz", table=np.column_stack([columns[n] for n in names]), names=np.array(names),
              scheme=inits["scheme"], **{f"betti_{k}": v for k, v in curves.items()}, **thresholds)
    pooled = fidelity(np.log(real).ravel(), np.log(surr).ravel())
    within = [fidelity(r, s)["spearman"] for r, s in zip(real, surr, strict=True)]
    return {
        "local/surrogate_r2_pooled": pooled["r2"],
        "local/surrogate_spearman_pooled": pooled["spearman"],
        "local/surrogate_spearman_within_mean": float(np.nanmean(within)),
        "local/loss_sd_median": float(np.median(real.std(1))),
        "local/n_features": float(len(names)),
    }


def stage_outcomes(cfg: InitQualityConfig, workdir: Path, progress: bool) -> dict[str, float]:
    """Stage 4: train every study init for the same budget; its final test loss is the quality target."""
    inits = load_output(workdir, "inits.npz", 1)
    net, task = _target(cfg)
    w0 = torch.as_tensor(inits["params"], device=cfg.device)
    final = train_inits(net, w0, task, cfg.training, seeded_generator(cfg.seed, 4), progress)
    out = evaluate_outcomes(net, final, task, cfg.chunk_size)
    _save_npz(workdir / "outcomes.npz", scheme=inits["scheme"], **out)
    finite = np.isfinite(out["test_loss"])
    return {
        "outcomes/test_loss_median": float(np.median(out["test_loss"][finite])) if finite.any() else float("nan"),
        "outcomes/test_loss_min": float(out["test_loss"][finite].min(initial=np.inf)),
        "outcomes/test_accuracy_median": float(np.median(out["test_accuracy"])),
        "outcomes/n_diverged": float((~finite).sum()),
    }


def _read_metrics(workdir: Path, *stages: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for s in stages:
        record = read_record(workdir, s)
        if record is not None:
            out.update(record["metrics"])
    return out


def _setup_lines(cfg: InitQualityConfig, n_inits: int) -> list[str]:
    widths = "-".join(map(str, (64, *cfg.target_hidden, 10)))
    tr, pr = cfg.training, cfg.prediction
    return [
        f"{n_inits} initializations ({cfg.inits_per_scheme} per scheme: {', '.join(cfg.schemes)}) of a {widths} "
        f"{cfg.target_activation} MLP on digits; target: log test loss after {tr.epochs} epochs of SGD "
        f"(lr {tr.lr}, momentum {tr.momentum}).",
        f"Local landscapes: {cfg.local_points} samples in a random {cfg.slice_dim}-D filter-normalized slice, "
        f"radius {cfg.radius}. Nested CV: {pr.outer_folds}-fold outer x {pr.seeds} seeds, hyperparameters tuned "
        f"inside each outer training fold; models: {', '.join(pr.models)}.",
        "Topological features use each landscape's z-scored loss (its shape); its level and spread are baselines. "
        f"The sublevel complex is the {cfg.topology.knn}-NN clique complex, which can leave small cycles unfilled.",
    ]


# (metric name, challenger sets, incumbent sets, how the report names each side)
CHECKS = (
    ("topology_beats_baselines", {"topology"}, BASELINE_SETS, "topology (real loss)", "the best baseline"),
    ("topology_adds_to_baselines", {"topology+baselines"}, {"baselines"}, "topology + baselines", "baselines alone"),
    ("surrogate_topology_beats_real", {"topology_surrogate"}, {"topology"}, "surrogate topology", "real-loss topology"),
)


def stage_prediction(cfg: InitQualityConfig, workdir: Path, progress: bool) -> dict[str, float]:
    """Stage 5: nested-CV comparison of topology against baselines and a Markdown report."""
    feats = load_output(workdir, "features.npz", 3)
    outcomes = load_output(workdir, "outcomes.npz", 4)
    names = [str(n) for n in feats["names"]]
    if len(outcomes["test_loss"]) != len(feats["table"]):
        raise DataError("outcomes.npz and features.npz describe different inits; rerun stages 3 and 4")
    y = np.log(outcomes["test_loss"])
    sets = feature_sets(names)
    scores = score_feature_sets(feats["table"], names, y, sets, cfg.prediction,
                                importance_for=("topology+baselines",), progress=progress)
    metrics: dict[str, float] = {}
    for s in scores:
        key = f"prediction/{s.feature_set}/{s.model}"
        metrics.update({f"{key}/r2_mean": float(s.r2.mean()), f"{key}/r2_sd": seed_sd(s.r2),
                        f"{key}/spearman_mean": float(s.spearman.mean())})
    verdicts = []
    for name, challengers, incumbents, what, against in CHECKS:
        comparison = compare(scores, challengers, incumbents)
        verdicts.append(verdict(comparison, what, against))
        metrics[f"prediction/{name}"] = float(comparison.wins)
        metrics[f"prediction/{name}_r2_diff"] = comparison.diff_mean
    n_features = {k: len(v) for k, v in sets.items()}
    text = render_report(_setup_lines(cfg, len(y)), verdicts, _read_metrics(workdir, 2, 3), scores, n_features)
    _save_text(workdir / "report.md", text)
    _save_text(workdir / "prediction.json", json.dumps([_score_json(s) for s in scores], indent=1))
    return metrics


def _score_json(s: Score) -> dict:
    return {"feature_set": s.feature_set, "model": s.model, "r2": s.r2.tolist(), "spearman": s.spearman.tolist(),
            "importance": s.importance}


def read_scores(workdir: Path) -> list[Score]:
    """The scores stage 5 wrote to ``prediction.json``."""
    rows = json.loads(_require(workdir, "prediction.json", 5).read_text())
    return [Score(r["feature_set"], r["model"], np.array(r["r2"]), np.array(r["spearman"]), r["importance"])
            for r in rows]


# --- the stage table -------------------------------------------------------------------------------

Stage = Callable[[InitQualityConfig, Path, bool], dict[str, float]]
STAGES: dict[int, Stage] = {
    1: stage_samples,
    2: stage_surrogate,
    3: stage_local,
    4: stage_outcomes,
    5: stage_prediction,
}
UPSTREAM: dict[int, tuple[int, ...]] = {1: (), 2: (1,), 3: (1, 2), 4: (1,), 5: (3, 4)}  # whose files a stage reads
