"""Shared fixtures: a per-test MLflow store copied from a pre-migrated template (milliseconds, not seconds)."""

from __future__ import annotations

import os
import shutil

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

try:  # two xdist workers on two cores: one thread each avoids oversubscription
    import torch

    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)
except ImportError:  # the topology and stats tests need no torch
    pass


@pytest.fixture(scope="session")
def template_db(tmp_path_factory) -> str:
    import mlflow
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "template.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()  # runs the migrations once
    mlflow.set_tracking_uri(None)
    return str(path)


@pytest.fixture
def tracking(tmp_path, template_db, monkeypatch) -> str:
    """A fresh sqlite tracking store in ``tmp_path``, which is also the working directory."""
    import mlflow

    db = tmp_path / "mlflow.db"
    shutil.copy(template_db, db)
    uri = f"sqlite:///{db}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("PERSIST_WORKDIR", str(tmp_path / ".persist"))
    monkeypatch.setenv("PERSIST_LOG_MODEL", "0")  # ~2 s per trained model; tests/test_tracking_mlflow.py turns it on
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    # mlflow.set_experiment in an earlier test leaves its id as the process's active experiment, which
    # a fresh store does not have ("No Experiment with id=1 exists" in whichever test runs next)
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)
    mlflow.set_tracking_uri(uri)
    yield uri
    while mlflow.active_run():
        mlflow.end_run()
