"""The package's floors: every import inside explorer/ goes down (or stays on its floor).

DESIGN.md: a newcomer reading ``ls explorer`` sees the layers. Read from the source with ``ast``
(nothing is imported), so a new module is checked the day it lands.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "explorer"

# Bottom to top. The surfaces (and the bench, a surface for measurements) may use the public
# facade, ``explorer/__init__.py``, which itself sits above everything it re-exports.
FLOORS = {
    "errors": 0,
    "runtime": 1,        # precision, timing, torch.distributed, tensor plumbing
    "inputs": 2,         # bundled data, user images, input spaces, baselines
    "models": 3,         # the zoo, specs, architectures, bias removal
    "methods": 4,        # the registry, the methods, their cost model (budget)
    "analyses": 5,       # completeness, path, convergence, axioms, metrics, evaluation
    "presentation": 6,   # tables, figures, sentences
    "train": 7, "bench": 7, "cli": 7, "ui": 7,  # surfaces
    "__init__": 8, "__main__": 8,
}
FACADE = 8


def floor_of(module: str) -> str:
    """``explorer.methods.core`` -> ``methods``; ``explorer`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every explorer import in a file, lazy ones inside functions included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] == "explorer":
            if node.module == "explorer":  # from explorer import a, b: submodules or the facade
                found += [(node.lineno, f"explorer.{a.name}") for a in node.names
                          if (PACKAGE / a.name).is_dir() or (PACKAGE / f"{a.name}.py").is_file()]
                if any(not ((PACKAGE / a.name).is_dir() or (PACKAGE / f"{a.name}.py").is_file())
                       for a in node.names):
                    found.append((node.lineno, "explorer"))
            else:
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names
                      if a.name.split(".")[0] == "explorer"]
    return found


def upward_imports(path: Path, me: str) -> list[str]:
    """The imports of ``path`` (a module on floor ``me``) that reach a higher floor."""
    upward = []
    for line, module in imports(path):
        other = floor_of(module)
        if FLOORS[other] == FACADE and FLOORS[me] == FLOORS["ui"]:
            continue  # a surface using the public API
        if FLOORS[other] > FLOORS[me]:
            upward.append(f"line {line}: {module} ({other}) from {me}")
    return upward


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_top_level_entry_has_a_floor():
    """A new top-level module or package must be placed on a floor (here and in DESIGN.md)."""
    entries = {p.stem for p in PACKAGE.iterdir()
               if (p.suffix == ".py") or (p.is_dir() and (p / "__init__.py").exists())}
    assert entries - set(FLOORS) == set()


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_imports_only_go_down(path: Path):
    me = floor_of(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
    assert upward_imports(path, me) == []


def test_the_check_sees_an_upward_import(tmp_path):
    """Positive control: lazy imports, ``from explorer import`` and plain imports are all read,
    and a methods module reaching presentation is flagged while one reaching runtime is not."""
    f = tmp_path / "m.py"
    f.write_text("from explorer import errors\nimport explorer.runtime.timing\n"
                 "def g():\n    from explorer.presentation import viz\n")
    assert sorted(m for _, m in imports(f)) == ["explorer.errors", "explorer.presentation",
                                                "explorer.runtime.timing"]
    assert upward_imports(f, "methods") == ["line 4: explorer.presentation (presentation) "
                                            "from methods"]
