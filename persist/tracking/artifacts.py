"""Artifacts: arrays, JSON and figures in, upstream files out (by run id, never by local path)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import numpy as np

from persist.errors import UpstreamRunNotFound


def log_json(data: Any, artifact_file: str) -> None:
    mlflow.log_dict(data, artifact_file)


def log_arrays(artifact_file: str, **arrays: np.ndarray) -> None:
    """Log ``.npz`` (several arrays) or ``.npy`` (exactly one) under ``artifact_file``."""
    path = Path(artifact_file)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / path.name
        if path.suffix == ".npy":
            (array,) = arrays.values()
            np.save(local, array)
        else:
            np.savez(local, **arrays)
        mlflow.log_artifact(str(local), artifact_path=str(path.parent) if str(path.parent) != "." else None)


def log_directory(local_dir: str | Path, artifact_path: str) -> None:
    mlflow.log_artifacts(str(local_dir), artifact_path=artifact_path)


def log_checkpoint(path: str | Path) -> None:
    mlflow.log_artifact(str(path), artifact_path="checkpoints")


def log_figure(fig: Any, artifact_file: str) -> None:
    import matplotlib.pyplot as plt

    mlflow.log_figure(fig, artifact_file)
    plt.close(fig)


def log_html(page: Any, artifact_file: str) -> None:
    """An interactive figure as an HTML artifact (the UI previews ``.html`` files): a page already
    rendered (str) or a plotly figure, written with plotly.js embedded so it opens offline too."""
    html = page if isinstance(page, str) else page.to_html(include_plotlyjs=True, full_html=True)
    mlflow.log_text(html, artifact_file)


def download_artifact(run_id: str, artifact_path: str, dst: str | Path | None = None) -> Path:
    """Fetch one artifact of a run to a local path; missing artifacts raise one-line UpstreamRunNotFound."""
    try:
        local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact_path,
                                                    dst_path=str(dst) if dst else None)
    except (mlflow.exceptions.MlflowException, OSError):
        raise UpstreamRunNotFound(f"run '{run_id}' has no artifact '{artifact_path}'") from None
    return Path(local)


def read_json(run_id: str, artifact_path: str) -> Any:
    return json.loads(download_artifact(run_id, artifact_path).read_text())
