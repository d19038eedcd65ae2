"""MLflow-native records: datasets (``log_input``), logged models, tables, metrics on another run.

These are what the MLflow UI shows in its Datasets column, Models tab, table viewer and charts; the
resumable checkpoints and JSON/NPZ artifacts stay as they are (they are what persist itself reads).
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import mlflow
import numpy as np
from mlflow.data.numpy_dataset import from_numpy
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from persist.tracking.runs import diag_name, metric_name

# persist is installed wherever its models are loaded; naming it skips MLflow's slow requirement inference
MODEL_REQUIREMENTS = ["torch", "persist"]


def log_dataset(features: np.ndarray, targets: np.ndarray, name: str, digest: str, context: str,
                tags: dict[str, str] | None = None, source: str | None = None) -> None:
    """Record a dataset the active run used: name, our own content digest, split (``context``), classes.

    The digest is the one persist already computes (sha256 of the tensors), so the UI's dataset digest
    matches ``landscape/meta.json``; the data themselves are not copied into the store.
    """
    # source None means the code that ran; MLflow's annotation omits None although it is the default
    dataset = from_numpy(np.asarray(features), targets=np.asarray(targets), name=name,
                         digest=digest[:36], source=source)  # type: ignore[arg-type]
    mlflow.log_input(dataset, context=context, tags=tags)


def log_torch_model(model: Any, input_example: np.ndarray, name: str = "model",
                    metrics: dict[str, float] | None = None, params: dict[str, str] | None = None) -> str:
    """Log ``model`` as an MLflow model with a signature and an input example; returns its ``models:/`` URI.

    The safe ``pt2`` format (torch.export) is tried first; a model that cannot be exported is pickled
    instead (its class must then be importable where it is loaded). ``metrics`` are linked to the model,
    so the Models tab shows them. The model is not a run artifact: find it with ``search_logged_models``.
    """
    import torch
    from mlflow.models import infer_signature

    model = model.eval()
    with torch.no_grad():
        output = model(torch.as_tensor(input_example)).cpu().numpy()
    signature = infer_signature(input_example, output)
    options = dict(name=name, signature=signature, input_example=input_example, pip_requirements=MODEL_REQUIREMENTS,
                   params=params)
    quiet = logging.getLogger("mlflow")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the pickle fallback's security warning and export chatter
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                info = mlflow.pytorch.log_model(model, serialization_format="pt2", **options)
            except Exception:  # torch.export cannot trace every model (data-dependent control flow)
                info = mlflow.pytorch.log_model(model, serialization_format="pickle", **options)
    finally:
        quiet.setLevel(level)
    if metrics:
        clean = {diag_name(metric_name(k)): float(v) for k, v in metrics.items()}
        mlflow.log_metrics(clean, model_id=info.model_id)
    return info.model_uri


def log_table(data: Any, artifact_file: str, run_id: str | None = None) -> None:
    """A pandas DataFrame as an MLflow table (the UI renders and compares it across runs)."""
    mlflow.log_table(data=data, artifact_file=artifact_file, run_id=run_id)


def log_metrics_to(run_id: str, metrics: dict[str, float]) -> None:
    """Batch-log scalars on a run that need not be active (e.g. a finished architecture run)."""
    import time

    now = int(time.time() * 1000)
    batch = [Metric(metric_name(k), float(v), now, 0) for k, v in metrics.items()]
    if batch:
        MlflowClient().log_batch(run_id, metrics=batch)


def run_metrics(run_id: str) -> dict[str, float]:
    """The latest value of every metric of a run."""
    return dict(MlflowClient().get_run(run_id).data.metrics)


def set_run_tags(run_id: str, tags: dict[str, str]) -> None:
    from mlflow.entities import RunTag

    MlflowClient().log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])


def child_run(parent_run_id: str, experiment_id: str, name: str, tags: dict[str, str]) -> str:
    """A FINISHED child run of ``parent_run_id`` with these tags, reused if the parent already has one
    with the same ``persist.phase`` and ``persist.member`` (a resumed study logs into it again)."""
    client = MlflowClient()
    clauses = [f"tags.`mlflow.parentRunId` = '{parent_run_id}'"]
    clauses += [f"tags.`{k}` = '{tags[k]}'" for k in ("persist.phase", "persist.member") if k in tags]
    found = client.search_runs([experiment_id], " and ".join(clauses), max_results=1)
    if found:
        return found[0].info.run_id
    run = client.create_run(experiment_id, tags={**tags, "mlflow.parentRunId": parent_run_id}, run_name=name)
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id
