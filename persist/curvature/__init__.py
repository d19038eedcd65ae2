"""Curvature baselines: Hessian trace and extreme eigenvalues, Fisher trace, ε-sharpness, loss barrier.

All measures see one function, the mean cross-entropy over a declared data subset in eval mode, and leave
the model's ``state_dict`` exactly as they found it. Import a measure directly, or run a selection with
:func:`measure_curvature`, which records per-measure failures instead of stopping.
"""

from persist.curvature.eigen import EigenResult, extreme_eigenvalues
from persist.curvature.fisher import fisher_trace
from persist.curvature.hvp import (
    Objective,
    flat_hvp,
    flat_hvp_rows,
    hessian_vector_product,
    make_objective,
    measurement_mode,
)
from persist.curvature.measures import (
    DEFAULT_MEASURES,
    get_measure,
    hessian_trace,
    list_measures,
    measure_curvature,
    measure_options,
    register_measure,
    top_eigenvalues,
)
from persist.curvature.sharpness import (
    epsilon_sharpness,
    filter_box,
    filter_normalized_directions,
    loss_barrier,
)
from persist.curvature.trace import hutchinson_trace, hutchpp_trace

__all__ = [
    "DEFAULT_MEASURES",
    "EigenResult",
    "Objective",
    "epsilon_sharpness",
    "extreme_eigenvalues",
    "filter_box",
    "filter_normalized_directions",
    "fisher_trace",
    "flat_hvp",
    "flat_hvp_rows",
    "get_measure",
    "hessian_trace",
    "hessian_vector_product",
    "hutchinson_trace",
    "hutchpp_trace",
    "list_measures",
    "loss_barrier",
    "make_objective",
    "measure_curvature",
    "measure_options",
    "measurement_mode",
    "register_measure",
    "top_eigenvalues",
]
