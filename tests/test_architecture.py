"""The shape of the code, checked: no import cycles between tailor's modules, no module reaching into another's
private names, no module over 450 lines.

Imports are read from the source (``ast``), including those inside functions: a function-level import that closes
a cycle still ties the two modules together, it only fails later. Imports under ``if TYPE_CHECKING:`` are left
out: they never run. Importing ``tailor.a.b`` also runs ``tailor/a/__init__.py``, so a module outside the package
``tailor.a`` that imports one of its modules depends on the package too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "tailor"
MAX_LINES = 450


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}
PACKAGES = {name for name, p in MODULES.items() if p.name == "__init__.py"}


def _package_of(module: str) -> str:
    return module if module in PACKAGES else module.rsplit(".", 1)[0]


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = _package_of(module).split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skip.update(id(n) for n in ast.walk(child))
    return skip


def _imports(module: str) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import in ``module`` that runs."""
    tree = ast.parse(MODULES[module].read_text())
    skip = _type_checking_nodes(tree)
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            names = [alias.name for alias in node.names]
            # `from pkg import mod` imports the module pkg.mod
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            out.append((target, [n for n in names if f"{target}.{n}" not in MODULES], node.lineno))
            out += [(s, [], node.lineno) for s in subs]
    return out


def _edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module in MODULES:
        for target, _, _ in _imports(module):
            if target not in MODULES:
                continue
            graph[module].add(target)
            # importing tailor.a.b runs tailor/a/__init__.py first (unless we are inside tailor.a ourselves)
            parent = target.rsplit(".", 1)[0]
            while parent != "tailor" and parent in MODULES and not module.startswith(parent + "."):
                graph[module].add(parent)
                parent = parent.rsplit(".", 1)[0]
    for module in graph:
        graph[module].discard(module)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_checks_see_the_package() -> None:
    assert len(MODULES) > 30 and "tailor.runner.run" in MODULES and "tailor.methods" in PACKAGES
    # the import reader finds function-level imports (the CLI imports everything inside its commands)
    assert any(t == "tailor.runner.run" for t, _, _ in _imports("tailor.cli.execute"))


def test_cycle_finder_finds_a_planted_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    cycles = _cycles(_edges())
    assert not cycles, "import cycles between tailor modules:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def _private_uses(module: str) -> list[str]:
    found = []
    package = _package_of(module)
    for target, names, line in _imports(module):
        if not target.startswith("tailor"):
            continue
        for n in names:
            if n.startswith("_") and not n.startswith("__"):
                found.append(f"{module}:{line} imports {n} from {target}")
        last = target.rsplit(".", 1)[-1]
        # a private module may be used by its own package's modules only
        if last.startswith("_") and not last.startswith("__") and _package_of(target) != package:
            found.append(f"{module}:{line} imports the private module {target}")
    # attribute access on an imported module: `store._helper`
    tree = ast.parse(MODULES[module].read_text())
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            for alias in node.names:
                if f"{target}.{alias.name}" in MODULES:
                    aliases[alias.asname or alias.name] = f"{target}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("tailor"):
                    aliases[alias.asname or alias.name] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            found.append(f"{module}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    return found


def test_no_module_imports_another_modules_private_names() -> None:
    found = [f for module in MODULES for f in _private_uses(module)]
    assert not found, "private names used across modules:\n" + "\n".join(found)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_is_short(module: str) -> None:
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[module].relative_to(SRC.parent)} has {lines} lines (at most {MAX_LINES})"
