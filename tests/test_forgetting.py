"""Forgetting: metrics on hand-built curves, head widening, masking, EWC, resume, barrier, figure."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from persist.checkpoint import load_checkpoint
from persist.data import iterate_batches, load_task
from persist.errors import CheckpointError, ConfigError
from persist.forgetting import (
    ForgettingCurve,
    ForgettingWarning,
    aurc,
    backward_transfer,
    diagonal_fisher,
    eval_schedule,
    ewc_penalty,
    learning_rate,
    measure_tasks,
    pad_fisher,
    retention,
    run_sequential,
    summarize,
    task_barrier,
    widen_classifier,
    wilson_interval,
)
from persist.models import create_model, get_classifier
from persist.training.hooks import BaseHook

# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def tasks():
    return load_task("digits", "A"), load_task("digits", "B")


@pytest.fixture(scope="module")
def task_a_state(tasks):
    """A small MLP trained on digits task A (~96% test accuracy), as a state_dict."""
    task_a, _ = tasks
    torch.manual_seed(0)
    model = create_model("mlp", task_a.num_classes, task_a.in_channels, task_a.image_size, width=0.25)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        for xb, yb in iterate_batches(task_a.x_train, task_a.y_train, 64, gen, shuffle=True):
            opt.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
    return {k: v.clone() for k, v in model.state_dict().items()}


def fresh_model(task_a, state):
    model = create_model("mlp", task_a.num_classes, task_a.in_channels, task_a.image_size, width=0.25)
    model.load_state_dict(state)
    return model


def hand_curve(acc, masked=None, b=None, steps=(0, 10, 30)):
    acc = np.asarray(acc, dtype=float)
    masked = np.asarray(masked if masked is not None else acc, dtype=float)
    return ForgettingCurve(
        steps=np.asarray(steps), task_a_acc=acc, task_a_acc_masked=masked,
        task_a_loss=np.ones_like(acc), task_a_loss_masked=np.ones_like(acc),
        task_b_acc=np.asarray(b if b is not None else [0.0, 0.5, 0.9], float), task_b_loss=np.ones_like(acc),
        n_task_a=100, n_task_b=100, num_task_a_classes=5, num_task_b_classes=5,
    )


# ---------------------------------------------------------------- metrics on hand-built curves

def test_retention_and_linear_aurc_by_hand():
    ret = retention(np.array([0.8, 0.4, 0.2]))
    np.testing.assert_allclose(ret, [1.0, 0.5, 0.25])
    # trapezoid: [10 * (1 + 0.5) / 2 + 20 * (0.5 + 0.25) / 2] / 30 = (7.5 + 7.5) / 30
    assert aurc(np.array([0, 10, 30]), ret) == pytest.approx(0.5)
    assert aurc(np.array([0, 10, 30]), np.ones(3)) == pytest.approx(1.0)
    assert backward_transfer(np.array([0.8, 0.4, 0.2])) == pytest.approx(-0.6)


def test_log_aurc_by_hand():
    ret = np.array([1.0, 0.5, 0.25])
    l11, l31 = math.log(11), math.log(31)
    expected = (l11 * 0.75 + (l31 - l11) * 0.375) / l31
    assert aurc(np.array([0, 10, 30]), ret, axis="log") == pytest.approx(expected)
    assert aurc(np.array([0, 10, 30]), np.ones(3), axis="log") == pytest.approx(1.0)


def test_retention_of_unlearned_task_is_nan_not_zero():
    assert np.isnan(retention(np.array([0.0, 0.0, 0.1]))).all()


def test_aurc_rejects_schedule_without_step_zero():
    with pytest.raises(ConfigError, match="start at 0"):
        aurc(np.array([10, 30]), np.array([1.0, 0.5]))
    with pytest.raises(ConfigError, match="aurc_axis"):
        aurc(np.array([0, 10]), np.array([1.0, 0.5]), axis="loglog")


def test_summary_uses_both_variants():
    s = summarize(hand_curve([0.8, 0.4, 0.2], masked=[0.8, 0.8, 0.6]))
    assert s["ret_10"] == pytest.approx(0.5) and s["ret_30"] == pytest.approx(0.25)
    assert s["ret_masked_10"] == pytest.approx(1.0) and s["ret_masked_30"] == pytest.approx(0.75)
    assert s["aurc"] == pytest.approx(0.5)
    assert s["aurc_masked"] == pytest.approx((10 * 1.0 + 20 * 0.875) / 30)
    assert s["bwt"] == pytest.approx(-0.6) and s["bwt_masked"] == pytest.approx(-0.2)
    assert s["task_b_final_acc"] == pytest.approx(0.9)
    assert all("@" not in k for k in s)  # MLflow rejects '@' in metric names


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(5, 10)
    assert float(lo) == pytest.approx(0.2366, abs=1e-4) and float(hi) == pytest.approx(0.7634, abs=1e-4)
    lo, hi = wilson_interval(0, 10)  # upper bound z^2 / (n + z^2)
    z2 = 1.959963984540054 ** 2
    assert float(lo) == 0.0 and float(hi) == pytest.approx(z2 / (10 + z2))
    k = np.array([0, 3, 50, 97, 100])
    lo, hi = wilson_interval(k, 100)
    assert np.all(lo <= k / 100) and np.all(k / 100 <= hi) and np.all(lo >= 0) and np.all(hi <= 1)


def test_schedules():
    assert eval_schedule((0, 10, 25, 50, 100, 250), 60) == (0, 10, 25, 50, 60)
    assert eval_schedule((10, 25), 25) == (0, 10, 25)
    assert learning_rate(0, 0.1, 100, "cosine") == pytest.approx(0.1)
    assert learning_rate(50, 0.1, 100, "cosine") == pytest.approx(0.05)
    assert learning_rate(100, 0.1, 100, "cosine") == pytest.approx(0.0)
    assert learning_rate(73, 0.1, 100, "constant") == 0.1


# ---------------------------------------------------------------- head widening and masking

def test_widening_keeps_task_a_head_bit_exact(tasks, task_a_state):
    task_a, _ = tasks
    model = fresh_model(task_a, task_a_state).eval()
    old_head = get_classifier(model)
    old_weight, old_bias = old_head.weight.detach().clone(), old_head.bias.detach().clone()
    before = model(task_a.x_test)
    widen_classifier(model, 5, torch.Generator().manual_seed(3))
    after = model(task_a.x_test)
    head = get_classifier(model)
    assert after.shape == (len(task_a.x_test), 10)
    # The old rows are copied bit for bit; the logits then agree to the rounding of a matmul of another width
    # (BLAS blocks a 10-column product differently from a 5-column one on some CPUs).
    assert torch.equal(head.weight[:5], old_weight) and torch.equal(head.bias[:5], old_bias)
    torch.testing.assert_close(after[:, :5], before, rtol=1e-6, atol=1e-5)
    bound = 1 / math.sqrt(head.in_features)
    assert head.weight[5:].abs().max() <= bound and head.bias[5:].abs().max() <= bound
    other = fresh_model(task_a, task_a_state)
    widen_classifier(other, 5, torch.Generator().manual_seed(3))
    assert torch.equal(get_classifier(other).weight, head.weight)  # seeded: identical new rows


def test_masked_and_class_incremental_accuracy_on_crafted_logits():
    # The "model" is the identity, so inputs are the logits; task A = classes 0-1, task B = 2-3.
    logits_a = torch.tensor([[3.0, 1.0, 5.0, 0.0],   # y=0: all -> 2 (wrong), masked -> 0 (right)
                             [1.0, 2.0, 0.0, 0.0],   # y=1: right in both
                             [2.0, 1.0, 0.0, 4.0],   # y=1: wrong in both
                             [0.0, 1.0, 0.5, 3.0]])  # y=1: all -> 3 (wrong), masked -> 1 (right)
    y_a = torch.tensor([0, 1, 1, 1])
    logits_b = torch.tensor([[0.0, 0.0, 1.0, 0.0], [5.0, 0.0, 1.0, 0.0]])
    y_b = torch.tensor([2, 3])  # already shifted
    m = measure_tasks(nn.Identity(), logits_a, y_a, logits_b, y_b, num_task_a=2, batch_size=3)
    assert m["task_a_acc"] == 0.25 and m["task_a_acc_masked"] == 0.75 and m["task_b_acc"] == 0.5
    lse = np.log(np.exp(logits_a.numpy()[:, :2]).sum(1))
    masked_loss = np.mean(lse - logits_a.numpy()[np.arange(4), y_a.numpy()])
    assert m["task_a_loss_masked"] == pytest.approx(masked_loss, rel=1e-6)
    full_lse = np.log(np.exp(logits_a.numpy()).sum(1))
    assert m["task_a_loss"] == pytest.approx(np.mean(full_lse - logits_a.numpy()[np.arange(4), y_a.numpy()]), rel=1e-6)


# ---------------------------------------------------------------- EWC

def test_ewc_penalty_value_and_gradient(tasks, task_a_state):
    task_a, _ = tasks
    model = fresh_model(task_a, task_a_state)
    anchor = {k: v.clone() for k, v in model.state_dict().items()}
    gen = torch.Generator().manual_seed(1)
    fisher = {n: torch.rand(p.shape, generator=gen) for n, p in model.named_parameters()}
    assert ewc_penalty(model, anchor, fisher, 7.0).item() == 0.0
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=gen))
    penalty = ewc_penalty(model, anchor, fisher, 7.0)
    by_hand = sum(0.5 * 7.0 * (fisher[n] * (p - anchor[n]) ** 2).sum() for n, p in model.named_parameters())
    assert penalty.item() == pytest.approx(by_hand.item(), rel=1e-6)
    penalty.backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, 7.0 * fisher[n] * (p.detach() - anchor[n]))


def test_fisher_matches_per_sample_autograd_loop(tasks, task_a_state):
    task_a, _ = tasks
    model = fresh_model(task_a, task_a_state)
    x, y = task_a.x_train[:12], task_a.y_train[:12]
    fisher = diagonal_fisher(model, x, y, batch_size=5)
    expected = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for i in range(len(x)):
        model.zero_grad()
        F.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        for n, p in model.named_parameters():
            expected[n] += p.grad ** 2 / len(x)
    for n in expected:
        torch.testing.assert_close(fisher[n], expected[n], rtol=1e-4, atol=1e-9)
    # The widened head's new rows get no anchor: their Fisher is zero, the old rows keep theirs.
    widen_classifier(model, 5, torch.Generator().manual_seed(0))
    padded = pad_fisher(fisher, model)
    head = model.classifier_path
    assert padded[f"{head}.weight"].shape == (10, get_classifier(model).in_features)
    assert torch.equal(padded[f"{head}.weight"][:5], fisher[f"{head}.weight"])
    assert padded[f"{head}.weight"][5:].abs().sum() == 0 and padded[f"{head}.bias"][5:].abs().sum() == 0


def test_ewc_protects_task_a(tasks, task_a_state):
    task_a, task_b = tasks
    kw = dict(steps=(0, 30, 60), batch_size=64, lr=0.05)
    naive = run_sequential(fresh_model(task_a, task_a_state), task_a, task_b, **kw)
    ewc = run_sequential(fresh_model(task_a, task_a_state), task_a, task_b, ewc_lambda=100.0, **kw)
    assert ewc.settings["ewc_lambda"] == 100.0
    assert ewc.summary["ret_masked_60"] > naive.summary["ret_masked_60"] + 0.2
    assert ewc.summary["task_b_final_acc"] > 0.8


# ---------------------------------------------------------------- the sequential run

class Recorder(BaseHook):
    def __init__(self, fail_at: int | None = None, stop_at: int | None = None):
        self.steps, self.closed, self.fail_at, self.stop_at = [], False, fail_at, stop_at

    def on_step_end(self, step, model):
        self.steps.append(step)
        if step == self.fail_at:
            raise KeyboardInterrupt("simulated kill")

    def should_stop(self):
        return self.stop_at is not None and self.steps[-1] >= self.stop_at

    def close(self):
        self.closed = True


def test_run_records_schedule_and_calls_hooks(tasks, task_a_state):
    task_a, task_b = tasks
    hook = Recorder()
    result = run_sequential(fresh_model(task_a, task_a_state), task_a, task_b, steps=(0, 10, 25, 30),
                            batch_size=64, lr=0.05, hooks=[hook])
    curve = result.curve
    assert curve.steps.tolist() == [0, 10, 25, 30]
    assert hook.steps == list(range(1, 31)) and hook.closed
    assert curve.task_a_acc[0] == pytest.approx(curve.task_a_acc_masked[0])  # nothing learned on B yet
    assert curve.task_a_acc[0] > 0.9 and curve.task_b_acc[0] == 0.0  # measured, not assumed: the fresh rows win no image here
    assert np.all(curve.task_a_acc_masked >= curve.task_a_acc)
    assert result.summary["task_b_final_acc"] > 0.8
    assert result.summary["bwt"] == pytest.approx(curve.task_a_acc[-1] - curve.task_a_acc[0])
    assert result.summary["ret_30"] == pytest.approx(curve.task_a_acc[-1] / curve.task_a_acc[0])
    payload = json.loads(result.to_json())
    back = ForgettingCurve.from_dict(payload["curve"])
    np.testing.assert_array_equal(back.task_a_acc, curve.task_a_acc)
    lo, hi = np.array(payload["curve"]["task_a_acc_ci95"]).T
    assert np.all(lo <= curve.task_a_acc) and np.all(curve.task_a_acc <= hi)
    assert payload["summary"]["aurc"] == result.summary["aurc"]


@pytest.mark.filterwarnings("ignore:task B was barely learned")
def test_hook_can_stop_the_run(tasks, task_a_state):
    task_a, task_b = tasks
    with pytest.warns(ForgettingWarning, match="stopped training at step 7"):
        result = run_sequential(fresh_model(task_a, task_a_state), task_a, task_b, steps=(0, 5, 10, 30),
                                batch_size=64, lr=0.05, hooks=[Recorder(stop_at=7)])
    assert result.curve.steps.tolist() == [0, 5, 7]


def test_barely_learned_task_b_warns(tasks, task_a_state):
    task_a, task_b = tasks
    with pytest.warns(ForgettingWarning, match="task B was barely learned"):
        result = run_sequential(fresh_model(task_a, task_a_state), task_a, task_b, steps=(3,), batch_size=64, lr=1e-6)
    assert any("task B was barely learned" in w for w in result.warnings)


@pytest.mark.parametrize("variant", [
    dict(optimizer="sgd", augment_padding=1),
    dict(optimizer="adam", lr=0.01, schedule="cosine", ewc_lambda=10.0),
])
def test_resume_after_kill_is_identical(tasks, task_a_state, tmp_path, variant):
    task_a, task_b = tasks
    kw = dict(steps=(0, 5, 10, 20, 40), batch_size=64, lr=0.05, seed=3) | variant
    reference = run_sequential(fresh_model(task_a, task_a_state), task_a, task_b, **kw)

    path = tmp_path / "forgetting.pt"
    killer = Recorder(fail_at=13)  # 9 batches per epoch: killed mid-epoch, 3 steps after the step-10 checkpoint
    with pytest.raises(KeyboardInterrupt):
        run_sequential(fresh_model(task_a, task_a_state), task_a, task_b, checkpoint_path=path, hooks=[killer], **kw)
    assert killer.closed and load_checkpoint(path)["step"] == 10
    resumed = run_sequential(fresh_model(task_a, task_a_state), task_a, task_b, checkpoint_path=path, **kw)

    for name in ("steps", "task_a_acc", "task_a_acc_masked", "task_a_loss", "task_b_acc", "task_b_loss"):
        np.testing.assert_array_equal(getattr(resumed.curve, name), getattr(reference.curve, name))
    assert resumed.summary == reference.summary
    for k, v in reference.final_state.items():
        assert torch.equal(resumed.final_state[k], v), k
    for k, v in reference.initial_state.items():
        assert torch.equal(resumed.initial_state[k], v), k

    with pytest.raises(CheckpointError, match="different lr"):
        run_sequential(fresh_model(task_a, task_a_state), task_a, task_b, checkpoint_path=path, **(kw | {"lr": 0.07}))


def test_user_errors_name_the_parameter(tasks, task_a_state):
    task_a, task_b = tasks
    with pytest.raises(ConfigError, match="^forgetting.lr must be > 0"):
        run_sequential(fresh_model(task_a, task_a_state), task_a, task_b, steps=(5,), lr=0.0)
    with pytest.raises(ConfigError, match="batch_size"):
        run_sequential(fresh_model(task_a, task_a_state), task_a, task_b, steps=(5,), batch_size=10_000)
    widened = fresh_model(task_a, task_a_state)
    widen_classifier(widened, 5, torch.Generator())
    with pytest.raises(ConfigError, match="unwidened task-A model"):
        run_sequential(widened, task_a, task_b, steps=(5,))


# ---------------------------------------------------------------- barrier and figure

def test_barrier_endpoints_match_the_curve(tasks, task_a_state):
    task_a, task_b = tasks
    model = fresh_model(task_a, task_a_state)
    result = run_sequential(model, task_a, task_b, steps=(0, 10, 30), batch_size=64, lr=0.05)
    curve = result.curve
    for logits, loss in (("masked", curve.task_a_loss_masked), ("all", curve.task_a_loss)):
        b = task_barrier(model, result.initial_state, result.final_state, task_a.x_test, task_a.y_test,
                         num_task_a=5, logits=logits, num_points=11)
        assert b.loss[0] == pytest.approx(loss[0], rel=1e-5) and b.loss[-1] == pytest.approx(loss[-1], rel=1e-5)
        chord = (1 - b.ts) * b.loss[0] + b.ts * b.loss[-1]
        assert b.barrier == pytest.approx(max(np.max(b.loss - chord), 0.0))
    assert b.accuracy[0] == pytest.approx(curve.task_a_acc[0]) and b.accuracy[-1] == pytest.approx(curve.task_a_acc[-1])
    # the model is left as it was
    for k, v in model.state_dict().items():
        assert torch.equal(v, result.final_state[k])


def test_forgetting_figure_draws_each_curve():
    from persist.plots.forgetting import plot_forgetting

    curve = hand_curve([0.8, 0.4, 0.2], masked=[0.8, 0.7, 0.6])
    fig = plot_forgetting(curve)
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    np.testing.assert_array_equal(lines["task A, task-masked"].get_ydata(), [0.8, 0.7, 0.6])
    np.testing.assert_array_equal(lines["task B, class-incremental"].get_xdata(), [0, 10, 30])
    assert ax.get_xscale() == "symlog"


def test_a_diverged_point_on_the_path_is_an_infinite_barrier(tasks, task_a_state):
    task_a, _ = tasks
    model = fresh_model(task_a, task_a_state)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    end = {k: (v * 1e30 if v.is_floating_point() else v) for k, v in start.items()}  # overflows the logits
    result = task_barrier(model, start, end, task_a.x_test[:32], task_a.y_test[:32], task_a.num_classes,
                          num_points=5)
    assert not np.isfinite(result.loss).all()
    assert result.barrier == math.inf
