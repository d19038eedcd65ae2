"""Facts kept once: the phase table, the study's architecture list, config-driven library defaults."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest
import torch
import yaml

from persist import cli, pipeline, sweep
from persist.architectures import study_architectures
from persist.config import CurvatureConfig, RunConfig, config_hash, smoke
from persist.phases import analysis, study_row
from persist.phases.forgetting import forgetting_hash
from persist.phases.landscape import landscape_hash
from persist.phases.table import PHASE_TABLE, PIPELINE_PHASES
from persist.phases.train import train_hash

ROOT = Path(__file__).resolve().parents[1]


def test_phase_table_names_real_sections_and_phases():
    section_names = {f.name for f in fields(RunConfig)}
    for name, phase in PHASE_TABLE.items():
        assert phase.name == name
        assert set(phase.sections) <= section_names, name
        assert set(phase.upstream) <= set(PHASE_TABLE), name
        assert all(p.endswith("/") for p in phase.prefixes), name
    prefixes = [p for phase in PHASE_TABLE.values() for p in phase.prefixes]
    assert len(prefixes) == len(set(prefixes))  # a metric belongs to one phase
    assert PIPELINE_PHASES == ("train", "landscape", "forgetting")


def test_every_reader_takes_the_table():
    assert pipeline.PHASES == study_row.PHASES == sweep.PROGRESS_PHASES == PIPELINE_PHASES
    assert set(analysis.PHASE_PREFIXES) == set(PIPELINE_PHASES)
    assert cli.INHERITED == ("data", "model", "train", "seed")
    assert sweep.PHASE_OF_METRIC == {"model": "train", "train": "train", "topology": "landscape",
                                     "curvature": "landscape", "landscape": "landscape", "forgetting": "forgetting"}


def test_run_hashes_are_those_of_the_sections_they_always_used():
    """Reading the sections from the table must not invalidate runs already in a tracking store."""
    cfg = smoke()
    assert train_hash(cfg) == config_hash(cfg, ("data", "model", "train", "seed"))
    assert landscape_hash(cfg, "abcdef0123") == config_hash(cfg, ("landscape", "topology", "curvature")) + "-abcdef01"
    assert forgetting_hash(cfg, "abcdef0123") == config_hash(cfg, ("data", "forgetting", "seed")) + "-abcdef01"


def test_cifar100_sweep_lists_the_registry_study():
    spec = yaml.safe_load((ROOT / "sweeps" / "persist-cifar100.yaml").read_text())
    assert tuple(spec["grid"]["model.arch"]) == study_architectures("cifar100")
    assert len(study_architectures("cifar100")) == 19


def test_measure_curvature_reads_its_section():
    from persist.curvature import hessian_trace, measure_curvature

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3)).double()
    x, y = torch.randn(20, 3, dtype=torch.float64), torch.randint(0, 3, (20,))
    section = CurvatureConfig(measures=("hessian_trace",), subset=12, batch_size=5, probes=3)
    values, failures = measure_curvature(model, x, y, section, seed=2)
    direct = hessian_trace(model, x[:12], y[:12], batch_size=5, trace_probes=3, seed=2)
    assert failures == {} and values == direct
    # a field-named keyword overrides the section, a measure option overrides the field it feeds
    assert measure_curvature(model, x, y, section, seed=2, subset=20)[0] == hessian_trace(
        model, x, y, batch_size=5, trace_probes=3, seed=2)
    assert measure_curvature(model, x, y, section, seed=2, trace_probes=5)[0] == hessian_trace(
        model, x[:12], y[:12], batch_size=5, trace_probes=5, seed=2)
    with pytest.raises(Exception, match="curvature.probes must be >= 1"):
        measure_curvature(model, x, y, section, probes=0)
