"""A study survives one failing member: its failure is recorded, the others finish, the analysis runs on them."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from persist.cli import cli

TINY = ("train.epochs=2 landscape.resolution=5 landscape.slices=1 landscape.subset=32 curvature.measures=hessian_trace "
        "curvature.subset=16 curvature.probes=2 forgetting.steps=0,5")


@pytest.fixture
def broken_arch():
    """An architecture that builds (so the up-front checks pass) but fails in its first forward pass."""
    from dataclasses import replace

    from persist.architectures import CATALOG
    from persist.models.registry import _MODELS, register_model

    @register_model("broken_mlp", info=replace(CATALOG["mlp"], studies=()))
    def broken_mlp(**kwargs):
        model = _MODELS.get("mlp")(**kwargs)

        def forward(x):
            raise RuntimeError("broken on purpose")

        model.forward = forward
        return model

    yield "broken_mlp"
    del _MODELS._items["broken_mlp"]
    del CATALOG["broken_mlp"]


def _study(args):
    return CliRunner().invoke(cli, ["pipeline", "--archs", "mlp@0.25,broken_mlp@0.25,cnn@0.25", "--set", TINY,
                                    "--experiment", "members", "--no-progress", *args])


@pytest.mark.integration
def test_one_failing_member_is_recorded_and_the_others_finish(tracking, broken_arch):
    from mlflow.tracking import MlflowClient

    result = _study([])
    assert result.exit_code == 0, result.output
    warning = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warning == [("warning: 1 of 3 study members failed and are missing from the analysis: broken_mlp@0.25 "
                        "seed 0: RuntimeError: broken on purpose")]
    client = MlflowClient()
    exp = client.get_experiment_by_name("members")
    runs = client.search_runs([exp.experiment_id], max_results=200)
    arch = {r.data.tags["persist.arch"]: r for r in runs if r.data.tags["persist.phase"] == "architecture"}
    assert {a: r.info.status for a, r in arch.items()} == {"mlp": "FINISHED", "broken_mlp": "FAILED", "cnn": "FINISHED"}
    assert arch["broken_mlp"].data.tags["persist.error"] == "RuntimeError: broken on purpose"
    study = next(r for r in runs if r.data.tags["persist.phase"] == "pipeline")
    assert study.info.status == "FINISHED"
    missing = json.loads(Path(client.download_artifacts(study.info.run_id, "study/missing.json")).read_text())
    assert missing == [{"arch": "broken_mlp", "width": 0.25, "seed": 0, "reason": "RuntimeError: broken on purpose"}]
    analysis = next(r for r in runs if r.data.tags["persist.phase"] == "analysis")
    assert analysis.data.metrics["analysis/n_rows"] == 2  # the two members that finished

    # --fail-fast keeps the old behaviour: the first failure stops the study (finished members are reused)
    result = _study(["--fail-fast"])
    assert result.exit_code == 1 and result.stderr.splitlines() == [
        "error: internal error (RuntimeError): broken on purpose; rerun with --debug for the traceback"]
