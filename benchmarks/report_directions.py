"""What each direction family shows on the smoke models: bars above the noise floor per family.

    python benchmarks/report_directions.py [--archs mlp@0.5,cnn@0.25] [--store /tmp/directions]

For each architecture: three smoke trainings (seeds 0, 1, 2; parameter snapshots kept), then through the
`persist landscape` command on seed 0: random (3 slices, 2-D), hessian (2-D, 2-D with the most negative
eigenvector, 3-D), trajectory (2-D PCA of the snapshots) and modes (the plane through the three seeds).
Curvature baselines are off (not what is compared). Prints a Markdown table of finite bars above and
below the floor per homology dimension (means over slices for random), the floor and the grid's
throughput relative to the forward-only limit.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from click.testing import CliRunner

FAMILIES = {
    "random": ["--directions", "random"],
    "hessian": ["--directions", "hessian"],
    "hessian+neg": ["--directions", "hessian", "--set", "landscape.hessian_negative=true"],
    "hessian 3-D": ["--directions", "hessian", "--dims", "3"],
    "hessian span 0.1": ["--directions", "hessian", "--span", "0.1"],
    "hessian 3-D span 0.1": ["--directions", "hessian", "--dims", "3", "--span", "0.1"],
    "trajectory": ["--directions", "trajectory"],
    "modes": ["--directions", "modes"],
}


def _run(cli, args: list[str]) -> str:
    result = CliRunner().invoke(cli, args)
    if result.exit_code != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{result.output[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])["run_id"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default="mlp@0.5,cnn@0.25")
    parser.add_argument("--store", default="/tmp/persist-directions")
    parser.add_argument("--families", default=",".join(FAMILIES), help="comma-separated subset of the rows")
    args = parser.parse_args()
    store = Path(args.store)
    store.mkdir(parents=True, exist_ok=True)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store / 'mlflow.db'}"
    os.environ["PERSIST_WORKDIR"] = str(store / ".persist")
    from mlflow.tracking import MlflowClient

    from persist.cli import cli

    client = MlflowClient()
    common = ["--no-progress", "--set", "curvature.enabled=false"]
    os.chdir(store)  # artifacts (./mlruns) go next to the store
    print("| model | family | dims | slices | H0 above / below floor | H1 above / below | H2 above / below "
          "| longest finite H0, H1 bar | floor | loss range | limit ratio (wall, CPU) | seconds |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for spec in args.archs.split(","):
        arch, _, width = spec.partition("@")
        trains = [_run(cli, ["train", "--arch", arch, "--width", width or "1", "--seed", str(s), "--no-progress",
                             "--set", "train.snapshots=8"]) for s in (0, 1, 2)]
        for family, extra in FAMILIES.items():
            if family not in args.families.split(","):
                continue
            extra = extra + (["--run-ids", ",".join(trains)] if family == "modes" else [])
            began = time.perf_counter()
            run_id = _run(cli, ["landscape", "--train-run-id", trains[0], *extra, *common])
            seconds = time.perf_counter() - began
            children = client.search_runs([client.get_run(run_id).info.experiment_id],
                                          f"tags.mlflow.parentRunId = '{run_id}'")
            m = [c.data.metrics for c in children]

            def mean(key: str, rows: list[dict[str, float]] = m) -> float:
                values = [x[key] for x in rows if key in x]
                return sum(values) / len(values) if values else float("nan")

            dims = 3 if "3-D" in family else 2
            cells = [f"{mean(f'topology/h{k}_count_above_eps'):.1f} / {mean(f'topology/h{k}_count_below_eps'):.1f}"
                     if k < dims else "–" for k in range(3)]
            print(f"| {spec} | {family} | {dims} | {len(m)} | {' | '.join(cells)} | "
                  f"{mean('topology/h0_max_lifetime'):.3g}, {mean('topology/h1_max_lifetime'):.3g} | "
                  f"{mean('topology/noise_floor'):.3g} | {mean('topology/grid_min'):.3g} .. "
                  f"{mean('topology/grid_max'):.3g} | {mean('landscape/limit_ratio'):.2f}, "
                  f"{mean('landscape/limit_ratio_cpu'):.2f} | {seconds:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
