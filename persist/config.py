"""Frozen, typed run configuration with presets, dotted overrides and a stable hash.

One ``RunConfig`` holds a section per phase. Overrides such as ``landscape.resolution=51`` are
type-checked against the dataclass field and unknown keys are rejected, so a typo can never silently
fall back to a default (the published code had config keys that no code read).

Values are checked when a config is built (``__post_init__``), so a bad value fails before anything runs,
with one line naming the key: ``Literal`` fields list their choices, each section's ``RULES`` table gives
ranges (:class:`Range`) and its ``cross_checks`` the rules between fields. A new field is checked by adding
a ``Literal`` type or a ``RULES`` entry; a field with neither is accepted as its type allows.
"""

from __future__ import annotations

import contextvars
import dataclasses
import hashlib
import json
import math
import typing
import warnings
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any, ClassVar, Iterable, Iterator, Literal

from persist.architectures import CATALOG, dataset_input, study_architectures
from persist.errors import ConfigError
from persist.registry import did_you_mean


@dataclass(frozen=True)
class Range:
    """A finite number in [lo, hi] (either bound optional; ``open_lo``/``open_hi`` exclude it).

    NaN never passes; infinity passes only with ``finite=False`` and no bound on that side.
    """

    lo: float | None = None
    hi: float | None = None
    open_lo: bool = False
    open_hi: bool = False
    finite: bool = True

    def admits(self, value: float) -> bool:
        if math.isnan(value) or (self.finite and math.isinf(value)):
            return False
        above = self.lo is None or (value > self.lo if self.open_lo else value >= self.lo)
        below = self.hi is None or (value < self.hi if self.open_hi else value <= self.hi)
        return above and below

    def __str__(self) -> str:
        lo = "-inf" if self.lo is None else f"{self.lo:g}"
        hi = "inf" if self.hi is None else f"{self.hi:g}"
        if self.hi is None and self.lo is not None:
            return f"{'>' if self.open_lo else '>='} {lo}"
        return f"in {'(' if self.open_lo else '['}{lo}, {hi}{')' if self.open_hi else ']'}"


POSITIVE = Range(0, open_lo=True)
NON_NEGATIVE = Range(0)
AT_LEAST_ONE = Range(1)
FRACTION = Range(0, 1, open_lo=True, open_hi=True)
MOMENTUM = Range(0, 1, open_hi=True)

_deferred: contextvars.ContextVar[bool] = contextvars.ContextVar("persist_config_deferred", default=False)
_warned_even: set[int] = set()


_hints: dict[type, dict[str, Any]] = {}


def _type_hints(cls: type) -> dict[str, Any]:
    """Resolved field types of a config class (resolved once: configs are rebuilt on every override)."""
    if cls not in _hints:
        _hints[cls] = typing.get_type_hints(cls)
    return _hints[cls]


class Section:
    """Validation shared by every config section: ``Literal`` choices, ``RULES`` ranges, ``cross_checks``.

    ``KEY`` is the section's name in :class:`RunConfig` (empty for the top level), so messages name the
    dotted key the user typed. Sections assign ``KEY`` and ``RULES`` without annotations: an annotated
    ``ClassVar`` would appear in ``__dataclass_fields__``, which callers iterate as the config's fields.
    While :func:`override` applies several assignments, checks wait until all are applied, so their order
    never matters (``train.warmup_epochs=5 train.epochs=50``).
    """

    KEY: ClassVar[str] = ""
    RULES: ClassVar[dict[str, Range]] = {}

    def __post_init__(self) -> None:
        if not _deferred.get():
            self.validate()

    def key(self, name: str) -> str:
        return f"{self.KEY}.{name}" if self.KEY else name

    def validate(self) -> None:
        hints = _type_hints(type(self))
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            hint = hints[f.name]
            if typing.get_origin(hint) is Literal:
                self._check_choice(f.name, value, typing.get_args(hint))
            elif typing.get_origin(hint) is tuple and typing.get_origin(typing.get_args(hint)[0]) is Literal:
                for item in value:  # tuple[Literal[...], ...]: every entry is one of the choices
                    self._check_choice(f.name, item, typing.get_args(typing.get_args(hint)[0]))
            if f.name in self.RULES:
                self._check_range(f.name, value, self.RULES[f.name])
        for ok, message in self.cross_checks():
            if not ok:
                raise ConfigError(message)

    def cross_checks(self) -> Iterator[tuple[bool, str]]:
        """``(holds, message)`` for each rule that relates several fields (override in a section)."""
        return iter(())

    def _check_choice(self, name: str, value: Any, choices: tuple[Any, ...]) -> None:
        if value not in choices:
            hint = did_you_mean(str(value), [str(c) for c in choices])
            listed = ", ".join(map(str, choices))
            raise ConfigError(f"{self.key(name)} must be one of {listed}; got '{value}'{hint}")

    def _check_range(self, name: str, value: Any, rule: Range) -> None:
        values = value if isinstance(value, tuple) else (value,)
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not rule.admits(float(v)):
                raise ConfigError(f"{self.key(name)} must be {rule}, got {v!r}")


@dataclass(frozen=True)
class DataConfig(Section):
    dataset: str = "digits"  # digits (offline, embedded) | mnist1d (generated) | cifar10 | cifar100 | cub200 | resisc45
    data_dir: str = "data"  # where datasets live / are downloaded to / MNIST-1D is cached
    download: bool = False  # fetch missing datasets (needs internet; CIFAR only)
    val_fraction: float = 0.1  # validation split carved from training data, for checkpoint selection
    augment: bool = True  # images: random crop (pad = image_size // 8) + horizontal flip; 1-D signals: none
    samples: int = 0  # generated datasets (mnist1d): examples to generate, 80% train / 20% test; 0 = 4000
    image_size: int = 32  # image-folder datasets (cub200, resisc45) are resized to image_size x image_size

    KEY = "data"
    RULES = {
        "val_fraction": FRACTION, "samples": NON_NEGATIVE, "image_size": Range(4, 1024),
    }


@dataclass(frozen=True)
class ModelConfig(Section):
    arch: str = "mlp"  # a name from `persist models`
    width: float = 1.0  # channel/hidden multiplier; 1.0 is the study architecture

    KEY = "model"
    RULES = {"width": Range(0, 64, open_lo=True)}

    def cross_checks(self) -> Iterator[tuple[bool, str]]:
        yield self.arch in CATALOG, unknown_architecture("model.arch", self.arch)


def unknown_architecture(key: str, name: str) -> str:
    return f"unknown architecture '{name}' in {key}{did_you_mean(name, CATALOG)}; see `persist models`"


@dataclass(frozen=True)
class TrainConfig(Section):
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

    KEY = "train"
    RULES = {
        "epochs": AT_LEAST_ONE, "batch_size": AT_LEAST_ONE, "lr": POSITIVE, "momentum": MOMENTUM,
        "weight_decay": NON_NEGATIVE, "warmup_epochs": NON_NEGATIVE, "np_every": NON_NEGATIVE,
        "np_patience": NON_NEGATIVE, "np_burn_in": NON_NEGATIVE,
    }

    def cross_checks(self) -> Iterator[tuple[bool, str]]:
        # equal is allowed: a one-epoch smoke run may warm up throughout (the cosine part is then empty)
        yield (self.warmup_epochs <= self.epochs,
               f"train.warmup_epochs ({self.warmup_epochs}) must not exceed train.epochs ({self.epochs})")


@dataclass(frozen=True)
class LandscapeConfig(Section):
    resolution: int = 51  # odd so the trained weights are a grid node
    span: float = 1.0  # grid covers [-span, span]^2 in units of the filter-normalized directions
    slices: int = 3  # independent random planes, one seed pair each
    seed: int = 0  # slice k uses direction seeds (seed + 2k, seed + 2k + 1)
    normalization: Literal["filter", "layer", "weight", "none"] = "filter"
    one_d: Literal["ignore", "filter"] = "ignore"  # ignore (Li et al.: zero on biases/norm params) | filter
    orthogonalize: bool = False
    split: Literal["test", "val", "train"] = "test"  # data the loss is evaluated on
    subset: int = 0  # evaluate on the first N examples of the split (0 = all)
    batch_size: int = 1024
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # reduced precision is recorded
    method: Literal["auto", "vmap", "foreach"] = "auto"  # auto (timed once) | vmap (nodes per forward) | foreach
    # Direction family of each slice (docs/landscape-directions.md):
    #   random: seeded filter-normalized directions, one seed per axis (slice k: seed + dims*k + i)
    #   hessian: top-`dims` Hessian eigenvectors at theta* (curvature.subset examples, Lanczos), scaled to the
    #     norm of a filter-normalized direction; hessian_negative swaps the last for the most negative one
    #   trajectory: PCA of the train run's parameter snapshots (needs train.snapshots >= dims + 1)
    #   modes: the plane through the models of three run ids (run_ids=A,B,C; A is the grid origin; dims 2)
    # Non-random families are deterministic: they evaluate one slice whatever `slices` says.
    directions: Literal["random", "hessian", "trajectory", "modes"] = "random"
    dims: int = 2  # 1..4 grid dimensions: resolution^dims nodes
    hessian_negative: bool = False
    hessian_tol: float = 1e-4  # Lanczos relative tolerance of the eigenvectors (residuals are recorded)
    run_ids: tuple[str, ...] = ()  # modes: three run ids (RUN or RUN:checkpoint, e.g. RUN:final)
    points_per_step: int = 8  # nodes per vmap forward (more amortizes per-call overhead of small models; memory x K)
    per_example: bool = False  # keep each example's loss at each node (bootstrap noise floor; memory x examples)

    KEY = "landscape"
    RULES = {
        "resolution": Range(3), "span": POSITIVE, "slices": AT_LEAST_ONE, "seed": NON_NEGATIVE,
        "subset": NON_NEGATIVE, "batch_size": AT_LEAST_ONE, "dims": Range(1, 4), "hessian_tol": FRACTION,
        "points_per_step": AT_LEAST_ONE,
    }

    def cross_checks(self) -> Iterator[tuple[bool, str]]:
        if self.resolution % 2 == 0 and self.resolution not in _warned_even:
            _warned_even.add(self.resolution)  # once per value and process, however often the config is rebuilt
            warnings.warn(f"landscape.resolution={self.resolution} is even, so the trained weights are not a "
                          "grid node; use an odd value", stacklevel=2)
        yield (self.directions != "modes" or (len(self.run_ids) == 3 and self.dims == 2),
               "landscape.directions=modes needs landscape.run_ids=A,B,C (three run ids) and landscape.dims=2")


@dataclass(frozen=True)
class TopologyConfig(Section):
    backend: Literal["gudhi", "ripser"] = "gudhi"
    # connectivity is named by its 2-D count whatever the grid's dims:
    # 8 = full, 3^n - 1 neighbours (T-construction, flag complex of the king graph); 4 = face, 2n (V-construction)
    connectivity: Literal[8, 4] = 8
    # log_loss: sublevel sets of log(loss): depths become ratios, walls shrink
    filtration: Literal["loss", "log_loss"] = "loss"
    # floor: which noise floor the *_above_eps statistics use (counts above every measured floor are logged too).
    # stability = 2 max|L_half1 - L_half2|; bottleneck = 2 d_B(half1, half2 diagrams), per dim; bootstrap = 2 x the
    # (1 - alpha) quantile of the bootstrap distance (Fasy et al. 2014; needs per-example losses), per dim;
    # fixed = noise_floor; none = 0. An unavailable floor falls back (bootstrap -> bottleneck -> none), recorded.
    floor: Literal["stability", "bottleneck", "bootstrap", "fixed", "none"] = "bottleneck"
    noise_floor: float = -1.0  # >= 0: a given epsilon (filtration units), i.e. floor=fixed; < 0: measured
    noise_source: Literal["subset", "none"] = "subset"  # subset (two disjoint data halves, no extra cost) | none
    bootstrap_samples: int = 200  # resamples of the examples (with replacement) for floor=bootstrap
    bootstrap_alpha: float = 0.05  # the confidence set holds the true diagram with probability 1 - alpha
    bootstrap_distance: Literal["bottleneck", "sup"] = "bottleneck"  # sup = max |L* - L| (bounds it, cheaper)
    bootstrap_seed: int = 0  # seeds the resampling

    KEY = "topology"
    RULES = {"noise_floor": Range(), "bootstrap_samples": AT_LEAST_ONE, "bootstrap_alpha": FRACTION,
             "bootstrap_seed": NON_NEGATIVE}

    def cross_checks(self) -> Iterator[tuple[bool, str]]:
        # a given epsilon is a fixed floor whatever the (default) measured floor; asking to resample too is a contradiction
        yield (self.noise_floor < 0 or self.floor != "bootstrap",
               f"topology.noise_floor={self.noise_floor} gives a fixed floor but topology.floor is '{self.floor}'; "
               "set topology.floor=fixed or topology.noise_floor=-1")
        yield (self.floor != "fixed" or self.noise_floor >= 0,
               f"topology.floor=fixed needs topology.noise_floor >= 0, got {self.noise_floor}")


@dataclass(frozen=True)
class CurvatureConfig(Section):
    measures: tuple[str, ...] = ("hessian_trace", "top_eigenvalues", "fisher_trace", "sharpness", "barrier")
    subset: int = 512  # examples used (same for every measure; logged)
    batch_size: int = 128
    probes: int = 16  # Hutchinson probes
    eigen_tol: float = 1e-3  # Lanczos relative tolerance for the top eigenvalue (convergence is reported)
    barrier_directions: int = 10  # filter-normalized random directions of the barrier
    enabled: bool = True

    KEY = "curvature"
    RULES = {
        "subset": AT_LEAST_ONE, "batch_size": AT_LEAST_ONE, "probes": AT_LEAST_ONE, "eigen_tol": FRACTION,
        "barrier_directions": AT_LEAST_ONE,
    }


# Roughly log-spaced, so the early collapse and the long tail are both resolved.
DEFAULT_EVAL_STEPS: tuple[int, ...] = (0, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)


@dataclass(frozen=True)
class ForgettingConfig(Section):
    steps: tuple[int, ...] = DEFAULT_EVAL_STEPS  # evaluation schedule; the largest entry is the training length
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = 0.01  # one task-B learning rate for every architecture
    schedule: Literal["constant", "cosine"] = "constant"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128
    ewc_lambda: float = 0.0  # > 0 enables EWC with this strength
    barrier_points: int = 21  # points on the task-A -> task-B straight path
    np_every: int = 0  # > 0: log per-layer neural persistence every N task-B steps

    KEY = "forgetting"
    RULES = {
        "steps": NON_NEGATIVE, "lr": POSITIVE, "momentum": MOMENTUM, "weight_decay": NON_NEGATIVE,
        "batch_size": AT_LEAST_ONE, "ewc_lambda": NON_NEGATIVE, "barrier_points": Range(2), "np_every": NON_NEGATIVE,
    }

    def cross_checks(self) -> Iterator[tuple[bool, str]]:
        yield len(self.steps) > 0, "forgetting.steps must list at least one evaluation step (e.g. 0,10,100)"
        yield (max(self.steps, default=1) >= 1,
               f"forgetting.steps must include a step >= 1 (the training length), got {self.steps}")


@dataclass(frozen=True)
class NeuralPersistenceConfig(Section):
    p: float = 2.0  # p-norm of the persistence diagram
    per_head: bool = False  # split attention projections per head

    KEY = "neural_persistence"
    RULES = {"p": Range(1, finite=False)}


STUDY_FAMILIES = ("random", "hessian", "trajectory", "modes")


@dataclass(frozen=True)
class StudyConfig(Section):
    archs: tuple[str, ...] = ("mlp",)  # architectures of the study, each NAME or NAME@WIDTH
    seeds: tuple[int, ...] = (0,)  # training seeds; one parent run per architecture x seed
    analysis_spec: str = "analysis/persist.yaml"  # the declared hypotheses tested at the end
    # direction families: one landscape run per member and family (curvature on the first); modes = the plane
    # through theta_A of the seed, theta_A of the architecture's next seed and theta_B after forgetting
    directions: tuple[str, ...] = ("random",)
    hessian_span: float = 0.1  # landscape.span of the hessian family: its top-curvature walls need a short span

    KEY = "study"
    RULES = {"seeds": NON_NEGATIVE, "hessian_span": POSITIVE}

    def cross_checks(self) -> Iterator[tuple[bool, str]]:
        yield len(self.archs) > 0, "study.archs must list at least one architecture"
        yield len(self.seeds) > 0, "study.seeds must list at least one seed"
        yield len(self.directions) > 0, "study.directions must list at least one direction family"
        for family in self.directions:
            yield family in STUDY_FAMILIES, (f"study.directions entry '{family}' is not a direction family; "
                                             f"choose from {', '.join(STUDY_FAMILIES)}")
        yield len(set(self.directions)) == len(self.directions), "study.directions lists a family twice"
        for entry in self.archs:
            name, _, width = entry.partition("@")
            yield name in CATALOG, unknown_architecture("study.archs", name)
            if width:
                yield _is_width(width), f"study.archs entry '{entry}': width must be a number in (0, 64]"


def _is_width(text: str) -> bool:
    try:
        return ModelConfig.RULES["width"].admits(float(text))
    except ValueError:
        return False


@dataclass(frozen=True)
class RunConfig(Section):
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

    RULES = {"seed": NON_NEGATIVE}

    def cross_checks(self) -> Iterator[tuple[bool, str]]:
        yield bool(self.experiment.strip()), "experiment must be a non-empty name"
        kind, _, index = self.device.partition(":")
        yield (self.device in ("auto", "cpu", "cuda", "mps") or (kind == "cuda" and index.isdigit()),
               f"device must be auto, cpu, cuda, cuda:N or mps, got '{self.device}'")
        wanted = dataset_input(self.data.dataset)
        members = [("study.archs", entry.partition("@")[0]) for entry in self.study.archs]
        for key, name in [("model.arch", self.model.arch), *members]:
            if name in CATALOG and CATALOG[name].input != wanted:
                kinds = {"1d": "1-D signals", "2d": "2-D images"}
                yield False, (f"{key} '{name}' takes {kinds[CATALOG[name].input]} but data.dataset "
                              f"'{self.data.dataset}' gives {kinds[wanted]}; see `persist models` for {wanted} ones")


def validate(cfg: Any) -> Any:
    """Check every section of ``cfg`` (what ``__post_init__`` does, for configs built with checks deferred)."""
    if is_dataclass(cfg):
        for f in fields(cfg):
            validate(getattr(cfg, f.name))
        if isinstance(cfg, Section):
            cfg.validate()
    return cfg


STUDY_ARCHITECTURES = study_architectures("cifar100")  # the PERSIST study's 19, in the published order
MNIST1D_ARCHITECTURES = study_architectures("mnist1d") + ("mlp1d@4", "cnn1d@0.5")  # + two widths of the series


def smoke() -> RunConfig:
    """The embedded default: digits on a laptop CPU in minutes."""
    return override(RunConfig(experiment="persist-smoke"), [
        "train.epochs=15", "train.batch_size=64", "train.lr=0.05", "train.warmup_epochs=1",
        # 32 nodes per vmap forward: small CPU models are call-overhead bound (MLP 0.65 -> 0.92 of forward-only)
        "landscape.resolution=21", "landscape.slices=3", "landscape.batch_size=512", "landscape.points_per_step=32",
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


def mnist1d() -> RunConfig:
    """A CPU study that can come out either way: MNIST-1D digits 0-4 then 5-9, 16 members x 3 seeds.

    The 1-D families (MLP, CNN, ResNet and plain depth series at 8/20/32 layers, GRU, transformer, with and
    without BatchNorm) plus two widths; forgetting is evaluated early (5, 10, 25 steps) where
    class-incremental retention has not yet collapsed. Signals are not augmented.
    """
    return override(RunConfig(experiment="persist-mnist1d"), [
        "data.dataset=mnist1d", "data.samples=4000", "data.augment=false", "model.arch=cnn1d",
        "train.epochs=20", "train.batch_size=64", "train.lr=0.05", "train.warmup_epochs=1",
        "landscape.resolution=15", "landscape.slices=2", "landscape.subset=384", "landscape.batch_size=512",
        "landscape.points_per_step=32", "topology.floor=bottleneck",
        "curvature.subset=128", "curvature.probes=4", "curvature.eigen_tol=0.01", "curvature.barrier_directions=3",
        # task-B lr 0.005: at 0.02 class-incremental ret_25 was 0 on every sizing member (docs/study-mnist1d.md)
        "forgetting.steps=0,5,10,25,50,100,250", "forgetting.batch_size=64", "forgetting.lr=0.005",
        "study.archs=" + ",".join(MNIST1D_ARCHITECTURES), "study.seeds=0,1,2",
        "study.directions=random,hessian,modes", "study.analysis_spec=analysis/mnist1d.yaml",
    ])


DEMO_ARCHITECTURES = ("mlp1d", "mlp1d_bn", "cnn1d", "cnn1d_bn", "cnn1d@0.5", "resnet1d_8", "transformer1d")


def demo() -> RunConfig:
    """What ``make demo`` runs: the MNIST-1D study in small, a few minutes on a laptop CPU.

    Seven cheap members of the series x 2 seeds (the mode plane needs a second seed), random and mode
    planes, analysed by analysis/demo.yaml. On digits no member had a bar above the noise floor; here
    every mode plane has one (docs/study-mnist1d.md).
    """
    base = mnist1d()
    return override(replace(base, experiment="persist-demo"), [
        "study.archs=" + ",".join(DEMO_ARCHITECTURES), "study.seeds=0,1",
        "study.directions=random,modes", "study.analysis_spec=analysis/demo.yaml",
    ])


PRESETS = {"demo": demo, "smoke": smoke, "cifar100": cifar100, "mnist1d": mnist1d}


def preset(name: str) -> RunConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset '{name}'{did_you_mean(name, PRESETS)}; choose one of: {', '.join(PRESETS)}")
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
    if typing.get_origin(annotation) is Literal:  # parsed as the choices' type; membership is checked on build
        annotation = type(typing.get_args(annotation)[0])
    try:
        return annotation(raw)
    except ValueError:
        raise ConfigError(f"{key} expects {annotation.__name__}, got '{raw}'") from None


def override(cfg: Any, assignments: Iterable[str]) -> Any:
    """Apply ``section.field=value`` assignments, type-checked; unknown keys raise ConfigError.

    Values are validated once all assignments are applied, so their order never matters.
    """
    token = _deferred.set(True)
    try:
        for item in assignments:
            key, sep, raw = item.partition("=")
            if not sep:
                raise ConfigError(f"override '{item}' is not of the form key=value")
            cfg = _set(cfg, key.strip().split("."), raw.strip(), key.strip(), cfg)
    finally:
        _deferred.reset(token)
    return validate(cfg)


def config_keys(cfg: Any, prefix: str = "") -> list[str]:
    """Every dotted key of ``cfg`` (sections and fields), for close-match suggestions."""
    keys = []
    for f in fields(cfg):
        keys.append(prefix + f.name)
        if is_dataclass(getattr(cfg, f.name)):
            keys += config_keys(getattr(cfg, f.name), f"{prefix}{f.name}.")
    return keys


def _unknown_key(key: str, root: Any) -> ConfigError:
    return ConfigError(f"unknown config key '{key}'{did_you_mean(key, config_keys(root))}")


def _set(obj: Any, path: list[str], raw: str, key: str, root: Any) -> Any:
    hints = typing.get_type_hints(type(obj))
    name = path[0]
    if name not in hints or name not in {f.name for f in fields(obj)}:
        raise _unknown_key(key, root)
    current = getattr(obj, name)
    if is_dataclass(current):
        if len(path) == 1:
            raise ConfigError(f"config key '{key}' is a section; set one of its fields")
        return replace(obj, **{name: _set(current, path[1:], raw, key, root)})
    if len(path) > 1:
        raise _unknown_key(key, root)
    return replace(obj, **{name: _parse(raw, hints[name], key)})


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(data: Any, cls: type = RunConfig, prefix: str = "") -> Any:
    """Rebuild a config from :func:`to_dict` output (e.g. ``config/resolved.json`` of an upstream run).

    Logged JSON is input like any other: every section must be a mapping and every value of its field's
    type, so a damaged file is refused instead of silently becoming defaults."""
    if not isinstance(data, dict):
        raise ConfigError(f"'{prefix.rstrip('.') or 'top level'}' is {type(data).__name__}, not a mapping")
    hints = _type_hints(cls)
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        hint = did_you_mean(unknown[0], names)
        raise ConfigError(f"unknown config keys in {cls.__name__}: {', '.join(unknown)}{hint}")
    kwargs = {}
    for name in names:
        if name not in data:
            continue
        value, hint, key = data[name], hints[name], prefix + name
        if isinstance(hint, type) and is_dataclass(hint):
            value = from_dict(value, hint, key + ".")
        elif typing.get_origin(hint) is tuple:
            inner = typing.get_args(hint)[0]
            if not isinstance(value, (list, tuple)) or not all(_json_is(v, inner) for v in value):
                raise ConfigError(f"'{key}' must be a list of {_type_name(inner)}, got {value!r:.60}")
            value = tuple(value)
        elif not _json_is(value, hint):
            raise ConfigError(f"'{key}' must be {_type_name(hint)}, got {value!r:.60}")
        kwargs[name] = value
    return cls(**kwargs)


def _json_is(value: Any, hint: Any) -> bool:
    """JSON typing: ints count as floats, bools as nothing but bools, a Literal as the types of its choices
    (the choices themselves are checked when the config is built)."""
    if typing.get_origin(hint) is Literal:
        return any(_json_is(value, type(choice)) for choice in typing.get_args(hint))
    if hint is bool or isinstance(value, bool):
        return hint is bool and isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float))
    return isinstance(value, hint)


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return " | ".join(map(str, typing.get_args(hint)))
    return getattr(hint, "__name__", str(hint))


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
