"""scikit-learn transformers in a Pipeline, and the diagram / barcode figures."""

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline

from persist.errors import ConfigError, DataError
from persist.plots.topology import plot_barcode, plot_diagram
from persist.topology import LowerStarPersistence, PersistenceSummaries, lower_star_diagrams, summarize


def wells(k, rng, n=41):
    """k Gaussian wells of random depth in [0.5, 1] on a flat background, on one row of centres."""
    x = np.linspace(-1, 1, n)
    grid = np.zeros((n, n))
    for centre in np.linspace(-0.75, 0.75, k) if k > 1 else [0.0]:
        grid -= rng.uniform(0.5, 1.0) * np.exp(-((x[:, None] - centre) ** 2 + x[None, :] ** 2) / (2 * 0.06**2))
    return grid


def test_pipeline_counts_wells_from_grids():
    rng = np.random.default_rng(0)
    k = np.array([1, 2, 3, 4, 2, 3, 1, 4])
    grids = np.stack([wells(int(n), rng) for n in k])  # one (n_grids, h, w) array
    pipeline = make_pipeline(LowerStarPersistence(), PersistenceSummaries(eps=1e-6), LinearRegression())
    pipeline.fit(grids, k)
    assert np.allclose(pipeline.predict(grids), k)
    features = pipeline[:-1].transform(list(grids))
    names = list(pipeline[1].get_feature_names_out())
    assert features[:, names.index("h0_count_above_eps")].tolist() == (k - 1).tolist()
    expected = summarize(lower_star_diagrams(grids[2]), eps=1e-6)
    assert features[2].tolist() == [expected[name] for name in names]


def test_transformers_follow_sklearn_contracts():
    ph = LowerStarPersistence(connectivity=4, backend="ripser", max_dim=0)
    assert clone(ph).get_params() == {"connectivity": 4, "backend": "ripser", "max_dim": 0}
    with pytest.raises(NotFittedError):
        ph.transform([np.zeros((3, 3))])
    diagrams = ph.fit_transform([np.array([[0.0, 2.0, 1.0]])])
    assert diagrams[0][0].tolist() == [[0.0, np.inf], [1.0, 2.0]] and diagrams[0].meta["backend"] == "ripser"
    summaries = PersistenceSummaries(dims=(0,), p=3).fit(diagrams)
    assert list(summaries.get_feature_names_out())[:3] == ["h0_count", "h0_total_persistence", "h0_persistence_norm_p3"]
    assert summaries.transform(diagrams).shape == (1, summaries.n_features_out_)


@pytest.mark.parametrize(
    "estimator, X, error, message",
    [
        (LowerStarPersistence(backend="dionysus"), [np.zeros((3, 3))], ConfigError, "persistence backend"),
        (LowerStarPersistence(backend="ripser", connectivity=6), [np.zeros((3, 3, 3))], ConfigError, "exact for H0"),
        (LowerStarPersistence(), [np.zeros((3, 3)), np.zeros((3, 3, 3))], DataError, "mixes grids"),
        (LowerStarPersistence(), [], DataError, "X is empty"),
        (PersistenceSummaries(eps=-1.0), [{}], ConfigError, "eps must be"),
        (PersistenceSummaries(p=0.0), [{}], ConfigError, "p must be"),
    ],
)
def test_fit_validates_before_any_long_computation(estimator, X, error, message):
    with pytest.raises(error, match=message):
        estimator.fit(X)


# ------------------------------------------------------------------ figures


def sample_diagrams():
    grid = np.random.default_rng(1).random((12, 12))
    grid[5, 5] = np.inf  # gives an essential H1 bar
    return lower_star_diagrams(grid)


def test_plot_diagram_draws_finite_points_and_essential_triangles():
    diagrams = sample_diagrams()
    fig = plot_diagram(diagrams, eps=0.05)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "birth (loss)" and ax.get_ylabel() == "death (loss)"
    sizes = [len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection)]
    n_finite = [int(np.isfinite(diagrams[k][:, 1]).sum()) for k in (0, 1)]
    assert sizes == [n_finite[0], 1, n_finite[1], 1]  # H0 points, H0 essential, H1 points, H1 essential
    assert ax.get_yticklabels()[-1].get_text() == "∞"


def test_plot_barcode_one_panel_per_dimension_and_truncation():
    diagrams = sample_diagrams()
    fig = plot_barcode(diagrams, max_bars=10)
    assert len(fig.axes) == 2
    assert fig.axes[-1].get_xlabel() == "filtration value (loss)"
    assert fig.axes[0].get_title(loc="left") == f"10 longest of {len(diagrams[0])} bars"


def test_plots_accept_empty_diagrams():
    empty = {0: np.empty((0, 2)), 1: np.empty((0, 2))}
    assert isinstance(plot_diagram(empty), Figure) and isinstance(plot_barcode(empty), Figure)
