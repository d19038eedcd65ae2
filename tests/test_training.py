import math

import pytest
import torch

from persist.checkpoint import load_checkpoint, save_checkpoint
from persist.config import TrainConfig
from persist.data import load_task
from persist.errors import CheckpointError
from persist.models import create_model
from persist.training import BaseHook, evaluate, train, warmup_cosine

CFG = TrainConfig(epochs=4, batch_size=64, lr=0.05, warmup_epochs=1)


def _fresh(seed=0):
    task = load_task("digits", "A", seed=0)
    torch.manual_seed(seed)
    return create_model("cnn", task.num_classes, task.in_channels, task.image_size, width=0.25), task


def test_schedule_shape():
    f = warmup_cosine(total_steps=100, warmup_steps=10)
    assert f(0) == pytest.approx(0.1)
    assert f(10) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.5)
    assert f(100) == pytest.approx(0.0, abs=1e-12)


def test_training_learns_and_selects_on_validation():
    model, task = _fresh()
    before = evaluate(model, task.x_val, task.y_val)["accuracy"]
    result = train(CFG, model, task, seed=0)
    best = max(h["val_accuracy"] for h in result.history)
    assert result.best_val_accuracy == best
    assert result.history[result.best_epoch]["val_accuracy"] == best
    model.load_state_dict(result.best_state)
    assert evaluate(model, task.x_val, task.y_val)["accuracy"] == pytest.approx(best)
    assert best > max(before, 0.6)


class Crash(BaseHook):
    def __init__(self, at_epoch):
        self.at_epoch = at_epoch

    def on_epoch_end(self, epoch, model, metrics):
        if epoch == self.at_epoch:
            raise KeyboardInterrupt


def test_resume_after_kill_is_bit_identical(tmp_path):
    model, task = _fresh()
    reference = train(CFG, model, task, seed=0)

    model, _ = _fresh()
    ckpt = tmp_path / "state.pt"
    with pytest.raises(KeyboardInterrupt):
        train(CFG, model, task, seed=0, checkpoint_path=ckpt, hooks=[Crash(1)])
    assert load_checkpoint(ckpt)["epoch"] == 1
    model, _ = _fresh(seed=123)  # a different init: everything must come from the checkpoint
    resumed = train(CFG, model, task, seed=0, checkpoint_path=ckpt)
    assert [h["val_loss"] for h in resumed.history] == [h["val_loss"] for h in reference.history]
    for key, value in reference.best_state.items():
        assert torch.equal(value, resumed.best_state[key]), key


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "state.pt"
    bad.write_bytes(b"\x80\x04not a checkpoint")
    model, task = _fresh()
    with pytest.raises(CheckpointError, match="corrupt"):
        train(CFG, model, task, checkpoint_path=bad)
    save_checkpoint(tmp_path / "ok.pt", x=torch.ones(1))
    assert math.isclose(float(load_checkpoint(tmp_path / "ok.pt")["x"]), 1.0)


class StopAt(BaseHook):
    def __init__(self, epoch):
        self.epoch, self.stop = epoch, False

    def on_epoch_end(self, epoch, model, metrics):
        self.stop = self.stop or epoch == self.epoch

    def should_stop(self):
        return self.stop


def test_a_stop_survives_resume(tmp_path):
    model, task = _fresh()
    ckpt = tmp_path / "state.pt"
    stopped = train(CFG, model, task, seed=0, checkpoint_path=ckpt, hooks=[StopAt(1)])
    assert stopped.stopped_early and len(stopped.history) == 2
    model, _ = _fresh()
    again = train(CFG, model, task, seed=0, checkpoint_path=ckpt)  # no hook now: the stop is in the checkpoint
    assert again.stopped_early and len(again.history) == 2


def test_divergence_is_a_clear_error():
    from dataclasses import replace

    from persist.errors import ConfigError

    model, task = _fresh()
    with pytest.raises(ConfigError, match="lower train.lr"):
        train(replace(CFG, lr=1e30, warmup_epochs=0), model, task, seed=0)
