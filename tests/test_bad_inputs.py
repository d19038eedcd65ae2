"""Every bad input, on every command, is a clean refusal: exit 2, exactly one stderr line `error: ...`, and
nothing created: no file in the working directory, no experiment and no run in the tracking store.

The CLI runs in-process (click's CliRunner) against a module-wide sqlite store holding hand-made upstream runs,
good and damaged; a few representative cases also run as real subprocesses.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from persist.cli import cli

ROOT = Path(__file__).resolve().parents[1]
SHAPE = {"num_classes": 5, "in_channels": 1, "image_size": 8}  # digits task A


def _good_config() -> dict:
    from persist.config import override, smoke, to_dict

    return to_dict(override(smoke(), ["model.arch=mlp", "model.width=0.25"]))


def _weights(arch: str = "mlp", width: float = 0.25) -> dict:
    import torch

    from persist.models import create_model

    torch.manual_seed(0)
    return create_model(arch, 5, 1, 8, width).state_dict()


def _checkpoint(path: Path, kind: str) -> Path | None:
    """A checkpoint file of the given kind: good, or damaged in one way."""
    import torch

    from persist.checkpoint import save_checkpoint

    weights = _weights()
    if kind == "none":
        return None
    if kind == "corrupt":
        path.write_bytes(b"not a torch file")
    elif kind == "no_schema":
        torch.save({"model": weights, "shape": SHAPE}, path)
    elif kind == "missing_key":
        save_checkpoint(path, model={k: v for i, (k, v) in enumerate(weights.items()) if i}, shape=SHAPE)
    elif kind == "wrong_shape":
        save_checkpoint(path, model=_weights("mlp", 0.5), shape=SHAPE)
    elif kind == "no_shape":
        save_checkpoint(path, model=weights)
    elif kind == "bad_shape":
        save_checkpoint(path, model=weights, shape={"num_classes": "five", "in_channels": 1, "image_size": 8})
    else:
        save_checkpoint(path, model=weights, shape=SHAPE)
    return path


def _config_text(kind: str) -> str | None:
    cfg = _good_config()
    if kind == "none":
        return None
    if kind == "list":
        return "[]"
    if kind == "malformed":
        return '{"data": '
    if kind == "wrong_type":
        cfg["model"]["width"] = "wide"
    elif kind == "bool_for_int":
        cfg["train"]["epochs"] = True
    elif kind == "section_list":
        cfg["model"] = []
    elif kind == "unknown_key":
        cfg["model"]["depth"] = 3
    elif kind == "unknown_arch":
        cfg["model"]["arch"] = "nope"
    elif kind == "out_of_range":
        cfg["model"]["width"] = -1.0
    return json.dumps(cfg)


# name: (persist.phase tag, status, config kind, checkpoint kind)
UPSTREAM = {
    "good": ("train", "FINISHED", "good", "good"),
    "forgetting_good": ("forgetting", "FINISHED", "good", "good"),
    "failed": ("train", "FAILED", "good", "good"),  # e.g. `train --epochs 0` before it was refused
    "killed": ("train", "KILLED", "good", "good"),
    "running": ("train", "RUNNING", "good", "good"),
    "no_phase": (None, "FINISHED", "good", "good"),
    "landscape_run": ("landscape", "FINISHED", "good", "good"),
    "cfg_list": ("train", "FINISHED", "list", "good"),
    "cfg_malformed": ("train", "FINISHED", "malformed", "good"),
    "cfg_wrong_type": ("train", "FINISHED", "wrong_type", "good"),
    "cfg_bool_for_int": ("train", "FINISHED", "bool_for_int", "good"),
    "cfg_section_list": ("train", "FINISHED", "section_list", "good"),
    "cfg_unknown_key": ("train", "FINISHED", "unknown_key", "good"),
    "cfg_unknown_arch": ("train", "FINISHED", "unknown_arch", "good"),
    "cfg_out_of_range": ("train", "FINISHED", "out_of_range", "good"),
    "cfg_none": ("train", "FINISHED", "none", "good"),
    "ckpt_none": ("train", "FINISHED", "good", "none"),
    "ckpt_corrupt": ("train", "FINISHED", "good", "corrupt"),
    "ckpt_no_schema": ("train", "FINISHED", "good", "no_schema"),
    "ckpt_missing_key": ("train", "FINISHED", "good", "missing_key"),
    "ckpt_wrong_shape": ("train", "FINISHED", "good", "wrong_shape"),
    "ckpt_no_shape": ("train", "FINISHED", "good", "no_shape"),
    "ckpt_bad_shape": ("train", "FINISHED", "good", "bad_shape"),
}
DAMAGED = [name for name in UPSTREAM if name not in ("good", "forgetting_good")]


@pytest.fixture(scope="module")
def store(tmp_path_factory, template_db):
    """A sqlite store (outside any test's working directory) with one run per entry of UPSTREAM."""
    from mlflow.tracking import MlflowClient

    root = tmp_path_factory.mktemp("bad-inputs-store")
    db = root / "mlflow.db"
    shutil.copy(template_db, db)
    uri = f"sqlite:///{db}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("upstream", artifact_location=str(root / "artifacts"))
    client.create_experiment("persist-smoke", artifact_location=str(root / "artifacts-smoke"))
    ids = {}
    for name, (phase, status, config, checkpoint) in UPSTREAM.items():
        run = client.create_run(exp, tags={"persist.phase": phase} if phase else {})
        run_id = run.info.run_id
        text = _config_text(config)
        if text is not None:
            client.log_text(run_id, text, "config/resolved.json")
        files = root / "files" / name
        files.mkdir(parents=True)
        ckpt = _checkpoint(files / ("final.pt" if phase == "forgetting" else "best.pt"), checkpoint)
        if ckpt is not None:
            client.log_artifact(run_id, str(ckpt), "checkpoints")
        if status != "RUNNING":
            client.set_terminated(run_id, status)
        ids[name] = run_id
    (root / "empty.csv").write_text("")
    (root / "garbage.csv").write_bytes(b"\xff\xfe\x00\x01" * 64)
    (root / "header_only.csv").write_text("arch,h1_total\n")
    (root / "a_file").write_text("x")
    (root / "scalar.yaml").write_text("42\n")
    (root / "bad.yaml").write_text("predictors: [h1\n")
    spec = (ROOT / "analysis/persist-published.yaml").read_text()
    (root / "perm.yaml").write_text(spec + "\nn_permutations: 1e8\n" if "n_permutations" not in spec
                                    else "".join(line if not line.startswith("n_permutations") else
                                                 "n_permutations: 1e8\n" for line in spec.splitlines(True)))
    (root / "sweep_scalar.yaml").write_text("3\n")
    return {"uri": uri, "db": db, "root": root, "ids": ids}


def _fill(args: list[str], store: dict) -> list[str]:
    out = []
    for arg in args:
        for name, run_id in store["ids"].items():
            arg = arg.replace("{" + name + "}", run_id)
        out.append(arg.replace("{root}", str(store["root"])).replace("{repo}", str(ROOT)))
    return out


T = ["--no-progress"]
CASES: list[tuple[str, list[str]]] = []


def case(name: str, *args: str) -> None:
    CASES.append((name, list(args)))


# --- top level and `models`
case("unknown-command", "nosuchcommand")
case("unknown-top-option", "--bogus", "train")
case("models-extra-arg", "models", "extra")
case("models-unknown-option", "models", "--width", "2")

# --- train: options, overrides, ranges, resources, stores
for name, args in {
    "epochs-0": ["--epochs", "0"], "epochs-negative": ["--epochs", "-1"], "epochs-text": ["--epochs", "x"],
    "epochs-float": ["--epochs", "1.5"], "width-nan": ["--width", "nan"], "width-inf": ["--width", "inf"],
    "width-1e6": ["--width", "1e6"], "width-0": ["--width", "0"], "width-negative": ["--width", "-1"],
    "width-text": ["--width", "abc"], "width-64.5": ["--width", "64.5"], "seed-negative": ["--seed", "-1"],
    "seed-text": ["--seed", "x"], "arch-unknown": ["--arch", "nope"], "arch-empty": ["--arch", ""],
    "dataset-unknown": ["--dataset", "mnist"], "dataset-empty": ["--dataset", ""],
    "preset-unknown": ["--preset", "huge"], "batch-size-0": ["--set", "train.batch_size=0"],
    "batch-size-negative": ["--set", "train.batch_size=-5"], "lr-text": ["--set", "train.lr=fast"],
    "lr-0": ["--set", "train.lr=0"], "lr-nan": ["--set", "train.lr=nan"], "lr-inf": ["--set", "train.lr=inf"],
    "key-unknown": ["--set", "train.nope=1"], "section-unknown": ["--set", "nope=1"],
    "key-is-section": ["--set", "train=1"], "no-equals": ["--set", "train.epochs"],
    "key-too-deep": ["--set", "train.epochs.x=1"], "warmup-negative": ["--set", "train.warmup_epochs=-3"],
    "val-fraction-7": ["--set", "data.val_fraction=7"], "val-fraction-0": ["--set", "data.val_fraction=0"],
    "download-maybe": ["--set", "data.download=maybe"], "seed-override-negative": ["--set", "seed=-2"],
    "experiment-override-empty": ["--set", "experiment="], "width-override-inf": ["--set", "model.width=inf"],
    "resolution-2": ["--set", "landscape.resolution=2"], "slices-0": ["--set", "landscape.slices=0"],
    "forgetting-steps-empty": ["--set", "forgetting.steps="], "forgetting-steps-negative": ["--set", "forgetting.steps=-1,5"],
    "epochs-override-float": ["--set", "train.epochs=1.5"], "experiment-empty": ["--experiment", ""],
    "experiment-blank": ["--experiment", "  "], "tracking-bogus": ["--tracking-uri", "bogus://x"],
    "tracking-missing-dir": ["--tracking-uri", "sqlite:////nonexistent/dir/mlflow.db"],
    "tracking-two-slashes": ["--tracking-uri", "sqlite://x.db"], "tracking-is-dir": ["--tracking-uri", "sqlite:///{root}"],
    "cifar-missing": ["--dataset", "cifar100", "--data-dir", "nowhere"], "unknown-option": ["--no-such-option"],
    "device-missing-value": ["--device"], "device-unknown": ["--device", "quantum"], "extra-argument": ["extra"], "seed-missing-value": ["--seed"],
}.items():
    case(f"train-{name}", "train", *args, *T)

# --- the downstream phases: their own options, and every damaged or wrong upstream run
DOWNSTREAM = {
    "landscape": {"resolution-200001": ["--resolution", "200001"], "resolution-1": ["--resolution", "1"],
                  "resolution-text": ["--resolution", "x"], "slices-0": ["--slices", "0"],
                  "slices-text": ["--slices", "abc"], "span-0": ["--span", "0"], "span-nan": ["--span", "nan"],
                  "subset-negative": ["--subset", "-1"], "batch-0": ["--set", "landscape.batch_size=0"]},
    "forgetting": {"lr-0": ["--lr", "0"], "lr-nan": ["--lr", "nan"], "lr-negative": ["--lr", "-1"],
                   "ewc-negative": ["--ewc-lambda", "-1"], "steps-empty": ["--set", "forgetting.steps="],
                   "batch-0": ["--set", "forgetting.batch_size=0"]},
    "np": {"checkpoint-traversal": ["--checkpoint", "../../../../x"], "checkpoint-absolute": ["--checkpoint", "/etc/passwd"],
           "checkpoint-nested": ["--checkpoint", "best/../../x"], "checkpoint-empty": ["--checkpoint", ""],
           "checkpoint-dots": ["--checkpoint", ".."], "checkpoint-absent": ["--checkpoint", "final"],
           "p-text": ["--set", "neural_persistence.p=x"]},
}
for command, specific in DOWNSTREAM.items():
    run_option = "--train-run-id"
    for name, args in specific.items():
        case(f"{command}-{name}", command, run_option, "{good}", *args, *T)
    common = {
        "seed-offered-nowhere": [run_option, "{good}", "--seed", "3"],
        "inherited-train": [run_option, "{good}", "--set", "train.epochs=3"],
        "inherited-seed": [run_option, "{good}", "--set", "seed=1"],
        "inherited-model": [run_option, "{good}", "--set", "model.arch=cnn"],
        "missing-run-id": [],
        "unknown-run": [run_option, "0" * 32],
        "empty-run": [run_option, ""],
        "traversal-run": [run_option, "../../x"],
        "no-store": [run_option, "{good}", "--tracking-uri", "sqlite:///{root}/absent.db"],
        "tracking-bogus": [run_option, "{good}", "--tracking-uri", "bogus://x"],
        "experiment-empty": [run_option, "{good}", "--experiment", ""],
        "preset-unknown": [run_option, "{good}", "--preset", "huge"],
        "device-unknown": [run_option, "{good}", "--device", "tpu9"],
        **{f"upstream-{d}": [run_option, "{" + d + "}"] for d in DAMAGED},
    }
    for name, args in common.items():
        case(f"{command}-{name}", command, *args, *T)
case("np-forgetting-run-best-checkpoint", "np", "--train-run-id", "{forgetting_good}", "--checkpoint", "best", *T)
case("landscape-forgetting-run", "landscape", "--train-run-id", "{forgetting_good}", *T)
case("forgetting-forgetting-run", "forgetting", "--train-run-id", "{forgetting_good}", *T)
case("np-legacy-run-id-traversal", "np", "--run-id", "{good}", "--checkpoint", "../x", *T)

# --- init-quality
for name, args in {
    "stage-9": ["--stage", "9"], "stage-text": ["--stage", "x"], "stage-empty": ["--stage", ""],
    "preset-unknown": ["--preset", "huge"], "key-unknown": ["--set", "nope=1"],
    "tracking-bogus": ["--tracking-uri", "bogus://x"], "experiment-empty": ["--experiment", ""],
    "quick-key-unknown": ["--quick", "--set", "nope=1"],
}.items():
    case(f"init-quality-{name}", "init-quality", *args, "--no-progress")

# --- analysis
PUBLISHED = ["--spec", "{repo}/analysis/persist-published.yaml"]
for name, args in {
    "experiment-typo": ["--experiment", "persist-smok"],
    "from-experiment-typo": ["--from-experiment", "persist-smok"],
    "spec-missing": ["--spec", "/nonexistent.yaml", "--experiment", "persist-smoke"],
    "spec-scalar": ["--spec", "{root}/scalar.yaml", "--table", "{repo}/tests/data/persist_published.csv"],
    "spec-bad-yaml": ["--spec", "{root}/bad.yaml", "--table", "{repo}/tests/data/persist_published.csv"],
    "permutations-1e8": ["--spec", "{root}/perm.yaml", "--table", "{repo}/tests/data/persist_published.csv"],
    "table-empty": [*PUBLISHED, "--table", "{root}/empty.csv"],
    "table-header-only": [*PUBLISHED, "--table", "{root}/header_only.csv"],
    "table-garbage": [*PUBLISHED, "--table", "{root}/garbage.csv"],
    "table-missing": [*PUBLISHED, "--table", "{root}/absent.csv"],
    "out-is-a-file": [*PUBLISHED, "--table", "{repo}/tests/data/persist_published.csv", "--out", "{root}/a_file"],
    "out-under-a-file": [*PUBLISHED, "--table", "{repo}/tests/data/persist_published.csv", "--out", "/dev/null/x"],
    "experiment-empty": ["--experiment", ""],
    "log-experiment-empty": [*PUBLISHED, "--table", "{repo}/tests/data/persist_published.csv", "--log-experiment", ""],
    "tracking-bogus": [*PUBLISHED, "--table", "{repo}/tests/data/persist_published.csv", "--tracking-uri", "bogus://x"],
    "no-store": ["--experiment", "persist-smoke", "--tracking-uri", "sqlite:///{root}/absent.db"],
}.items():
    case(f"analysis-{name}", "analysis", *args)

# --- pipeline: everything checked before the first member trains
for name, args in {
    "analysis-spec-missing": ["--set", "study.analysis_spec=/nonexistent.yaml"],
    "analysis-spec-permutations": ["--set", "study.analysis_spec={root}/perm.yaml"],
    "arch-unknown": ["--archs", "mlp,nope"], "arch-nameless": ["--archs", "@0.5"],
    "arch-width-text": ["--archs", "mlp@abc"], "arch-width-0": ["--archs", "mlp@0"],
    "seeds-text": ["--seeds", "x"], "seeds-negative": ["--seeds", "0,-1"], "seed-negative": ["--seed", "-1"],
    "resolution-200001": ["--set", "landscape.resolution=200001"], "no-members": ["--set", "study.archs="],
    "tracking-bogus": ["--tracking-uri", "bogus://x"], "epochs-0": ["--set", "train.epochs=0"],
    "fail-fast-value": ["--fail-fast", "yes"],
}.items():
    case(f"pipeline-{name}", "pipeline", *args, *T)

# --- sweep and sweep-worker (spec checks belong to the sweep; these are the shell's)
case("sweep-workers-0", "sweep", "{repo}/sweeps/smoke.yaml", "--workers", "0")
case("sweep-workers-text", "sweep", "{repo}/sweeps/smoke.yaml", "--workers", "x")
case("sweep-spec-missing", "sweep", "/nonexistent.yaml")
case("sweep-no-spec", "sweep")
case("sweep-worker-spec-missing", "sweep-worker", "/nonexistent.yaml")


def _store_counts(db: Path) -> tuple[int, int]:
    with sqlite3.connect(db) as con:
        return (con.execute("select count(*) from experiments").fetchone()[0],
                con.execute("select count(*) from runs").fetchone()[0])


def _tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.fixture
def isolated(store, tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["uri"])
    for var in ("PERSIST_WORKDIR", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "PERSIST_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    return cwd


def test_the_table_is_large_and_has_unique_names():
    names = [name for name, _ in CASES]
    assert len(names) == len(set(names))
    assert len(CASES) >= 150


@pytest.mark.parametrize("name, args", CASES, ids=[name for name, _ in CASES])
def test_bad_input_is_refused_cleanly(store, isolated, name, args):
    before = _store_counts(store["db"])
    result = CliRunner().invoke(cli, _fill(args, store))
    lines = result.stderr.splitlines()
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.exception)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    assert _tree(isolated) == []
    assert _store_counts(store["db"]) == before
    assert not (store["root"] / "absent.db").exists()


@pytest.mark.parametrize("upstream, expected", [
    ("failed", "is FAILED, not FINISHED"),
    ("cfg_list", "'top level' is list, not a mapping"),
    ("landscape_run", "is a landscape run; expected a finished train run"),
    ("ckpt_wrong_shape", "has shape"),
    ("ckpt_missing_key", "1 missing tensors"),
])
def test_upstream_refusals_say_why(store, isolated, upstream, expected):
    result = CliRunner().invoke(cli, ["forgetting", "--train-run-id", store["ids"][upstream], "--no-progress"])
    assert result.exit_code == 2 and expected in result.stderr, result.stderr


def test_traversal_is_refused_before_anything_is_read(store, isolated):
    result = CliRunner().invoke(cli, ["np", "--train-run-id", store["ids"]["good"], "--checkpoint", "../../../../x"])
    assert result.stderr.strip() == ("error: --checkpoint must be a plain name such as best or final, "
                                     "got '../../../../x'")


def test_debug_shows_the_traceback(store, isolated):
    result = CliRunner().invoke(cli, ["--debug", "train", "--epochs", "0"])
    assert result.exit_code == 2
    assert "Traceback" in result.stderr and result.stderr.splitlines()[-1].startswith("error: train.epochs")


def test_an_internal_failure_is_one_line_with_status_1(store, isolated, monkeypatch):
    from persist.phases import common

    def broken(cfg):
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(common, "check_member", broken)
    result = CliRunner().invoke(cli, ["train", "--no-progress"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [("error: internal error (RuntimeError): disk on fire second line; "
                                           "rerun with --debug for the traceback")]


def test_repeated_np_leaves_no_temporary_files(store, isolated, tmp_path, monkeypatch):
    import tempfile

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    for _ in range(2):
        result = CliRunner().invoke(cli, ["np", "--train-run-id", store["ids"]["good"], "--experiment", "np-tmp"])
        assert result.exit_code == 0, result.output
        assert _tree(scratch) == []
    from mlflow.tracking import MlflowClient

    exp = MlflowClient(tracking_uri=store["uri"]).get_experiment_by_name("np-tmp")
    runs = MlflowClient(tracking_uri=store["uri"]).search_runs([exp.experiment_id])
    assert [r.info.status for r in runs] == ["FINISHED", "FINISHED"]


def test_old_option_names_still_work(store, isolated):
    from persist.cli import OptionalInt

    assert OptionalInt().convert("", None, None) is None and OptionalInt().convert("4", None, None) == 4
    result = CliRunner().invoke(cli, ["np", "--run-id", store["ids"]["good"], "--checkpoint", "best",
                                      "--experiment", "np-legacy"])
    assert result.exit_code == 0, result.output
    helps = {name: CliRunner().invoke(cli, [name, "--help"]).output for name in ("np", "analysis", "init-quality")}
    assert "--run-id" not in helps["np"] and "--from-experiment" not in helps["analysis"]
    assert "--quick" not in helps["init-quality"] and "--preset [quick|full]" in helps["init-quality"]
    for name in ("landscape", "forgetting", "np"):
        assert "--seed" not in CliRunner().invoke(cli, [name, "--help"]).output


SUBPROCESS_CASES = [
    (["train", "--epochs", "0"], "error: train.epochs must be >= 1, got 0"),
    (["forgetting", "--train-run-id", "{failed}"], "error: run '"),
    (["analysis", "--experiment", "persist-smok"], "error: experiment 'persist-smok' not found"),
]


@pytest.mark.integration
def test_real_processes_print_one_line(store, tmp_path):
    """As a user sees it: no library log lines, warnings or `tracking:` line around the error."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": store["uri"], "PYTHONPATH": str(ROOT)}
    for var in ("PERSIST_WORKDIR", "MLFLOW_RUN_ID", "PERSIST_DEBUG"):
        env.pop(var, None)
    before = _store_counts(store["db"])
    procs = [subprocess.Popen([sys.executable, "-m", "persist.cli", *_fill(args, store)], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for args, _ in SUBPROCESS_CASES]
    for proc, (_, expected) in zip(procs, SUBPROCESS_CASES, strict=True):
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 2 and len(err.splitlines()) == 1 and err.startswith(expected), err
    assert _tree(tmp_path) == [] and _store_counts(store["db"]) == before
