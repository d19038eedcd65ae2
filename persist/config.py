"""Frozen, typed run configuration with presets, dotted overrides and a stable hash.

One ``RunConfig`` holds a section per phase. Overrides such as ``landscape.resolution=51`` are
type-checked against the dataclass field and unknown keys are rejected, so a typo can never silently
fall back to a default (the published code had config keys that no code read).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any, Iterable

from persist.errors import ConfigError


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "digits"  # digits (offline, embedded) | cifar10 | cifar100
    data_dir: str = "data"  # where torchvision datasets live / are downloaded to
    download: bool = False  # fetch missing datasets (needs internet)
    val_fraction: float = 0.1  # validation split carved from training data, for checkpoint selection
    augment: bool = True  # random crop (pad = image_size // 8) + horizontal flip during training


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "mlp"  # a name from `persist models`
    width: float = 1.0  # channel/hidden multiplier; 1.0 is the study architecture


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.05  # peak learning rate after warm-up
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: int = 2  # linear warm-up from 0.1 x lr, then cosine to 0 (per step)
    bf16: bool = False  # bf16 autocast on CUDA (ignored on CPU)
    channels_last: bool = False  # channels_last memory format on CUDA
    np_every: int = 0  # > 0: log per-layer neural persistence every N optimizer steps
    np_patience: int = 0  # > 0: stop when mean normalized NP has not improved for N epochs (Rieck et al. Alg. 2)
    np_burn_in: int = 0  # epochs before NP early stopping may trigger
    snapshots: int = 0  # > 0: keep N parameter snapshots, initial weights to last epoch (landscape.directions=trajectory)


@dataclass(frozen=True)
class LandscapeConfig:
    resolution: int = 51  # odd so the trained weights are a grid node
    span: float = 1.0  # grid covers [-span, span]^2 in units of the filter-normalized directions
    slices: int = 3  # independent random planes, one seed pair each
    seed: int = 0  # slice k uses direction seeds (seed + 2k, seed + 2k + 1)
    normalization: str = "filter"  # filter | layer | weight | none
    one_d: str = "ignore"  # ignore (Li et al.: zero on biases/norm params) | filter
    orthogonalize: bool = False
    split: str = "test"  # test | val | train: data the loss is evaluated on
    subset: int = 0  # evaluate on the first N examples of the split (0 = all)
    batch_size: int = 1024
    precision: str = "fp32"  # fp32 | bf16 | fp16 (reduced precision is recorded)
    method: str = "auto"  # auto (timed once) | vmap (several nodes per forward) | foreach (one node per forward)
    # Direction family of each slice (docs/landscape-directions.md):
    #   random: seeded filter-normalized directions, one seed per axis (slice k: seed + dims*k + i)
    #   hessian: top-`dims` Hessian eigenvectors at theta* (curvature.subset examples, Lanczos), scaled to the
    #     norm of a filter-normalized direction; hessian_negative swaps the last for the most negative one
    #   trajectory: PCA of the train run's parameter snapshots (needs train.snapshots >= dims + 1)
    #   modes: the plane through the models of three run ids (run_ids=A,B,C; A is the grid origin; dims 2)
    # Non-random families are deterministic: they evaluate one slice whatever `slices` says.
    directions: str = "random"  # random | hessian | trajectory | modes
    dims: int = 2  # 1..4 grid dimensions: resolution^dims nodes
    hessian_negative: bool = False
    hessian_tol: float = 1e-4  # Lanczos relative tolerance of the eigenvectors (residuals are recorded)
    run_ids: tuple[str, ...] = ()  # modes: three run ids (RUN or RUN:checkpoint, e.g. RUN:final)
    points_per_step: int = 8  # nodes per vmap forward (more amortizes per-call overhead of small models; memory x K)
    per_example: bool = False  # keep each example's loss at each node (bootstrap noise floor; memory x examples)


@dataclass(frozen=True)
class TopologyConfig:
    backend: str = "gudhi"  # gudhi | ripser
    connectivity: int = 8  # 8 (T-construction, flag complex of the king graph) | 4 (V-construction)
    noise_floor: float = -1.0  # >= 0: a given epsilon (loss units); < 0: measured as noise_source says
    noise_source: str = "subset"  # subset (grids on two disjoint data halves, no extra cost) | none (epsilon 0)


@dataclass(frozen=True)
class CurvatureConfig:
    measures: tuple[str, ...] = ("hessian_trace", "top_eigenvalues", "fisher_trace", "sharpness", "barrier")
    subset: int = 512  # examples used (same for every measure; logged)
    batch_size: int = 128
    probes: int = 16  # Hutchinson probes
    eigen_tol: float = 1e-3  # Lanczos relative tolerance for the top eigenvalue (convergence is reported)
    barrier_directions: int = 10  # filter-normalized random directions of the barrier
    enabled: bool = True


@dataclass(frozen=True)
class ForgettingConfig:
    steps: tuple[int, ...] = (0, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)  # evaluation schedule
    optimizer: str = "sgd"  # sgd | adam
    lr: float = 0.01  # one task-B learning rate for every architecture
    schedule: str = "constant"  # constant | cosine
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128
    ewc_lambda: float = 0.0  # > 0 enables EWC with this strength
    barrier_points: int = 21  # points on the task-A -> task-B straight path
    np_every: int = 0  # > 0: log per-layer neural persistence every N task-B steps


@dataclass(frozen=True)
class NeuralPersistenceConfig:
    p: float = 2.0  # p-norm of the persistence diagram
    per_head: bool = False  # split attention projections per head


@dataclass(frozen=True)
class StudyConfig:
    archs: tuple[str, ...] = ("mlp",)  # architectures of the study, each NAME or NAME@WIDTH
    seeds: tuple[int, ...] = (0,)  # training seeds; one parent run per architecture x seed
    analysis_spec: str = "analysis/persist.yaml"  # the declared hypotheses tested at the end


@dataclass(frozen=True)
class RunConfig:
    experiment: str = "persist"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    landscape: LandscapeConfig = field(default_factory=LandscapeConfig)
    topology: TopologyConfig = field(default_factory=TopologyConfig)
    curvature: CurvatureConfig = field(default_factory=CurvatureConfig)
    forgetting: ForgettingConfig = field(default_factory=ForgettingConfig)
    neural_persistence: NeuralPersistenceConfig = field(default_factory=NeuralPersistenceConfig)
    study: StudyConfig = field(default_factory=StudyConfig)


STUDY_ARCHITECTURES = (
    "resnet18", "resnet50", "resnet18_wide", "wrn28_1", "wrn28_2", "wrn28_4", "wrn28_6", "wrn28_8", "wrn28_10",
    "densenet121", "efficientnet_b0", "vgg16_bn", "convnext_tiny", "mobilenet_v3_small", "shufflenet_v2",
    "regnet_y_400mf", "vit_small", "vit_tiny", "mlp_mixer",
)


def smoke() -> RunConfig:
    """The embedded default: digits on a laptop CPU in minutes."""
    return override(RunConfig(experiment="persist-smoke"), [
        "train.epochs=15", "train.batch_size=64", "train.lr=0.05", "train.warmup_epochs=1",
        "landscape.resolution=21", "landscape.slices=3", "landscape.batch_size=512",
        "curvature.subset=128", "curvature.probes=8", "curvature.eigen_tol=0.01", "curvature.barrier_directions=5",
        "forgetting.steps=0,10,25,50,100,200", "forgetting.batch_size=64", "forgetting.lr=0.02",
        "study.archs=mlp@0.25,mlp@0.5,cnn@0.25,cnn@0.5,resnet18@0.125,vit_tiny@0.5,mlp_mixer@0.125",
    ])


def cifar100() -> RunConfig:
    """The PERSIST study: CIFAR-100 classes 0-49 then 50-99, 51x51 grids over [-1, 1], 5 slices."""
    return override(RunConfig(experiment="persist-cifar100"), [
        "data.dataset=cifar100", "model.arch=resnet18", "train.epochs=100", "train.lr=0.1",
        "train.warmup_epochs=5", "train.bf16=true", "train.channels_last=true",
        "landscape.resolution=51", "landscape.slices=5", "landscape.subset=5000",
        "curvature.subset=2048", "curvature.probes=32",
        "study.archs=" + ",".join(STUDY_ARCHITECTURES), "study.seeds=0,1,2",
    ])


PRESETS = {"smoke": smoke, "cifar100": cifar100}


def preset(name: str) -> RunConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset '{name}'; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]()


def _parse(raw: str, annotation: Any, key: str) -> Any:
    if annotation is bool:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key} expects true/false, got '{raw}'")
    if typing.get_origin(annotation) is tuple:
        (inner, _) = typing.get_args(annotation)
        return tuple(_parse(part.strip(), inner, key) for part in raw.split(",") if part.strip())
    try:
        return annotation(raw)
    except ValueError:
        raise ConfigError(f"{key} expects {annotation.__name__}, got '{raw}'") from None


def override(cfg: Any, assignments: Iterable[str]) -> Any:
    """Apply ``section.field=value`` assignments, type-checked; unknown keys raise ConfigError."""
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"override '{item}' is not of the form key=value")
        cfg = _set(cfg, key.strip().split("."), raw.strip(), key.strip())
    return cfg


def _set(obj: Any, path: list[str], raw: str, key: str) -> Any:
    hints = typing.get_type_hints(type(obj))
    name = path[0]
    if name not in hints:
        raise ConfigError(f"unknown config key '{key}'")
    current = getattr(obj, name)
    if is_dataclass(current):
        if len(path) == 1:
            raise ConfigError(f"config key '{key}' is a section; set one of its fields")
        return replace(obj, **{name: _set(current, path[1:], raw, key)})
    if len(path) > 1:
        raise ConfigError(f"unknown config key '{key}'")
    return replace(obj, **{name: _parse(raw, hints[name], key)})


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(data: dict[str, Any], cls: type = RunConfig) -> Any:
    """Rebuild a config from :func:`to_dict` output (e.g. ``config/resolved.json`` of an upstream run)."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        if is_dataclass(hints[f.name]):
            value = from_dict(value, hints[f.name])
        elif typing.get_origin(hints[f.name]) is tuple:
            value = tuple(value)
        kwargs[f.name] = value
    unknown = set(data) - {f.name for f in fields(cls)}
    if unknown:
        raise ConfigError(f"unknown config keys in {cls.__name__}: {', '.join(sorted(unknown))}")
    return cls(**kwargs)


def flatten(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """``{"train.lr": 0.05, ...}``: the form logged as MLflow params."""
    out: dict[str, Any] = {}
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if is_dataclass(value):
            out.update(flatten(value, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = ",".join(map(str, value)) if isinstance(value, tuple) else value
    return out


def config_hash(cfg: Any, sections: Iterable[str] | None = None) -> str:
    """Stable short hash of the whole config, or of the sections a phase depends on."""
    data = to_dict(cfg)
    if sections is not None:
        data = {k: data[k] for k in sorted(sections)}
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
