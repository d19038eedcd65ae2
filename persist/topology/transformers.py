"""scikit-learn transformers: grids -> diagrams -> feature matrix, for use in a ``Pipeline``.

Predicting e.g. initialization quality or forgetting from landscapes is a supervised problem; wrapping the
functional core in estimators lets cross-validation, grid search and baselines treat the topological
features like any other, with the same folds.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from persist.errors import DataError
from persist.topology.diagrams import Diagrams
from persist.topology.lower_star import lower_star_diagrams, validated_grid
from persist.topology.summaries import summarize


class LowerStarPersistence(TransformerMixin, BaseEstimator):
    """Map grids (a list of arrays, or one ``(n_grids, *grid_shape)`` array) to a list of :class:`Diagrams`.

    Parameters are those of :func:`lower_star_diagrams`. ``fit`` checks them, and that the grids are
    valid and of one dimensionality (stored as ``grid_ndim_``), so a bad setting fails before a long run.
    """

    def __init__(self, connectivity: int | None = None, backend: str = "gudhi", max_dim: int | None = None):
        self.connectivity = connectivity
        self.backend = backend
        self.max_dim = max_dim

    def fit(self, X: Sequence[np.ndarray], y: object = None) -> LowerStarPersistence:
        grids = _grids(X)
        ndims = {grid.ndim for grid in grids}
        if len(ndims) != 1:
            raise DataError(f"X mixes grids of dimensions {sorted(ndims)}; fit one dimensionality at a time")
        self.grid_ndim_ = ndims.pop()
        # A 2-node-wide grid runs every parameter check of lower_star_diagrams at no cost.
        lower_star_diagrams(np.zeros((2,) * self.grid_ndim_), self.connectivity, self.backend, self.max_dim)
        return self

    def transform(self, X: Sequence[np.ndarray]) -> list[Diagrams]:
        check_is_fitted(self, "grid_ndim_")
        grids = _grids(X)
        for grid in grids:
            if grid.ndim != self.grid_ndim_:
                raise DataError(f"X holds a {grid.ndim}D grid; this transformer was fitted on {self.grid_ndim_}D")
        return [lower_star_diagrams(grid, self.connectivity, self.backend, self.max_dim) for grid in grids]


class PersistenceSummaries(TransformerMixin, BaseEstimator):
    """Map a list of diagrams to the ``(n_samples, n_features)`` matrix of :func:`summarize` values.

    Columns are fixed by ``dims`` and ``p`` (see ``get_feature_names_out``), so matrices from different
    runs line up. Parameters are those of :func:`summarize`.
    """

    def __init__(
        self,
        dims: tuple[int, ...] = (0, 1),
        eps: float = 0.0,
        p: float = 2.0,
        essential_death: float | None = None,
    ):
        self.dims = dims
        self.eps = eps
        self.p = p
        self.essential_death = essential_death

    def fit(self, X: Sequence[Diagrams], y: object = None) -> PersistenceSummaries:
        if len(X) == 0:
            raise DataError("X is empty; pass at least one diagram")
        self.feature_names_out_ = np.array(list(self._summary({})), dtype=object)  # validates parameters
        self.n_features_out_ = self.feature_names_out_.size
        return self

    def transform(self, X: Sequence[Diagrams]) -> np.ndarray:
        check_is_fitted(self, "feature_names_out_")
        rows = [self._summary(diagrams) for diagrams in X]
        return np.array([[row[name] for name in self.feature_names_out_] for row in rows], dtype=np.float64)

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        check_is_fitted(self, "feature_names_out_")
        return self.feature_names_out_.copy()

    def _summary(self, diagrams: Diagrams | dict) -> dict[str, float]:
        return summarize(diagrams, tuple(self.dims), self.eps, self.p, self.essential_death)


def _grids(X: Sequence[np.ndarray]) -> list[np.ndarray]:
    if len(X) == 0:
        raise DataError("X is empty; pass at least one grid")
    return [validated_grid(grid) for grid in X]
