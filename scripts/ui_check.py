#!/usr/bin/env python
"""Real-browser check of the MLflow UI over a finished persist store.

Starts ``mlflow ui`` on 127.0.0.1 (a free port, one worker), opens the experiment in headless Chromium
(the Debian ``chromium`` package driven by Playwright, explicit executable path, nothing downloaded) and
asserts what a researcher needs to ask the study's question in the UI:

1. the experiment opens in model-training mode with persist's description;
2. the compare view of the architecture runs shows topology (``study/h1_total``) and retention
   (``study/ret_*``) side by side, with a value for every architecture run;
3. a screenshot of that view (parallel coordinates over the study row) is written for docs/.

Without ``--store`` it first builds a small store by running a tiny ``persist pipeline`` with two cheap
members. When Chromium or Playwright is missing it prints ``ui_check: skipped: <reason>`` and exits 0
(``--require`` makes that exit 2 instead). Usage::

    python scripts/ui_check.py [--store DIR_WITH_mlflow.db] [--experiment NAME] [--screenshot PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("PERSIST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
TINY = ("train.epochs=3 landscape.resolution=5 landscape.slices=1 landscape.subset=32 "
        "curvature.measures=hessian_trace,top_eigenvalues curvature.subset=16 curvature.probes=2 "
        "forgetting.steps=0,5,10")
TOPOLOGY, RETENTION = "study/h1_total", "study/ret_"


def missing_prerequisite() -> str | None:
    """Why the check cannot run here, or None."""
    if not Path(CHROMIUM).is_file():
        return f"no Chromium at {CHROMIUM} (install the Debian package: apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed (pip install playwright; no browser download)"
    return None


def build_store(directory: Path, experiment: str) -> None:
    """A finished study with two cheap members (about a minute on two cores)."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{directory / 'mlflow.db'}",
           "PERSIST_WORKDIR": str(directory / ".persist"), "PYTHONPATH": str(ROOT)}
    for name in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        env.pop(name, None)
    args = [sys.executable, "-m", "persist.cli", "pipeline", "--archs", "mlp@0.25,cnn@0.25", "--set", TINY,
            "--experiment", experiment, "--no-progress"]
    proc = subprocess.run(args, cwd=directory, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise SystemExit(f"ui_check: the tiny pipeline failed:\n{proc.stderr[-3000:]}")


def architecture_runs(uri: str, experiment: str) -> tuple[str, list[str]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise SystemExit(f"ui_check: experiment '{experiment}' not found in {uri}")
    runs = client.search_runs([exp.experiment_id], "tags.`persist.phase` = 'architecture' and "
                              "attributes.status = 'FINISHED'", max_results=50)
    if not runs:
        raise SystemExit(f"ui_check: experiment '{experiment}' has no finished architecture runs")
    return exp.experiment_id, [r.info.run_id for r in runs]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_ui(uri: str, port: int, log: Path) -> subprocess.Popen:
    args = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1",
            "--port", str(port), "--workers", "1"]
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    proc = subprocess.Popen(args, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"ui_check: mlflow ui exited early:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(1)
    stop(proc)
    raise SystemExit("ui_check: mlflow ui did not become healthy within 180 s")


def stop(proc: subprocess.Popen) -> None:
    """Stop the UI server and the uvicorn workers it started (its own process group only)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# The compare view's metrics table is a virtualized grid: label cells (a "Plot chart" link per metric) and
# value cells are absolutely positioned divs; a metric's values are the cells at its label's `top`.
METRIC_NAMES_JS = """() => [...document.querySelectorAll('a[title="Plot chart"]')].map(a => a.textContent.trim())"""
METRIC_ROW_JS = """(name) => {
  const link = [...document.querySelectorAll('a[title="Plot chart"]')].find(a => a.textContent.trim() === name);
  if (!link) return null;
  const top = link.parentElement.style.top;
  for (let up = link.parentElement.parentElement; up; up = up.parentElement) {
    const cells = [...up.querySelectorAll('div[style]')].filter(d => d.style.position === 'absolute' &&
      d.style.top === top && !d.querySelector('a[title="Plot chart"]') && !d.contains(link) && d.querySelector('span'));
    if (cells.length) return cells.map(d => d.textContent.trim());
  }
  return [];
}"""


def metric_names(page) -> list[str]:
    return page.evaluate(METRIC_NAMES_JS)


def metric_row(page, name: str) -> list[str]:
    """The values of metric ``name`` in the compare view, one per compared run (left to right)."""
    values = page.evaluate(METRIC_ROW_JS, name)
    if values is None:
        raise AssertionError(f"metric {name} is not in the compare view's metrics table")
    return values


def choose_metrics(page, names: list[str]) -> None:
    """Best effort: plot ``names`` in parallel coordinates instead of the alphabetically first metric."""
    try:
        select = page.locator(".du-bois-light-select").nth(1)  # Parameters, then Metrics
        for remove in select.locator(".du-bois-light-select-selection-item-remove").all():
            remove.click(timeout=2000)
        for name in names:
            select.click(timeout=3000)
            page.keyboard.type(name)
            page.locator(f".du-bois-light-select-item-option[title='{name}']").first.click(timeout=5000)
        page.keyboard.press("Escape")
        page.get_by_text("Parallel Coordinates Plot").first.click(timeout=2000)  # close the dropdown
    except Exception as exc:  # the screenshot is documentation; the assertions above are the check
        print(f"ui_check: note: could not choose parallel-coordinate metrics ({type(exc).__name__})")


def check(base: str, experiment_id: str, run_ids: list[str], screenshot: Path | None) -> dict:
    from playwright.sync_api import sync_playwright

    result: dict = {"architecture_runs": len(run_ids)}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 2400})  # every metric row rendered
            page.goto(f"{base}/#/experiments/{experiment_id}/runs?workflowType=machine_learning")
            page.get_by_text("persist study:", exact=False).first.wait_for(timeout=90_000)
            result["description_shown"] = True
            runs = urllib.parse.quote(json.dumps(run_ids))
            exps = urllib.parse.quote(json.dumps([experiment_id]))
            page.goto(f"{base}/#/compare-runs?runs={runs}&experiments={exps}&workflowType=machine_learning")
            page.get_by_text("Comparing", exact=False).first.wait_for(timeout=90_000)
            page.locator('a[title="Plot chart"]').first.wait_for(timeout=90_000)
            names = metric_names(page)
            topology = metric_row(page, TOPOLOGY)
            retention_names = sorted(n for n in names if n.startswith(RETENTION))
            if not retention_names:
                raise AssertionError(f"no {RETENTION}* metric in the compare view")
            retention = metric_row(page, retention_names[0])
            result.update(topology_metric=TOPOLOGY, topology_values=topology, retention_metric=retention_names[0],
                          retention_values=retention)
            for name, values in ((TOPOLOGY, topology), (retention_names[0], retention)):
                numbers = [float(v) for v in values]
                if len(numbers) != len(run_ids):
                    raise AssertionError(f"{name}: {len(numbers)} values for {len(run_ids)} architecture runs")
            if screenshot is not None:
                try:
                    page.get_by_role("button", name="Close").first.click(timeout=3000)  # the assistant panel
                except Exception:
                    pass
                choose_metrics(page, [TOPOLOGY, retention_names[0], "study/params"])
                page.set_viewport_size({"width": 1600, "height": 1300})
                page.wait_for_timeout(1500)
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot), full_page=False)
                result["screenshot"] = str(screenshot)
        finally:
            browser.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, help="directory holding mlflow.db (default: build a tiny study)")
    parser.add_argument("--experiment", default="ui-check", help="experiment to open (default: ui-check)")
    parser.add_argument("--screenshot", type=Path, default=ROOT / "docs" / "img" / "mlflow-compare-study-row.png")
    parser.add_argument("--require", action="store_true", help="exit 2 instead of skipping when Chromium is absent")
    args = parser.parse_args()
    reason = missing_prerequisite()
    if reason:
        print(f"ui_check: skipped: {reason}")
        return 2 if args.require else 0
    scratch = Path(tempfile.mkdtemp(prefix="persist-ui-check-"))
    try:
        store = args.store
        if store is None:
            store = scratch
            print("ui_check: building a tiny study store (two members)...", flush=True)
            build_store(store, args.experiment)
        uri = f"sqlite:///{store.resolve() / 'mlflow.db'}"
        experiment_id, run_ids = architecture_runs(uri, args.experiment)
        port = free_port()
        server = start_ui(uri, port, scratch / "mlflow-ui.log")
        try:
            result = check(f"http://127.0.0.1:{port}", experiment_id, run_ids, args.screenshot)
        finally:
            stop(server)
    except Exception as exc:  # an assertion, or Playwright timing out on a page that never showed up
        print(f"ui_check: FAILED: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        return 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print("ui_check: passed " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
