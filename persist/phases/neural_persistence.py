"""Neural-persistence phase: per-layer NP of a logged checkpoint, with weight-statistics baselines."""

from __future__ import annotations

from persist.artifacts import NEURAL_PERSISTENCE_VALUES
from persist.config import RunConfig
from persist.devices import resolve_device
from persist.neural_persistence import conv_input_sizes, neural_persistence
from persist.phases.common import load_trained_model, run_tags, task_of
from persist.phases.table import PHASE_TABLE
from persist.plots.neural_persistence import plot_np_layers
from persist.tracking import log_figure, log_json, log_metrics, phase_run


def run_neural_persistence(cfg: RunConfig, run_id: str, checkpoint: str = "best") -> tuple[str, dict[str, float]]:
    """NP of the model in ``checkpoints/<checkpoint>.pt`` of ``run_id``; returns the new run id and values."""
    device = resolve_device(cfg.device)
    model, train_cfg = load_trained_model(run_id, device, checkpoint, PHASE_TABLE["neural_persistence"].upstream)
    task = task_of(train_cfg, "A", device)
    sizes = conv_input_sizes(model, task.x_val[:1])  # exact unrolled convolutions at the data's feature-map sizes
    values = neural_persistence(model, p=cfg.neural_persistence.p, per_head=cfg.neural_persistence.per_head,
                                conv_input_sizes=sizes)
    tags = run_tags(train_cfg, **{"persist.upstream_run_id": run_id, "persist.checkpoint": checkpoint})
    with phase_run("neural_persistence", cfg, tags, run_name=f"np-{train_cfg.model.arch}", resume=False) as run:
        log_metrics(values)
        log_json(values, NEURAL_PERSISTENCE_VALUES)
        log_figure(plot_np_layers(values, f"{train_cfg.model.arch}: neural persistence per layer"),
                   "figures/neural_persistence.png")
        return run.info.run_id, values
