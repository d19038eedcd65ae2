"""The MLflow UI in a real (headless Chromium) browser shows topology and retention side by side.

Runs scripts/ui_check.py, which builds a tiny two-member study, starts `mlflow ui` on 127.0.0.1 and
drives the Debian `chromium` package through Playwright (nothing is downloaded). Skipped where Chromium
or the playwright package is absent.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "ui_check.py"


def _missing() -> str | None:
    spec = importlib.util.spec_from_file_location("ui_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.missing_prerequisite()


@pytest.mark.integration
@pytest.mark.slow
def test_architecture_runs_show_topology_and_retention_side_by_side_in_the_browser(tmp_path):
    reason = _missing()
    if reason:
        pytest.skip(reason)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PERSIST_LOG_MODEL": "0"}
    for name in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_TRACKING_URI"):
        env.pop(name, None)
    shot = tmp_path / "compare.png"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--require", "--screenshot", str(shot)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("ui_check: passed "))
    result = json.loads(line.removeprefix("ui_check: passed "))
    assert result["architecture_runs"] == 2 and result["description_shown"]
    assert result["topology_metric"] == "study/h1_total" and result["retention_metric"].startswith("study/ret_")
    assert len(result["topology_values"]) == len(result["retention_values"]) == 2
    assert all(0.0 <= float(v) <= 1.0 for v in result["retention_values"])
    assert shot.stat().st_size > 10_000
