"""The package's rooms (its subpackages and top-level modules) import one another without a circle.

Every import counts, also the ones inside functions: a lazy import keeps the lower room from loading the
higher one, but it still ties the two together. With no circle among rooms, they can be stacked in floors
so that every import runs down (docs/architecture.md draws them).
"""

from __future__ import annotations

import ast
from pathlib import Path

import offline_arena

PACKAGE = Path(offline_arena.__file__).parent


def _module_name(path: Path) -> list[str]:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _imported_modules(path: Path) -> list[list[str]]:
    """Each import in the file as a path inside the package (imports of other packages left out)."""
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                target = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "offline_arena":
                target = node.module.split(".")[1:]
            else:
                continue
            # `from . import x` names a module as often as a name; the room is what matters here.
            found.append(target if target else [alias.name for alias in node.names][:1])
        elif isinstance(node, ast.Import):
            found += [alias.name.split(".")[1:] for alias in node.names if alias.name.split(".")[0] == "offline_arena"]
    return [target for target in found if target]


def room_imports() -> dict[str, set[str]]:
    """room -> the other rooms it imports; a room is a subpackage or a top-level module."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        name = _module_name(path)
        if not name:  # the package's own __init__
            continue
        room = graph.setdefault(name[0], set())
        room |= {target[0] for target in _imported_modules(path) if target[0] != name[0]}
    return graph


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of rooms (depth-first search), or None."""
    state: dict[str, str] = {}
    trail: list[str] = []

    def visit(room: str) -> list[str] | None:
        state[room] = "open"
        trail.append(room)
        for other in sorted(graph.get(room, ())):
            if state.get(other) == "open":
                return trail[trail.index(other):] + [other]
            if other not in state and (circle := visit(other)):
                return circle
        state[room] = "done"
        trail.pop()
        return None

    for room in sorted(graph):
        if room not in state and (circle := visit(room)):
            return circle
    return None


def test_the_rooms_import_each_other_without_a_circle():
    graph = room_imports()
    assert {"models", "prompts", "judges", "privacy", "loading", "pipeline"} <= set(graph)
    circle = find_circle(graph)
    assert circle is None, "imports run in a circle: " + " -> ".join(circle)


def test_the_circle_finder_sees_a_circle_and_a_lazy_import():
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    # A relative import inside a function is found and resolved to its room.
    module = PACKAGE / "models" / "base.py"
    assert ["keys"] in [t[:1] for t in _imported_modules(module)]
    lazy = PACKAGE / "loading.py"
    assert {"prompts", "privacy", "models", "judges"} <= {t[0] for t in _imported_modules(lazy)}
