"""The shape of the code, checked: a small top level and packages that say what they are for, no import cycles
between tailor's modules (inside packages too), no package importing what its room says it may not, no module
reaching into another's private names, no `getattr` of an undeclared member where contracts are read, no module
over 450 lines.

Imports are read from the source (``ast``), including those inside functions: a function-level import that closes
a cycle still ties the two modules together, it only fails later. Imports under ``if TYPE_CHECKING:`` count for
cycles too (two modules that need each other's types are one design), except in ``tailor/__init__.py``, whose
type-only imports list the public API. Importing ``tailor.a.b`` also runs ``tailor/a/__init__.py``, so a module
outside the package ``tailor.a`` that imports one of its modules depends on the package too.
"""

from __future__ import annotations

import ast
import functools
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


@functools.cache
def _imports(module: str, type_only: bool = True) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import in ``module`` (those under ``if TYPE_CHECKING:``
    only with ``type_only``; never the package root's)."""
    tree = ast.parse(MODULES[module].read_text())
    skip = _type_checking_nodes(tree) if module == "tailor" or not type_only else set()
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


@functools.cache
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


# -- the rooms -----------------------------------------------------------------------------------------------------

TOP_LEVEL_AT_MOST = 8


def test_the_top_level_is_small() -> None:
    top = sorted(p.name for p in SRC.glob("*.py"))
    assert len(top) <= TOP_LEVEL_AT_MOST, f"{len(top)} modules at src/tailor/: {top}; a family of modules is a package"


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_every_package_says_what_its_room_is_for(package: str) -> None:
    doc = ast.get_docstring(ast.parse(MODULES[package].read_text())) or ""
    assert len(doc.split()) >= 12 and "TODO" not in doc, f"{package}/__init__.py: say what the room is for"


# What a package may never import, directly or through the modules it imports (function-level imports included):
# the room's rule, as its __init__ states it. Third-party names are checked on the imports of every module reached.
FORBIDDEN: dict[str, set[str]] = {
    "tailor.stats": {
        "tailor.methods",
        "tailor.backends",
        "tailor.tuning",
        "tailor.prompting",
        "tailor.search",
        "tailor.runner",
        "tailor.report",
        "tailor.cli",
        "torch",
        "transformers",
        "peft",
    },
    "tailor.costs": {
        "tailor.methods",
        "tailor.backends",
        "tailor.tuning",
        "tailor.runner",
        "tailor.report",
        "tailor.cli",
        "torch",
        "transformers",
        "peft",
    },
    "tailor.report": {
        "tailor.methods",
        "tailor.backends",
        "tailor.tuning",
        "tailor.prompting",
        "tailor.cli",
        "torch",
        "transformers",
        "peft",
    },
    "tailor.config": {
        "tailor.methods",
        "tailor.backends",
        "tailor.tuning",
        "tailor.prompting",
        "tailor.search",
        "tailor.runner",
        "tailor.report",
        "tailor.cli",
        "tailor.data",
        "torch",
    },
    "tailor.data": {
        "tailor.methods",
        "tailor.backends",
        "tailor.tuning",
        "tailor.runner",
        "tailor.report",
        "tailor.cli",
        "torch",
    },
    "tailor.backends": {
        "tailor.methods",
        "tailor.tuning",
        "tailor.search",
        "tailor.runner",
        "tailor.report",
        "tailor.cli",
    },
    "tailor.prompting": {
        "tailor.methods",
        "tailor.tuning",
        "tailor.search",
        "tailor.runner",
        "tailor.report",
        "tailor.cli",
    },
    "tailor.tuning": {"tailor.methods", "tailor.search", "tailor.runner", "tailor.report", "tailor.cli"},
    "tailor.search": {"tailor.methods", "tailor.tuning", "tailor.runner", "tailor.report", "tailor.cli"},
    "tailor.methods": {"tailor.runner", "tailor.report", "tailor.cli"},
    "tailor.runner": {"tailor.cli"},
}


@functools.cache
def _reached(module: str) -> dict[str, list[str]]:
    """Every tailor module ``module`` reaches by imports, with one path to it."""
    graph = _edges()
    paths = {module: [module]}
    todo = [module]
    while todo:
        here = todo.pop()
        for there in sorted(graph[here]):
            if there not in paths:
                paths[there] = [*paths[here], there]
                todo.append(there)
    return paths


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _forbidden_reaches(module: str, rules: dict[str, set[str]]) -> list[str]:
    rule = next((banned for package, banned in rules.items() if _within(module, package)), None)
    if not rule:
        return []
    found = []
    for there, path in _reached(module).items():
        for banned in rule:
            if _within(there, banned):
                found.append(f"{module} reaches {there}: {' -> '.join(path)}")
        for target, _, line in _imports(there, type_only=False):
            for banned in rule:
                if not banned.startswith("tailor") and _within(target, banned):
                    found.append(f"{module} reaches {banned} ({there}:{line}): {' -> '.join(path)}")
    return found


def test_the_rule_finder_finds_a_planted_reach() -> None:
    # tailor.report.build reads the run store; were the store a method, the report would reach methods
    assert _forbidden_reaches("tailor.report.build", {"tailor.report": {"tailor.runner.store"}})
    assert _forbidden_reaches("tailor.backends.local.lm", {"tailor.backends": {"torch"}})
    assert not _forbidden_reaches("tailor.stats.metrics", {"tailor.report": {"tailor.stats"}})


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_package_imports_what_its_room_forbids(module: str) -> None:
    found = _forbidden_reaches(module, FORBIDDEN)
    assert not found, "\n".join(found)


# -- contracts are declared, not discovered ---------------------------------------------------------------------------

# Where a method's, an adapted model's or a backend's members are read, they are read as declared attributes: a
# `getattr(obj, "name", default)` or `hasattr(obj, "name")` with a literal name there means an undeclared member.
# Reads of third-party objects (a Hugging Face config, a tokenizer) are listed here, each with its reason.
CONTRACT_READERS = ("tailor.runner", "tailor.report", "tailor.methods", "tailor.search", "tailor.cli")
THIRD_PARTY_READS: dict[tuple[str, str], str] = {
    ("tailor.methods.encoder_full", "max_position_embeddings"): "a Hugging Face config: not every architecture has it",
    ("tailor.methods.seq_cls", "max_position_embeddings"): "a Hugging Face config: not every architecture has it",
    ("tailor.methods.lora", "hidden_size"): "a Hugging Face text config: decoder-only models name their width so",
    ("tailor.methods.lora", "d_model"): "a Hugging Face config: T5 names its width so",
}


def _literal_getattrs_in(source: str) -> list[tuple[str, int]]:
    """(name, line) of every ``getattr``/``hasattr`` call in ``source`` whose attribute name is a literal string."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            found.append((node.args[1].value, node.lineno))
    return found


@functools.cache
def _literal_getattrs(module: str) -> list[tuple[str, int]]:
    return _literal_getattrs_in(MODULES[module].read_text())


def test_the_getattr_finder_sees_literal_names_only() -> None:
    code = "getattr(a, 'x', None)\nhasattr(b, 'y')\ngetattr(c, name)\nobj.getattr(d, 'z')\n"
    assert sorted(name for name, _ in _literal_getattrs_in(code)) == ["x", "y"]


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith(CONTRACT_READERS)))
def test_no_getattr_of_undeclared_members_where_contracts_are_read(module: str) -> None:
    found = [
        f"{module}:{line} getattr/hasattr of {name!r}"
        for name, line in _literal_getattrs(module)
        if (module, name) not in THIRD_PARTY_READS
    ]
    assert not found, "declare the member in the contract and read it as an attribute:\n" + "\n".join(found)


def test_every_listed_third_party_read_is_still_there() -> None:
    # a stale entry would let a contract member of the same name be read with getattr unseen
    used = {(m, name) for m in MODULES if m.startswith(CONTRACT_READERS) for name, _ in _literal_getattrs(m)}
    assert not set(THIRD_PARTY_READS) - used, sorted(set(THIRD_PARTY_READS) - used)
