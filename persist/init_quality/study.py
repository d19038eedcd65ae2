"""Run the five stages of the initialization-quality study, each reading and writing files in a workdir.

Stage outputs (all under ``workdir``), so the tracking layer can log them as artifacts:

1. ``samples.npz`` (surrogate pool: params, losses, scheme, group), ``inits.npz`` (study inits)
2. ``surrogate.pt``, ``surrogate_test.npz``
3. ``local.npz`` (slice coords, real and surrogate losses), ``features.npz`` (feature table, Betti curves)
4. ``outcomes.npz`` (final train/test loss, test accuracy per init)
5. ``prediction.json``, ``report.md``

plus ``stage<k>.json`` (metrics and the resolved config) and ``figures/*.png``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from tqdm.auto import tqdm

from persist.errors import ConfigError, DataError
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
from persist.init_quality.prediction import compare, score_feature_sets, verdict
from persist.init_quality.report import render_report
from persist.init_quality.samples import (
    draw_study_inits,
    evaluate_losses,
    generate_pool,
    seeded_generator,
    slice_directions,
    slice_losses,
)
from persist.init_quality.surrogate import fidelity, fit_surrogate, load_surrogate, save_surrogate
from persist.init_quality.target import DigitsTask, TargetNetwork, build_target, load_digits_task
from persist.plots import init_quality as plots

# --- files ---------------------------------------------------------------------------------------


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    _atomic(path, write)


def _save_text(path: Path, text: str) -> None:
    _atomic(path, lambda tmp: tmp.write_text(text))


def _save_figure(workdir: Path, name: str, fig: Figure) -> None:
    fig.savefig(workdir / "figures" / f"{name}.png", dpi=110)


def _require(workdir: Path, name: str, stage: int) -> Path:
    path = workdir / name
    if not path.exists():
        raise DataError(f"{path} is missing; run init-quality stage {stage} first")
    return path


def _load(workdir: Path, name: str, stage: int) -> dict[str, np.ndarray]:
    with np.load(_require(workdir, name, stage)) as data:
        return dict(data)


def _config_dict(cfg: InitQualityConfig) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(cfg)))  # tuples -> lists, as read back from JSON


def _check_upstream(workdir: Path, cfg: InitQualityConfig, stage: int) -> None:
    """Warn (not fail: later-stage settings may differ on purpose) when inputs came from another config."""
    path = workdir / f"stage{stage}.json"
    if path.exists() and json.loads(path.read_text()).get("config") != _config_dict(cfg):
        warnings.warn(f"stage {stage} outputs in {workdir} were made with a different config", stacklevel=3)


# --- shared setup ----------------------------------------------------------------------------------


def _target(cfg: InitQualityConfig) -> tuple[TargetNetwork, DigitsTask]:
    net = build_target((64, *cfg.hidden, 10), cfg.activation)
    return net, load_digits_task(cfg.seed, cfg.test_fraction, cfg.device)


def _scheme_names(cfg: InitQualityConfig) -> list[str]:
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
    _save_figure(workdir, "initial_loss_by_scheme",
                 plots.plot_outcomes_by_scheme(np.log(init_loss), scheme.numpy(), _scheme_names(cfg), "log initial loss"))
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
    pool = _load(workdir, "samples.npz", 1)
    x = torch.as_tensor(pool["params"], device=cfg.device)
    t = torch.as_tensor(np.log(pool["losses"]), dtype=torch.float32, device=cfg.device)
    net, _ = _target(cfg)
    fit = fit_surrogate(x, t, pool["group"], cfg.surrogate, cfg.seed, net.permute_hidden_units, progress)
    save_surrogate(fit.model, workdir / "surrogate.pt")
    true = np.log(pool["losses"][fit.test_index])
    _save_npz(workdir / "surrogate_test.npz", index=fit.test_index, log_loss=true, predicted=fit.test_pred)
    _save_figure(workdir, "surrogate_fit", plots.plot_surrogate_fit(true, fit.test_pred))
    return {f"surrogate/{k}": v for k, v in fit.metrics.items()}


def _within_spearman(real: np.ndarray, surrogate: np.ndarray) -> np.ndarray:
    return np.array([fidelity(r, s)["spearman"] for r, s in zip(real, surrogate)])


def stage_local(cfg: InitQualityConfig, workdir: Path, progress: bool) -> dict[str, float]:
    """Stage 3: sample each init's local slice, real and surrogate losses, baselines and topology."""
    inits = _load(workdir, "inits.npz", 1)
    surrogate = load_surrogate(_require(workdir, "surrogate.pt", 2), cfg.device)
    net, task = _target(cfg)
    w0 = torch.as_tensor(inits["params"], device=cfg.device)
    gen = seeded_generator(cfg.seed, 3)
    directions = slice_directions(net, w0, cfg.slice_dim, gen)
    coords = (cfg.radius * torch.randn(len(w0), cfg.local_points, cfg.slice_dim, generator=gen)).to(w0)
    per_chunk = max(1, cfg.chunk_size // cfg.local_points)
    with torch.no_grad():
        real = slice_losses(lambda p: net.losses(p, task.x_train, task.y_train, cfg.chunk_size),
                            w0, directions, coords, per_chunk).cpu().numpy().astype(np.float64)
        surr = slice_losses(lambda p: surrogate(p).exp(), w0, directions, coords, per_chunk)
        surr = surr.cpu().numpy().astype(np.float64)
    coords_np = coords.cpu().numpy()
    probes = rademacher_probes(cfg.hutchinson_probes, net.n_params, gen)
    columns = baseline_features(net, w0, task.x_train, task.y_train, inits["losses"], real, probes,
                                max(1, cfg.chunk_size // cfg.hutchinson_probes))
    columns.update(scheme_indicators(inits["scheme"], _scheme_names(cfg)))
    topo_names = feature_names()
    betti: dict[str, list[np.ndarray]] = {}
    topo = {REAL: [], SURROGATE: []}
    for i in tqdm(range(len(w0)), desc="local topology", disable=not progress, leave=False):
        for prefix, losses in ((REAL, real[i]), (SURROGATE, surr[i])):
            lt = local_features(coords_np[i], losses, cfg.topology)
            topo[prefix].append([lt.features[n] for n in topo_names])
            for key, curve in lt.betti.items():
                betti.setdefault(prefix + key, []).append(curve)
    for prefix, rows in topo.items():
        columns.update({prefix + n: col for n, col in zip(topo_names, np.array(rows).T)})
    names = list(columns)
    curves = {f"betti_{k}": np.array(v) for k, v in betti.items()}
    thresholds = {f"thresholds_{f}": cfg.topology.thresholds(f) for f in ("sublevel", "rips")}
    _save_npz(workdir / "local.npz", coords=coords_np, real=real, surrogate=surr)
    _save_npz(workdir / "features.npz", table=np.column_stack([columns[n] for n in names]),
              names=np.array(names), scheme=inits["scheme"], **curves, **thresholds)
    _plot_local(cfg, workdir, coords_np, real, surr, inits["scheme"], curves)
    within = _within_spearman(real, surr)
    pooled = fidelity(np.log(real).ravel(), np.log(surr).ravel())
    return {
        "local/surrogate_r2_pooled": pooled["r2"],
        "local/surrogate_spearman_pooled": pooled["spearman"],
        "local/surrogate_spearman_within_mean": float(np.nanmean(within)),
        "local/loss_sd_median": float(np.median(real.std(1))),
        "local/n_features": float(len(names)),
    }


def _plot_local(cfg: InitQualityConfig, workdir: Path, coords: np.ndarray, real: np.ndarray, surr: np.ndarray,
                scheme: np.ndarray, curves: dict[str, np.ndarray]) -> None:
    i = int(np.argsort(real.mean(1))[len(real) // 2])  # the init with the median local loss
    if cfg.slice_dim >= 2:
        _save_figure(workdir, "local_landscape",
                     plots.plot_local_landscape(coords[i], real[i], surr[i], _scheme_names(cfg)[scheme[i]]))
    keys = {k.removeprefix(f"betti_{REAL}"): v for k, v in curves.items() if k.startswith(f"betti_{REAL}")}
    ts = {k: cfg.topology.thresholds(k.split("_")[0]) for k in keys}
    _save_figure(workdir, "betti_curves", plots.plot_betti_curves(ts, keys, scheme, _scheme_names(cfg)))


def stage_outcomes(cfg: InitQualityConfig, workdir: Path, progress: bool) -> dict[str, float]:
    """Stage 4: train every study init for the same budget; its final test loss is the quality target."""
    inits = _load(workdir, "inits.npz", 1)
    net, task = _target(cfg)
    w0 = torch.as_tensor(inits["params"], device=cfg.device)
    final = train_inits(net, w0, task, cfg.training, seeded_generator(cfg.seed, 4), progress)
    out = evaluate_outcomes(net, final, task, cfg.chunk_size)
    _save_npz(workdir / "outcomes.npz", scheme=inits["scheme"], **out)
    _save_figure(workdir, "test_loss_by_scheme", plots.plot_outcomes_by_scheme(
        np.log(out["test_loss"]), inits["scheme"], _scheme_names(cfg), "log test loss after training"))
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
        path = workdir / f"stage{s}.json"
        if path.exists():
            out.update(json.loads(path.read_text())["metrics"])
    return out


def stage_prediction(cfg: InitQualityConfig, workdir: Path, progress: bool) -> dict[str, float]:
    """Stage 5: nested-CV comparison of topology against baselines, a Markdown report and figures."""
    feats = _load(workdir, "features.npz", 3)
    outcomes = _load(workdir, "outcomes.npz", 4)
    names = [str(n) for n in feats["names"]]
    if len(outcomes["test_loss"]) != len(feats["table"]):
        raise DataError("outcomes.npz and features.npz describe different inits; rerun stages 3 and 4")
    y = np.log(outcomes["test_loss"])
    sets = feature_sets(names)
    scores = score_feature_sets(feats["table"], names, y, sets, cfg.prediction, importance_for=("topology+baselines",))
    checks = [
        (compare(scores, {"topology"}, BASELINE_SETS), "topology (real loss)", "the best baseline"),
        (compare(scores, {"topology+baselines"}, {"baselines"}), "topology + baselines", "baselines alone"),
        (compare(scores, {"topology_surrogate"}, {"topology"}), "surrogate topology", "real-loss topology"),
    ]
    verdicts = [verdict(c, what, against) for c, what, against in checks]
    setup = [
        f"{len(y)} initializations ({cfg.inits_per_scheme} per scheme: {', '.join(cfg.schemes)}) of a "
        f"64-{'-'.join(map(str, cfg.hidden))}-10 {cfg.activation} MLP on digits; target: log test loss after "
        f"{cfg.training.epochs} epochs of SGD (lr {cfg.training.lr}, momentum {cfg.training.momentum}).",
        f"Local landscapes: {cfg.local_points} samples in a random {cfg.slice_dim}-D filter-normalized slice, "
        f"radius {cfg.radius}. Nested CV: {cfg.prediction.outer_folds}-fold outer x {cfg.prediction.seeds} seeds, "
        f"hyperparameters tuned inside each outer training fold; models: {', '.join(cfg.prediction.models)}.",
    ]
    text = render_report(setup, verdicts, _read_metrics(workdir, 2, 3), scores, {k: len(v) for k, v in sets.items()})
    _save_text(workdir / "report.md", text)
    _save_text(workdir / "prediction.json", json.dumps([_score_json(s) for s in scores], indent=1))
    _plot_prediction(workdir, scores)
    metrics = {}
    for s in scores:
        key = f"prediction/{s.feature_set}/{s.model}"
        metrics.update({f"{key}/r2_mean": float(s.r2.mean()), f"{key}/r2_sd": float(s.r2.std()),
                        f"{key}/spearman_mean": float(s.spearman.mean())})
    for (c, _, _), name in zip(checks, ("topology_beats_baselines", "topology_adds_to_baselines",
                                       "surrogate_topology_beats_real")):
        metrics[f"prediction/{name}"] = float(c.wins)
        metrics[f"prediction/{name}_r2_diff"] = c.diff_mean
    return metrics


def _score_json(s) -> dict:
    return {"feature_set": s.feature_set, "model": s.model, "r2": s.r2.tolist(), "spearman": s.spearman.tolist(),
            "importance": s.importance}


def _plot_prediction(workdir: Path, scores) -> None:
    labels = [f"{s.feature_set} / {s.model}" for s in scores]
    _save_figure(workdir, "prediction_scores", plots.plot_prediction_scores(
        labels, np.array([s.r2 for s in scores]), np.array([s.spearman for s in scores])))
    for s in scores:
        if s.importance:
            _save_figure(workdir, f"importance_{s.model}", plots.plot_importance(
                list(s.importance), np.array(list(s.importance.values()))))


# --- entry points ----------------------------------------------------------------------------------

STAGES: dict[int, Callable[[InitQualityConfig, Path, bool], dict[str, float]]] = {
    1: stage_samples,
    2: stage_surrogate,
    3: stage_local,
    4: stage_outcomes,
    5: stage_prediction,
}
UPSTREAM = {1: (), 2: (1,), 3: (1, 2), 4: (1,), 5: (3, 4)}


def run_stage(stage: int, cfg: InitQualityConfig, workdir: Path, progress: bool = False) -> dict[str, float]:
    """Run one stage from the files earlier stages left in ``workdir``; returns flat metrics."""
    if stage not in STAGES:
        raise ConfigError(f"stage must be one of {sorted(STAGES)}, got {stage}")
    workdir = Path(workdir)
    (workdir / "figures").mkdir(parents=True, exist_ok=True)
    for up in UPSTREAM[stage]:
        _check_upstream(workdir, cfg, up)
    metrics = STAGES[stage](cfg, workdir, progress)
    _save_text(workdir / f"stage{stage}.json", json.dumps({"metrics": metrics, "config": _config_dict(cfg)}, indent=1))
    return metrics


def run_all(cfg: InitQualityConfig, workdir: Path, progress: bool = False) -> dict[str, float]:
    """All five stages in order; the metrics of every stage in one dict."""
    metrics: dict[str, float] = {}
    for stage in STAGES:
        metrics.update(run_stage(stage, cfg, workdir, progress))
    return metrics
