"""Dependencies point one way: domain ← adapters ← projections ← web, workers ← tocsin."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What each layer may import from the project (besides itself).
ALLOWED = {
    "domain": set(),
    "adapters": {"domain"},
    "migrations": {"adapters", "domain", "projections"},
    "projections": {"adapters", "domain"},
    "web": {"adapters", "domain", "projections"},
    "workers": {"adapters", "domain", "projections"},
    "tocsin": {"adapters", "domain", "migrations", "projections", "web", "workers"},
}


def project_imports(path: Path) -> set[str]:
    """The project's top-level packages that a module imports, wherever in the module."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found.update(name.split(".")[0] for name in names if name.split(".")[0] in ALLOWED)
    return found


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_a_layer_imports_only_the_layers_below_it(layer):
    wrong = {}
    for path in sorted((ROOT / layer).rglob("*.py")):
        above = project_imports(path) - ALLOWED[layer] - {layer}
        if above:
            wrong[str(path.relative_to(ROOT))] = sorted(above)
    assert wrong == {}
