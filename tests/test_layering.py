"""Imports point downward: MLflow lives in persist/tracking, Optuna in persist/sweep.py, click in persist/cli.py,
and the library packages import none of the wiring layers."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "persist"
ALLOWED = {"mlflow": ("tracking/",), "optuna": ("sweep.py",), "click": ("cli.py",)}
LIBRARY = ("data/", "models/", "training/", "landscape/", "topology/", "curvature/", "forgetting/",
           "neural_persistence/", "init_quality/", "stats/", "config.py", "errors.py", "checkpoint.py", "registry.py")
WIRING = ("persist.phases", "persist.pipeline", "persist.sweep", "persist.cli", "persist.tracking")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


FILES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_respect_the_layers(path):
    rel = str(path.relative_to(PACKAGE))
    modules = imported_modules(path)
    for top, places in ALLOWED.items():
        if any(m == top or m.startswith(top + ".") for m in modules):
            assert rel.startswith(places), f"{rel} imports {top}"
    if rel.startswith(LIBRARY):
        assert not [m for m in modules if m.startswith(WIRING)], f"library module {rel} imports the wiring layer"
