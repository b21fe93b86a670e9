"""The import rules of docs/ARCHITECTURE.md, checked on the source with ``ast``.

Every ``import`` in ``src/axline`` counts, also those inside functions (a lazy import still ties
two modules together). A *unit* is a top-level module (``axline.plant``) or a subpackage
(``axline.historian``); each unit sits in a layer and may import its own layer's units (where the
layer allows it) and the layers below. A unit not named here is a feature: it sits in the
``feature`` layer.
"""

from __future__ import annotations

import ast
import functools
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
ROOT = "axline"

# layers from the bottom up: (name, units, whether units of this layer may import each other)
LAYERS: list[tuple[str, set[str], bool]] = [
    ("core", {"axline", "batch", "shutdown", "i18n"}, True),
    ("model", {"plant", "safety"}, True),
    ("io", {"connect", "historian", "bus", "spool", "camera"}, False),
    ("feature", {"inspect", "kpi", "monitor", "vision", "edge", "discover"}, True),
    ("application", {"app", "service", "service_vision"}, True),
    ("entry", {"demo", "bench", "cli"}, True),
]
DEFAULT_LAYER = "feature"
DEFAULT_LAYER_UNIT = "kpi"  # any unit of the feature layer
# the virtual factory stands beside the product: it reuses the core types and the protocol code of
# the connectors for its servers; features may use its physics (a digital twin), the layers below
# the features never see it
SIM_UNIT = "sim"
SIM_MAY_IMPORT = {"axline", "batch", "connect", "sim"}
# named exceptions: (importing unit, imported module) with the reason
EXCEPTIONS = {
    ("plant", "axline.connect.registry"): "the plant file is validated against the connector types' option "
    "schemas; the registry names connector classes as strings and imports none of them",
}
# modules nobody may import: the command line only imports commands, it is never a library
NEVER_IMPORTED = {"axline.cli": "the command line is the top: move what you need out of it"}

DOC = "see docs/ARCHITECTURE.md"


def module_files() -> dict[str, Path]:
    out = {}
    for path in sorted((SRC / ROOT).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, int]]:
    """(imported axline module, line) for every import in the file, resolved to a known module."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found = []

    def known(target: str) -> str | None:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        return target or None

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from pkg import sub` imports the submodule when there is one
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in modules else module for a in node.names]
        else:
            continue
        for t in targets:
            if t == ROOT or t.startswith(ROOT + "."):
                resolved = known(t)
                if resolved is not None and resolved != name:
                    found.append((resolved, node.lineno))
    return found


def unit_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def layer_of(unit: str) -> int:
    for i, (_, units, _) in enumerate(LAYERS):
        if unit in units:
            return i
    return [n for n, _, _ in LAYERS].index(DEFAULT_LAYER)


@functools.cache
def graph() -> dict[str, list[tuple[str, int]]]:
    modules = module_files()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def rule_violation(src: str, dst: str) -> str | None:
    """Why ``src`` may not import ``dst`` (None when it may)."""
    if dst in NEVER_IMPORTED:
        return NEVER_IMPORTED[dst]
    su, du = unit_of(src), unit_of(dst)
    if su == du or (su, dst) in EXCEPTIONS:
        return None
    if su == SIM_UNIT:
        return None if du in SIM_MAY_IMPORT else f"the virtual factory may import only {sorted(SIM_MAY_IMPORT)}"
    if du == SIM_UNIT:
        ok = layer_of(su) >= layer_of(DEFAULT_LAYER_UNIT)
        return None if ok else "the virtual factory is not part of core, model or io: only features and above use it"
    ls, ld = layer_of(su), layer_of(du)
    name, _, siblings = LAYERS[ls]
    if ld < ls or (ld == ls and siblings):
        return None
    below = [n for n, _, _ in LAYERS[:ls]] + ([name] if siblings else [])
    if ld == ls:
        return f"units of the {name} layer are independent of each other (it may import: {', '.join(below)})"
    return (f"{su} is in the {name} layer, {du} in the higher {LAYERS[ld][0]} layer "
            f"({name} may import: {', '.join(below) or 'nothing of axline'})")


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph as a list of nodes (first repeated last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(edges):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_every_import_follows_the_layers() -> None:
    problems = []
    for src, targets in graph().items():
        for dst, line in targets:
            why = rule_violation(src, dst)
            if why:
                problems.append(f"  {src} (line {line}) imports {dst}: {why}")
    assert not problems, "imports against the architecture (" + DOC + "):\n" + "\n".join(sorted(problems))


def test_no_import_circles_between_modules() -> None:
    edges = {src: {dst for dst, _ in targets} for src, targets in graph().items()}
    cycle = find_cycle(edges)
    assert cycle is None, f"import circle: {' -> '.join(cycle)} ({DOC}: move the shared part into its own module)"


def test_no_import_circles_between_units() -> None:
    edges: dict[str, set[str]] = defaultdict(set)
    for src, targets in graph().items():
        for dst, _ in targets:
            su, du = unit_of(src), unit_of(dst)
            if su != du and (su, dst) not in EXCEPTIONS:
                edges[su].add(du)
    cycle = find_cycle(edges)
    assert cycle is None, f"import circle between packages: {' -> '.join(cycle)} ({DOC})"


def test_the_checker_sees_what_it_must() -> None:
    # the rules themselves: a historian importing a monitor, a connector importing the web app, the
    # virtual factory importing the historian and anything importing the CLI are refused
    assert rule_violation("axline.historian.embedded", "axline.monitor.detectors")
    assert rule_violation("axline.connect.opcua", "axline.app.server")
    assert rule_violation("axline.connect.opcua", "axline.historian.base")  # io units are independent
    assert rule_violation("axline.sim.line", "axline.historian.base")
    assert rule_violation("axline.connect.opcua", "axline.sim.line")
    assert rule_violation("axline.historian.base", "axline.sim.line")
    assert rule_violation("axline.optimize.twin", "axline.sim.furnace") is None
    assert rule_violation("axline.quality", "axline.app.ops_common")  # a feature never needs the web app
    assert rule_violation("axline.demo", "axline.cli")
    assert rule_violation("axline.newfeature", "axline.service")  # an unknown unit is a feature
    assert rule_violation("axline.app.security", "axline.newfeature") is None
    assert rule_violation("axline.monitor.spc", "axline.kpi") is None
    assert rule_violation("axline.plant", "axline.connect.registry") is None
    assert rule_violation("axline.plant", "axline.connect.opcua")
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}}) is None
    # and the import parser resolves relative, `from pkg import module` and lazy imports
    modules = module_files()
    demo = {d for d, _ in imports_of("axline.demo", modules["axline.demo"], modules)}
    assert "axline.inspect.train" in demo  # imported inside a function
    assert "axline.historian" in demo
