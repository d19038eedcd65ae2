"""Two gloo CPU processes shard a grid and get exactly the grid one process gets."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from persist.errors import ConfigError
from persist.landscape import evaluate_grid, init_distributed_from_env, random_directions
from persist.models import create_model

SETTINGS = dict(resolution=7, span=0.6, batch_size=16, points_per_step=4, method="vmap", chunk_nodes=6)


SETTINGS_3D = dict(resolution=5, span=0.6, batch_size=16, points_per_step=4, method="vmap", chunk_nodes=7,
                   per_example=True)


def _problem(dims: int = 2):
    torch.manual_seed(0)
    model = create_model("mlp", num_classes=3, in_channels=1, image_size=8, width=0.125)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(40, 1, 8, 8, generator=g), torch.randint(0, 3, (40,), generator=g)
    return model, random_directions(model, tuple(range(1, dims + 1))), x, y


def _worker(rank: int, world: int, port: int, out_dir: str, chunk_dir: str, dims: int = 2) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    assert init_distributed_from_env(backend="gloo") == (rank, world)
    model, dirs, x, y = _problem(dims)
    settings = SETTINGS if dims == 2 else SETTINGS_3D
    grid = evaluate_grid(model, dirs, x, y, chunk_dir=chunk_dir, **settings)
    if dims != 2:
        np.save(Path(out_dir) / f"rank{rank}-examples.npy", grid.per_example)
    np.savez(Path(out_dir) / f"rank{rank}.npz", loss=grid.loss, accuracy=grid.accuracy,
             evaluated=grid.meta["nodes_evaluated"], world=grid.meta["world_size"])
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.integration  # spawns two processes (about 10-20 s, mostly interpreter start-up)
def test_two_processes_give_the_single_process_grid(tmp_path):
    chunk_dir = tmp_path / "chunks"
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path), str(chunk_dir)), nprocs=2, join=True)
    ranks = [np.load(tmp_path / f"rank{r}.npz") for r in range(2)]
    torch.set_num_threads(1)
    model, dirs, x, y = _problem()
    single = evaluate_grid(model, dirs, x, y, **SETTINGS)
    for part in ranks:  # every rank returns the whole grid, gathered once
        assert int(part["world"]) == 2
        assert np.array_equal(part["loss"], single.loss) and np.array_equal(part["accuracy"], single.accuracy)
    # the 9 chunks of 6 nodes (last one 1 node) were split 5/4, so each rank evaluated only its share
    assert sorted(int(p["evaluated"]) for p in ranks) == [24, 25]
    # both ranks wrote into one chunk_dir; a single process resumes from it without evaluating anything
    resumed = evaluate_grid(model, dirs, x, y, chunk_dir=chunk_dir, **SETTINGS)
    assert resumed.meta["chunks_resumed"] == 9 and resumed.meta["nodes_evaluated"] == 0
    assert np.array_equal(resumed.loss, single.loss)


@pytest.mark.integration
def test_two_processes_give_the_single_process_3d_grid_and_per_example_losses(tmp_path):
    chunk_dir = tmp_path / "chunks"
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path), str(chunk_dir), 3), nprocs=2, join=True)
    torch.set_num_threads(1)
    model, dirs, x, y = _problem(3)
    single = evaluate_grid(model, dirs, x, y, **SETTINGS_3D)
    assert single.loss.shape == (5, 5, 5)
    for rank in range(2):
        part = np.load(tmp_path / f"rank{rank}.npz")
        assert np.array_equal(part["loss"], single.loss) and np.array_equal(part["accuracy"], single.accuracy)
        assert np.array_equal(np.load(tmp_path / f"rank{rank}-examples.npy"), single.per_example)
    resumed = evaluate_grid(model, dirs, x, y, chunk_dir=chunk_dir, **SETTINGS_3D)
    assert resumed.meta["nodes_evaluated"] == 0 and np.array_equal(resumed.loss, single.loss)
    assert np.array_equal(resumed.per_example, single.per_example)


def test_init_is_a_no_op_outside_torchrun(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    assert init_distributed_from_env() == (0, 1)
    assert not dist.is_initialized()


def test_sharding_without_a_process_group_is_refused():
    model, dirs, x, y = _problem()
    with pytest.raises(ConfigError, match="world_size=2"):
        evaluate_grid(model, dirs, x, y, resolution=3, rank=1, world_size=2)
    with pytest.raises(ConfigError, match="rank"):
        evaluate_grid(model, dirs, x, y, resolution=3, rank=2, world_size=2)
