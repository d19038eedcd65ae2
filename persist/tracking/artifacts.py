"""Artifacts: arrays, JSON and figures in, upstream files out (by run id, never by local path)."""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path
from typing import Any, Iterator

import mlflow
import numpy as np

from persist.artifacts import CHECKPOINT_DIR
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
            np.savez(local, **arrays)  # type: ignore[arg-type]  # numpy's stub lets **kwds fill allow_pickle
        mlflow.log_artifact(str(local), artifact_path=str(path.parent) if str(path.parent) != "." else None)


def log_directory(local_dir: str | Path, artifact_path: str) -> None:
    mlflow.log_artifacts(str(local_dir), artifact_path=artifact_path)


def log_checkpoint(path: str | Path) -> None:
    mlflow.log_artifact(str(path), artifact_path=CHECKPOINT_DIR)


def log_figure(fig: Any, artifact_file: str) -> None:
    import matplotlib.pyplot as plt

    mlflow.log_figure(fig, artifact_file)
    plt.close(fig)


def log_html(page: Any, artifact_file: str) -> None:
    """An interactive figure as an HTML artifact (the UI previews ``.html`` files): a page already
    rendered (str) or a plotly figure, written with plotly.js embedded so it opens offline too."""
    html = page if isinstance(page, str) else page.to_html(include_plotlyjs=True, full_html=True)
    mlflow.log_text(html, artifact_file)


@contextlib.contextmanager
def downloaded(run_id: str, artifact_path: str) -> Iterator[Path]:
    """One artifact of a run as a local file that exists only inside the ``with`` block.

    MLflow downloads into a fresh temporary directory that it never removes (a checkpoint-sized copy
    per phase at CIFAR scale), so we download into our own and remove it afterwards. Missing artifacts
    raise a one-line UpstreamRunNotFound.
    """
    with tempfile.TemporaryDirectory(prefix="persist-artifact-") as tmp:
        yield download_artifact(run_id, artifact_path, tmp)


def download_artifact(run_id: str, artifact_path: str, dst: str | Path) -> Path:
    """Fetch one artifact of a run into the directory ``dst`` (which the caller owns and removes)."""
    try:
        return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact_path, dst_path=str(dst)))
    except (mlflow.exceptions.MlflowException, OSError):
        raise UpstreamRunNotFound(f"run '{run_id}' has no artifact '{artifact_path}'") from None


def read_json(run_id: str, artifact_path: str) -> Any:
    """A JSON artifact of a run; unreadable or malformed JSON is a one-line UpstreamRunNotFound."""
    with downloaded(run_id, artifact_path) as path:
        try:
            return json.loads(path.read_text())
        except (ValueError, OSError) as exc:
            raise UpstreamRunNotFound(f"artifact '{artifact_path}' of run '{run_id}' is not valid JSON "
                                      f"({type(exc).__name__})") from None
