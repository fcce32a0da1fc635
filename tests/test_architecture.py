"""The package's import structure, read from the source (ast): the layers of docs/ARCHITECTURE.md.

Each top-level module or package of tfmodels is one unit. A unit imports only the units its row
of `ALLOWED` lists (lower layers), so there is no cycle between them, and every tfmodels import
sits at module level: an import inside a function is how cycles hide.
"""
import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "tfmodels"

# unit -> the units it may import (docs/ARCHITECTURE.md shows the same table as layers).
ALLOWED = {
    "compat": set(),
    "layers": set(),
    "losses": {"layers"},
    "layer_names": set(),
    "scopes": {"layers", "losses", "layer_names"},
    "nets": {"scopes", "layers", "losses"},
    "data": set(),
    "distribute": set(),
    "averaging": set(),
    "schedules": set(),
    "console": set(),
    "stopping": set(),
    "launch": set(),
    "model_dir": {"nets", "layers", "averaging"},
    "porting": {"model_dir", "nets", "scopes", "layers", "losses", "compat", "data"},
    "evaluation": {"data", "distribute", "model_dir", "losses", "layers", "nets", "console",
                   "stopping"},
    "training": {"compat", "layers", "losses", "layer_names", "scopes", "nets", "data",
                 "distribute", "schedules",
                 "averaging", "model_dir", "porting", "evaluation", "console", "stopping"},
}


def _unit(path):
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py") if len(relative.parts) > 1 or \
        relative.name != "__init__.py" else None


def _imported_units(node):
    """tfmodels units an Import / ImportFrom node names ('' for the root package)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif node.level == 0 and node.module:
        names = [node.module]
        if node.module == "tfmodels":
            names = [f"tfmodels.{alias.name}" for alias in node.names]
    else:
        return ["(relative import)"]
    return [name.split(".")[1] if "." in name else "" for name in names
            if name == "tfmodels" or name.startswith("tfmodels.")]


def _imports():
    """[(file, line, importing unit, imported unit, inside a function)] for the package."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        functions = [n for n in ast.walk(tree)
                     if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))]
        nested = {id(inner) for fn in functions for inner in ast.walk(fn) if inner is not fn}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for unit in _imported_units(node):
                    found.append((path.relative_to(PACKAGE.parent), node.lineno, _unit(path),
                                  unit, id(node) in nested))
    return found


IMPORTS = _imports()


def test_every_unit_is_in_the_table():
    units = {_unit(p) for p in PACKAGE.rglob("*.py")} - {None}
    assert units == set(ALLOWED), "add new units to ALLOWED and docs/ARCHITECTURE.md"


def test_no_tfmodels_import_inside_a_function():
    inside = [f"{file}:{line} imports tfmodels.{unit}" for file, line, _, unit, nested in IMPORTS
              if nested]
    assert not inside, "\n".join(inside)


def test_no_relative_imports():
    relative = [f"{file}:{line}" for file, line, _, unit, _ in IMPORTS
                if unit == "(relative import)"]
    assert not relative, "\n".join(relative)


def test_units_import_only_lower_layers():
    wrong = [f"{file}:{line}: {source} imports {unit}, not in ALLOWED[{source!r}]"
             for file, line, source, unit, _ in IMPORTS
             if source is not None and unit not in ("", source, "(relative import)")
             and unit not in ALLOWED[source]]
    assert not wrong, "\n".join(wrong)


def _cycle(edges):
    """A cycle in {unit: {units}} as a list, or None."""
    state = {}

    def visit(unit, stack):
        state[unit] = "open"
        for target in sorted(edges.get(unit, ())):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state:
                found = visit(target, stack + [target])
                if found:
                    return found
        state[unit] = "done"
        return None

    for unit in sorted(edges):
        if unit not in state:
            found = visit(unit, [unit])
            if found:
                return found
    return None


def test_no_cycle_between_units():
    edges = {}
    for _, _, source, unit, _ in IMPORTS:
        if source is not None and unit not in ("", source, "(relative import)"):
            edges.setdefault(source, set()).add(unit)
    assert _cycle(edges) is None, " -> ".join(_cycle(edges))
    assert _cycle(ALLOWED) is None, "ALLOWED itself has a cycle"


@pytest.mark.parametrize("edges, cycle", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
    ({"a": {"b"}, "b": set()}, None),
])
def test_the_cycle_finder_finds_cycles(edges, cycle):
    assert _cycle(edges) == cycle
