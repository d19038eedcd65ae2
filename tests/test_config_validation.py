"""Config values are checked when a config is built: one line naming the key, before anything runs."""

from __future__ import annotations

import dataclasses
import typing
import warnings

import pytest

from persist import config as config_module
from persist.architectures import CATALOG, study_architectures
from persist.config import (
    STUDY_ARCHITECTURES,
    ForgettingConfig,
    LandscapeConfig,
    Range,
    RunConfig,
    Section,
    TrainConfig,
    from_dict,
    override,
    preset,
    smoke,
    to_dict,
)
from persist.errors import ConfigError


@pytest.mark.parametrize("bad, message", [
    ("landscape.split=tset", "landscape.split must be one of test, val, train; got 'tset' (did you mean 'test'?)"),
    ("landscape.method=fast", "landscape.method must be one of auto, vmap, foreach; got 'fast'"),
    ("forgetting.optimizer=lion", "forgetting.optimizer must be one of sgd, adam; got 'lion'"),
    ("landscape.resolution=-4", "landscape.resolution must be >= 3, got -4"),
    ("data.val_fraction=7", "data.val_fraction must be in (0, 1), got 7.0"),
    ("train.batch_size=0", "train.batch_size must be >= 1, got 0"),
    ("train.epochs=0", "train.epochs must be >= 1, got 0"),
    ("model.width=nan", "model.width must be in (0, 64], got nan"),
    ("model.width=inf", "model.width must be in (0, 64], got inf"),
    ("model.width=1e6", "model.width must be in (0, 64], got 1000000.0"),
    ("model.width=0", "model.width must be in (0, 64], got 0.0"),
    ("seed=-1", "seed must be >= 0, got -1"),
    ("train.warmup_epochs=-3", "train.warmup_epochs must be >= 0, got -3"),
    ("train.warmup_epochs=16", "train.warmup_epochs (16) must not exceed train.epochs (15)"),
    ("forgetting.steps=", "forgetting.steps must list at least one evaluation step"),
    ("forgetting.steps=0,-5", "forgetting.steps must be >= 0, got -5"),
    ("train.lr=nan", "train.lr must be > 0, got nan"),
    ("topology.connectivity=6", "topology.connectivity must be one of 8, 4; got '6'"),
    ("topology.noise_source=subsets", "(did you mean 'subset'?)"),
    ("landscape.precision=fp8", "landscape.precision must be one of fp32, bf16, fp16"),
    ("curvature.eigen_tol=0", "curvature.eigen_tol must be in (0, 1), got 0.0"),
    ("study.seeds=", "study.seeds must list at least one seed"),
    ("study.archs=mlp@0", "study.archs entry 'mlp@0': width must be a number in (0, 64]"),
    ("study.archs=cnn,resnet1d20", "unknown architecture 'resnet1d20' in study.archs (did you mean 'resnet1d_20'?)"),
    ("model.arch=trasformer1d", "unknown architecture 'trasformer1d' in model.arch (did you mean 'transformer1d'?)"),
    ("device=gpu", "device must be auto, cpu, cuda, cuda:N or mps, got 'gpu'"),
    ("train.epoch=3", "unknown config key 'train.epoch' (did you mean 'train.epochs'?)"),
    ("landscpe.resolution=3", "unknown config key 'landscpe.resolution' (did you mean 'landscape.resolution'?)"),
    ("train.RULES=3", "unknown config key 'train.RULES'"),
])
def test_bad_values_fail_at_construction_with_one_line_naming_the_key(bad, message):
    with pytest.raises(ConfigError) as info:
        override(smoke(), [bad])
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_architectures_must_take_the_datasets_input():
    with pytest.raises(ConfigError, match="model.arch 'resnet18' takes 2-D images but data.dataset 'mnist1d' gives "
                                          "1-D signals"):
        override(preset("mnist1d"), ["model.arch=resnet18"])
    with pytest.raises(ConfigError, match="study.archs 'gru1d' takes 1-D signals but data.dataset 'digits'"):
        override(smoke(), ["study.archs=mlp,gru1d"])
    assert override(preset("mnist1d"), ["model.arch=gru1d"]).model.arch == "gru1d"


def test_direct_construction_is_checked_too():
    with pytest.raises(ConfigError, match="landscape.split must be one of"):
        LandscapeConfig(split="tset")
    with pytest.raises(ConfigError, match=r"train.warmup_epochs \(5\) must not exceed train.epochs \(3\)"):
        TrainConfig(epochs=3, warmup_epochs=5)
    with pytest.raises(ConfigError, match="forgetting.steps must list at least one"):
        ForgettingConfig(steps=())
    assert TrainConfig(epochs=1, warmup_epochs=0).epochs == 1


def test_override_order_does_not_matter():
    """warm-up 30 is valid with 50 epochs however the two assignments are ordered."""
    base = override(RunConfig(), ["train.epochs=10", "train.warmup_epochs=2"])
    for order in (["train.warmup_epochs=30", "train.epochs=50"], ["train.epochs=50", "train.warmup_epochs=30"]):
        cfg = override(base, order)
        assert (cfg.train.epochs, cfg.train.warmup_epochs) == (50, 30)


def test_even_resolution_warns_once_per_value():
    config_module._warned_even.discard(20)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            cfg = override(smoke(), ["landscape.resolution=20"])
            LandscapeConfig(resolution=20)
    assert cfg.landscape.resolution == 20
    assert [str(w.message) for w in caught] == [
        "landscape.resolution=20 is even, so the trained weights are not a grid node; use an odd value"]


def test_every_preset_and_the_defaults_are_valid_and_round_trip():
    for name in config_module.PRESETS:
        cfg = preset(name)
        assert from_dict(to_dict(cfg)) == cfg
    assert RunConfig() == from_dict(to_dict(RunConfig()))


def test_from_dict_validates_and_suggests():
    data = to_dict(smoke())
    data["train"]["epochs"] = 0
    with pytest.raises(ConfigError, match="train.epochs must be >= 1"):
        from_dict(data)
    data = to_dict(smoke())
    data["train"]["epohcs"] = data["train"].pop("epochs")
    with pytest.raises(ConfigError, match=r"unknown config keys in TrainConfig: epohcs \(did you mean 'epochs'\?\)"):
        from_dict(data)


def test_unknown_preset_suggests():
    with pytest.raises(ConfigError, match=r"unknown preset 'mnist-1d' \(did you mean 'mnist1d'\?\)"):
        preset("mnist-1d")


def test_rules_name_real_fields_and_literal_defaults_are_choices():
    """A RULES entry for a renamed field would silently check nothing; Literal defaults must be allowed."""
    sections = [cls for cls in vars(config_module).values()
                if isinstance(cls, type) and issubclass(cls, Section) and dataclasses.is_dataclass(cls)]
    hints = typing.get_type_hints(RunConfig)
    assert {hints[f.name] for f in dataclasses.fields(RunConfig) if dataclasses.is_dataclass(hints[f.name])} | {
        RunConfig} == set(sections)  # every section of the run config validates
    for cls in sections:
        names = {f.name for f in dataclasses.fields(cls)}
        assert set(cls.RULES) <= names, cls.__name__
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if typing.get_origin(hints[f.name]) is typing.Literal:
                assert f.default in typing.get_args(hints[f.name])


def test_a_new_field_is_checked_by_its_type_or_a_rules_entry():
    """How another engineer's field gets validated: a Literal (also inside a tuple) or a RULES range."""

    @dataclasses.dataclass(frozen=True)
    class Extra(Section):
        families: tuple[typing.Literal["random", "hessian"], ...] = ("random",)
        dims: int = 2
        free: str = "anything"

        KEY: typing.ClassVar[str] = "extra"
        RULES: typing.ClassVar[dict[str, Range]] = {"dims": Range(1, 4)}

    assert Extra(families=("hessian", "random"), dims=4).dims == 4
    with pytest.raises(ConfigError, match=r"extra.families must be one of random, hessian; got 'hesian' \(did you"):
        Extra(families=("random", "hesian"))
    with pytest.raises(ConfigError, match=r"extra.dims must be in \[1, 4\], got 5"):
        Extra(dims=5)


def test_section_class_attributes_are_not_dataclass_fields():
    """pipeline.py iterates RunConfig.__dataclass_fields__ as the config's sections."""
    for cls in (RunConfig, TrainConfig, LandscapeConfig, ForgettingConfig):
        assert set(cls.__dataclass_fields__) == {f.name for f in dataclasses.fields(cls)}


def test_range_rule():
    assert Range(0, 1, open_lo=True, open_hi=True).admits(0.5)
    assert not Range(0, 1, open_lo=True).admits(0.0)
    assert not Range().admits(float("nan")) and not Range().admits(float("inf"))
    assert Range(1, finite=False).admits(float("inf"))
    assert str(Range(0, open_lo=True)) == "> 0" and str(Range(0, 1, open_hi=True)) == "in [0, 1)"


def test_study_architectures_derive_from_the_registry_metadata():
    assert STUDY_ARCHITECTURES == (
        "resnet18", "resnet50", "resnet18_wide", "wrn28_1", "wrn28_2", "wrn28_4", "wrn28_6", "wrn28_8", "wrn28_10",
        "densenet121", "efficientnet_b0", "vgg16_bn", "convnext_tiny", "mobilenet_v3_small", "shufflenet_v2",
        "regnet_y_400mf", "vit_small", "vit_tiny", "mlp_mixer",
    )
    assert preset("cifar100").study.archs == STUDY_ARCHITECTURES
    assert all(CATALOG[name].input == "2d" for name in STUDY_ARCHITECTURES)


def test_mnist1d_preset():
    cfg = preset("mnist1d")
    assert cfg.data.dataset == "mnist1d" and cfg.data.samples == 4000 and cfg.data.augment is False
    assert len(cfg.study.archs) >= 16 and cfg.study.seeds == (0, 1, 2)
    bases = {entry.partition("@")[0] for entry in cfg.study.archs}
    assert bases == set(study_architectures("mnist1d"))
    assert all(CATALOG[b].input == "1d" for b in bases)
    assert {"resnet1d_8", "resnet1d_20", "resnet1d_32", "plain1d_8", "plain1d_20", "plain1d_32"} <= bases
    assert cfg.forgetting.steps[:4] == (0, 5, 10, 25)
    assert cfg.study.analysis_spec == "analysis/mnist1d.yaml"
    assert cfg.landscape.resolution % 2 == 1
