"""Imports point downward: MLflow lives in persist/tracking, Optuna in persist/sweep.py, click in persist/cli.py,
figures in persist/plots, and the library (everything but those and the wiring) imports none of them."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "persist"
ALLOWED = {"mlflow": ("tracking/",), "optuna": ("sweep.py",), "click": ("cli.py",)}
# Everything outside these is library: it computes, and may be used from Python without tracking or figures.
NOT_LIBRARY = ("cli.py", "phases/", "pipeline.py", "sweep.py", "tracking/", "plots/")
WIRING = ("persist.phases", "persist.pipeline", "persist.sweep", "persist.cli", "persist.tracking", "persist.plots")
FORBIDDEN_IN_LIBRARY = ("mlflow", "click", "optuna", *WIRING)


def imported_modules(source: str) -> set[str]:
    tree = ast.parse(source)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            if node.module == "persist":  # `from persist import plots` names the submodule
                names.update(f"persist.{alias.name}" for alias in node.names)
    return names


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


FILES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_respect_the_layers(path):
    rel = str(path.relative_to(PACKAGE))
    modules = imported_modules(path.read_text())
    for top, places in ALLOWED.items():
        if any(_under(m, (top,)) for m in modules):
            assert rel.startswith(places), f"{rel} imports {top}"
    if not rel.startswith(NOT_LIBRARY):
        bad = sorted(m for m in modules if _under(m, FORBIDDEN_IN_LIBRARY))
        assert not bad, f"library module {rel} imports {', '.join(bad)}"


def test_the_check_sees_every_forbidden_import():
    """The parser finds each way of writing an import the library may not make."""
    sources = {"import mlflow.tracking": "mlflow.tracking", "from persist import plots": "persist.plots",
               "from persist.plots.stats import x": "persist.plots.stats", "import optuna as o": "optuna",
               "def f():\n    import click\n": "click"}
    for source, module in sources.items():
        assert module in imported_modules(source) and _under(module, FORBIDDEN_IN_LIBRARY), source
    assert not _under("persist.plotsx", FORBIDDEN_IN_LIBRARY)

