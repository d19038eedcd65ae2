"""Architecture metadata: family, input kind, study membership and the series facts (skip, depth, BatchNorm).

One table, importable without torch (the config and the analysis read it; it lives outside persist.models
because importing that package builds every architecture module), and the only place these facts
live: :func:`persist.models.register_model` refuses a builder whose name is not here (or that does not bring
its own :class:`ArchInfo`), and the tests check that the table and the registered builders name the same
architectures. ``config.STUDY_ARCHITECTURES`` and the presets' member lists derive from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from persist.errors import ModelError
from persist.registry import did_you_mean

InputKind = Literal["2d", "1d"]


@dataclass(frozen=True)
class ArchInfo:
    """What the analysis groups by and what the data must look like.

    ``family`` is the inductive-bias family (MLP, CNN, CNN+SE, Modern CNN, RNN, Transformer); ``input`` is
    ``"2d"`` for images (N, C, H, W) and ``"1d"`` for signals (N, C, L); ``studies`` names the presets whose
    member list includes the architecture; ``skip``, ``depth`` and ``batchnorm`` describe the depth series
    (Li et al. 2018) where they are varied, else None.
    """

    family: str
    input: InputKind = "2d"
    studies: tuple[str, ...] = ()
    skip: bool | None = None
    depth: int | None = None
    batchnorm: bool | None = None


_CIFAR = ("cifar100",)
_M1D = ("mnist1d",)


def _series(skip: bool, depth: int, batchnorm: bool = True) -> ArchInfo:
    return ArchInfo("CNN", "1d", _M1D, skip=skip, depth=depth, batchnorm=batchnorm)


CATALOG: dict[str, ArchInfo] = {
    # the embedded smoke study (2-D, digits)
    "mlp": ArchInfo("MLP"),
    "cnn": ArchInfo("CNN", batchnorm=True),
    # the PERSIST study (CIFAR-100), in the published order
    "resnet18": ArchInfo("CNN", studies=_CIFAR, skip=True, batchnorm=True),
    "resnet50": ArchInfo("CNN", studies=_CIFAR, skip=True, batchnorm=True),
    "resnet18_wide": ArchInfo("CNN", studies=_CIFAR, skip=True, batchnorm=True),
    **{f"wrn28_{k}": ArchInfo("CNN", studies=_CIFAR, skip=True, depth=28, batchnorm=True) for k in (1, 2, 4, 6, 8, 10)},
    "densenet121": ArchInfo("CNN", studies=_CIFAR, batchnorm=True),
    "efficientnet_b0": ArchInfo("CNN+SE", studies=_CIFAR, batchnorm=True),
    "vgg16_bn": ArchInfo("CNN", studies=_CIFAR, skip=False, depth=16, batchnorm=True),
    "convnext_tiny": ArchInfo("Modern CNN", studies=_CIFAR),
    "mobilenet_v3_small": ArchInfo("CNN+SE", studies=_CIFAR, batchnorm=True),
    "shufflenet_v2": ArchInfo("CNN", studies=_CIFAR, batchnorm=True),
    "regnet_y_400mf": ArchInfo("CNN+SE", studies=_CIFAR, batchnorm=True),
    "vit_small": ArchInfo("Transformer", studies=_CIFAR),
    "vit_tiny": ArchInfo("Transformer", studies=_CIFAR),
    "mlp_mixer": ArchInfo("MLP", studies=_CIFAR),
    # the MNIST-1D study (1-D signals)
    "mlp1d": ArchInfo("MLP", "1d", _M1D, batchnorm=False),
    "mlp1d_bn": ArchInfo("MLP", "1d", _M1D, batchnorm=True),
    "cnn1d": ArchInfo("CNN", "1d", _M1D, skip=False, depth=4, batchnorm=False),
    "cnn1d_bn": ArchInfo("CNN", "1d", _M1D, skip=False, depth=4, batchnorm=True),
    **{f"resnet1d_{d}": _series(True, d) for d in (8, 20, 32)},
    **{f"plain1d_{d}": _series(False, d) for d in (8, 20, 32)},
    "resnet1d_8_nobn": _series(True, 8, batchnorm=False),
    "plain1d_8_nobn": _series(False, 8, batchnorm=False),
    "gru1d": ArchInfo("RNN", "1d", _M1D),
    "transformer1d": ArchInfo("Transformer", "1d", _M1D),
}


SIGNAL_DATASETS = ("mnist1d",)  # datasets whose examples are 1-D signals (N, C, L); every other one gives images


def dataset_input(dataset: str) -> InputKind:
    """``"1d"`` for signal datasets, ``"2d"`` for image datasets: what a model for ``dataset`` must take."""
    return "1d" if dataset in SIGNAL_DATASETS else "2d"


def base_name(member: str) -> str:
    """``resnet1d_20@0.5`` -> ``resnet1d_20``: study members carry an optional width."""
    return member.partition("@")[0]


def arch_info(arch: str) -> ArchInfo:
    """Metadata of an architecture name (a width suffix ``@W`` is ignored)."""
    name = base_name(arch)
    if name not in CATALOG:
        raise ModelError(f"unknown architecture '{name}'{did_you_mean(name, CATALOG)}; see `persist models`")
    return CATALOG[name]


def family_of(arch: str) -> str:
    """The analysis family of an architecture (MLP, CNN, CNN+SE, Modern CNN, RNN, Transformer)."""
    return arch_info(arch).family


def study_architectures(study: str) -> tuple[str, ...]:
    """Architectures whose metadata lists ``study``, in table order."""
    return tuple(name for name, info in CATALOG.items() if study in info.studies)


def add_architecture(name: str, info: ArchInfo) -> None:
    """Register metadata for an architecture defined outside this table (a user's own builder)."""
    if name in CATALOG and CATALOG[name] != info:
        raise ValueError(f"architecture '{name}' already has different metadata in the catalog")
    CATALOG[name] = info
