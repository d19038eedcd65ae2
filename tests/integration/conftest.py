"""Helpers for tests that start real processes: a free port, a live `mlflow server`, the persist CLI."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def persist(*args: str, env: dict | None = None, timeout: int = 400) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("MLFLOW_RUN_ID", None)
    return subprocess.run([sys.executable, "-m", "persist.cli", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout)


@pytest.fixture
def mlflow_server(tmp_path, template_db):
    """A real tracking server on 127.0.0.1 with a sqlite backend and proxied artifacts; stopped afterwards."""
    import shutil

    db = tmp_path / "server.db"
    shutil.copy(template_db, db)
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{db}", "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1", "--artifacts-destination", str(tmp_path / "artifacts")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/health", timeout=2).status == 200:
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("mlflow server did not become healthy within 90 s")
    yield url
    os.killpg(proc.pid, 15)
    proc.wait(timeout=30)
