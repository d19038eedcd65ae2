"""Loss-landscape slices: seeded filter-normalized directions, fast resumable grids, 1-D paths.

Typical use::

    dirs = random_directions(model, seeds=(1, 2))
    grid = evaluate_grid(model, dirs, x_test, y_test, resolution=51, chunk_dir="work/grid")
    path = evaluate_path(model, state_a, state_b, x_test, y_test)
"""

from persist.landscape.directions import Directions, random_direction, random_directions
from persist.landscape.distributed import init_distributed_from_env
from persist.landscape.grid import LandscapeGrid, evaluate_grid, grid_options
from persist.landscape.path import PathResult, evaluate_path
from persist.landscape.reference import evaluate_grid_reference
from persist.landscape.storage import load_grid, save_grid

__all__ = [
    "Directions",
    "LandscapeGrid",
    "PathResult",
    "evaluate_grid",
    "grid_options",
    "evaluate_grid_reference",
    "evaluate_path",
    "init_distributed_from_env",
    "load_grid",
    "random_direction",
    "random_directions",
    "save_grid",
]
