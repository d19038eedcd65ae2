"""Static sharding of grid chunks across ``torchrun`` ranks, with one gather at the end.

Li et al.'s MPI code reduced the whole surface after every grid point; here each rank evaluates a
fixed, interleaved subset of chunks with no communication, and the results meet in a single
``all_gather_object``. The chunking does not depend on the number of ranks, so any world size gives
the grid a single process gives. With NCCL each rank must own its GPU (``torch.cuda.set_device``)
before the gather; :func:`init_distributed_from_env` does that.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.distributed as dist

from persist.errors import ConfigError

ChunkResults = dict[int, tuple[np.ndarray, np.ndarray, np.ndarray | None]]  # chunk -> (loss, accuracy, per-example)


def init_distributed_from_env(backend: str | None = None) -> tuple[int, int]:
    """Join the process group ``torchrun`` describes; ``(0, 1)`` and no side effects outside torchrun.

    Default backend: NCCL with one GPU per rank (``LOCAL_RANK``) when CUDA is present, else gloo.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return 0, 1
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend)
    return dist.get_rank(), dist.get_world_size()


def resolve_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """Explicit rank/world, else the initialized process group's, else a single process."""
    active = dist.is_available() and dist.is_initialized()
    if rank is None and world_size is None:
        return (dist.get_rank(), dist.get_world_size()) if active else (0, 1)
    rank = 0 if rank is None else rank
    world_size = 1 if world_size is None else world_size
    if world_size < 1 or not 0 <= rank < world_size:
        raise ConfigError(f"rank must be in [0, world_size), got rank={rank} world_size={world_size}")
    if world_size > 1 and not (active and dist.get_world_size() == world_size and dist.get_rank() == rank):
        raise ConfigError(f"world_size={world_size} needs torch.distributed initialized with that size and rank "
                          f"(run under torchrun and call init_distributed_from_env)")
    return rank, world_size


def shard(num_chunks: int, rank: int, world_size: int) -> list[int]:
    """Chunks of this rank: interleaved, so ranks finish together even when chunk costs drift."""
    return list(range(rank, num_chunks, world_size))


def broadcast_choice(value: str, world_size: int) -> str:
    """Rank 0's value on every rank (one collective before the work, so all ranks use one method)."""
    if world_size == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_chunks(local: ChunkResults, world_size: int) -> ChunkResults:
    """Every rank's chunk results on every rank, in one collective."""
    if world_size == 1:
        return local
    everyone: list[ChunkResults | None] = [None] * world_size
    dist.all_gather_object(everyone, local)
    merged: ChunkResults = {}
    for part in everyone:
        assert part is not None  # all_gather_object filled every slot
        merged.update(part)
    return merged
