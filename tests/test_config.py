import pytest

from persist.config import RunConfig, config_hash, flatten, from_dict, override, preset, smoke, to_dict
from persist.errors import ConfigError


def test_override_types_and_tuples():
    cfg = override(smoke(), ["landscape.resolution=31", "train.lr=0.2", "data.download=true",
                             "forgetting.steps=0,5,10", "model.arch=cnn"])
    assert cfg.landscape.resolution == 31 and isinstance(cfg.landscape.resolution, int)
    assert cfg.train.lr == 0.2
    assert cfg.data.download is True
    assert cfg.forgetting.steps == (0, 5, 10)
    assert cfg.model.arch == "cnn"


@pytest.mark.parametrize("bad, message", [
    ("train.lrr=1", "unknown config key 'train.lrr'"),
    ("train.lr=fast", "train.lr expects float, got 'fast'"),
    ("data.download=maybe", "data.download expects true/false"),
    ("train=1", "is a section"),
    ("landscape", "not of the form key=value"),
    ("seed.x=1", "unknown config key 'seed.x'"),
])
def test_bad_overrides_are_one_line_errors(bad, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as info:
        override(RunConfig(), [bad])
    assert "\n" not in str(info.value)


def test_round_trip_and_hash():
    cfg = override(smoke(), ["forgetting.steps=0,1,2"])
    assert from_dict(to_dict(cfg)) == cfg
    assert config_hash(cfg) == config_hash(from_dict(to_dict(cfg)))
    changed = override(cfg, ["landscape.resolution=11"])
    assert config_hash(changed) != config_hash(cfg)
    assert config_hash(changed, ["train", "data"]) == config_hash(cfg, ["train", "data"])
    assert flatten(cfg)["forgetting.steps"] == "0,1,2"


def test_presets():
    assert preset("cifar100").data.dataset == "cifar100"
    assert preset("cifar100").landscape.resolution % 2 == 1
    assert smoke().landscape.resolution % 2 == 1
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        preset("nope")
