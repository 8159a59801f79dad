"""The layer table of docs/architecture.md, enforced: every import in our four packages
(at the top of a module, inside a function, under `TYPE_CHECKING`) points down the table
or at the settings leaf, and no module reaches itself again through its imports."""

from __future__ import annotations

import ast
import itertools
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Lowest first: a package may import those before it, never those after it.
LAYERS = ("persistence", "tasks", "schema", "graphql_app")
# Modules every layer may import. They, and the packages holding them, import nothing of
# ours, so importing one loads nothing else.
LEAVES = frozenset({"persistence.settings"})


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    path: Path
    line: int

    def __str__(self) -> str:
        return f"{self.importer} imports {self.imported} ({self.path}:{self.line})"


def module_paths(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Every module of `packages` under `root`, by dotted name (a package by its own)."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def named(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> Iterator[str]:
    """The dotted names an import statement asks for: a module, or a name in one."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:
        parts = (module if is_package else module.rpartition(".")[0]).split(".")
        anchor = ".".join(parts[: len(parts) - node.level + 1])
        base = f"{anchor}.{base}" if base else anchor
    yield from (f"{base}.{alias.name}" for alias in node.names)


def owner(name: str, modules: dict[str, Path]) -> str | None:
    """The module of ours that importing `name` loads last, if any."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def find_imports(root: Path, packages: Iterable[str]) -> list[Import]:
    """Every import of one of our modules by another, wherever in a module it stands."""
    modules = module_paths(root, packages)
    found = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for name in named(node, module, path.name == "__init__.py"):
                imported = owner(name, modules)
                if imported is not None and imported != module:
                    found.append(Import(module, imported, path.relative_to(root), node.lineno))
    return found


def upward(imports: Iterable[Import], layers: tuple[str, ...], leaves: frozenset[str]) -> list[str]:
    """The imports that point up the layer table, or out of a leaf."""
    parts = [leaf.split(".") for leaf in leaves]
    sealed = leaves | {".".join(leaf[:end]) for leaf in parts for end in range(1, len(leaf))}
    wrong = []
    for found in imports:
        if found.importer in sealed:
            wrong.append(
                f"{found}: {found.importer} is (or holds) a leaf: it imports nothing of ours"
            )
            continue
        below = layers[: layers.index(found.importer.partition(".")[0]) + 1]
        if found.imported not in leaves and found.imported.partition(".")[0] not in below:
            wrong.append(f"{found}: {found.importer.partition('.')[0]} may import only {below}")
    return wrong


def cycles(imports: Iterable[Import]) -> list[str]:
    """One shortest cycle through each group of modules that import each other."""
    graph: dict[str, dict[str, Import]] = {}
    for found in imports:
        graph.setdefault(found.importer, {}).setdefault(found.imported, found)
    described = []
    for group in strongly_connected(graph):
        if len(group) > 1:
            path = shortest_cycle(min(group), graph, group)
            steps = [graph[a][b] for a, b in itertools.pairwise(path)]
            described.append(" -> ".join(path) + "\n    " + "\n    ".join(map(str, steps)))
    return described


def strongly_connected(graph: dict[str, dict[str, Import]]) -> list[set[str]]:
    """Tarjan's strongly connected components of `graph`."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for successor in graph.get(node, {}):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            group = {stack.pop()}
            while node not in group:
                group.add(stack.pop())
            groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def shortest_cycle(start: str, graph: dict[str, dict[str, Import]], group: set[str]) -> list[str]:
    """The shortest path from `start` back to itself inside `group`, breadth first."""
    paths = [[start]]
    seen = {start}
    while paths:
        path = paths.pop(0)
        for successor in sorted(graph.get(path[-1], {})):
            if successor == start:
                return [*path, start]
            if successor in group and successor not in seen:
                seen.add(successor)
                paths.append([*path, successor])
    raise AssertionError(f"{start} is in no cycle")


def test_no_module_imports_a_layer_above_it_or_out_of_the_settings_leaf() -> None:
    wrong = upward(find_imports(ROOT, LAYERS), LAYERS, LEAVES)
    if wrong:
        table = " < ".join(LAYERS)
        pytest.fail(f"imports pointing up the layer table ({table}):\n" + "\n".join(wrong))


# Inside graphql_app: which subpackages each may import (its own, and the modules at the
# package's root, come free). The CLI starts everything; the HTTP app mounts the WebSocket
# transport and the MCP server; those two stand alone.
EDGES = {
    "ws": frozenset(),
    "mcp": frozenset(),
    "http": frozenset({"ws", "mcp"}),
    "cli": frozenset({"http", "ws", "mcp"}),
}


def across_edges(imports: Iterable[Import], edges: dict[str, frozenset[str]]) -> list[str]:
    """The imports between graphql_app's subpackages that `edges` does not allow, and any
    import of a subpackage by a module at graphql_app's root."""
    wrong = []
    for found in imports:
        importer, imported = found.importer.split("."), found.imported.split(".")
        if importer[0] != "graphql_app" or imported[0] != "graphql_app":
            continue
        source = importer[1] if importer[1:2] and importer[1] in edges else None
        target = imported[1] if imported[1:2] and imported[1] in edges else None
        if target is None or source == target or (source and target in edges[source]):
            continue
        wrong.append(f"{found}: {source or 'the package root'} may not import {target}")
    return wrong


def test_graphql_apps_subpackages_import_only_those_below_them() -> None:
    wrong = across_edges(find_imports(ROOT, LAYERS), EDGES)
    if wrong:
        pytest.fail("imports across graphql_app's subpackages:\n" + "\n".join(wrong))


def test_no_module_reaches_itself_through_its_imports() -> None:
    found = cycles(find_imports(ROOT, LAYERS))
    if found:
        pytest.fail("import cycles (move the shared piece down):\n" + "\n".join(found))


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_the_walk_sees_function_level_relative_and_type_checking_imports(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "low/__init__.py": "",
            "low/config.py": "",
            "low/store.py": "def load():\n    from high import views\n",
            "high/__init__.py": "",
            "high/views.py": "from . import forms\nfrom low.config import X\n",
            "high/forms.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .views import V\n"
            ),
        },
    )
    imports = find_imports(tmp_path, ("low", "high"))

    assert sorted(map(str, imports)) == [
        "high.forms imports high.views (high/forms.py:3)",
        "high.views imports high.forms (high/views.py:1)",
        "high.views imports low.config (high/views.py:2)",
        "low.store imports high.views (low/store.py:2)",
    ]
    assert upward(imports, ("low", "high"), frozenset({"low.config"})) == [
        "low.store imports high.views (low/store.py:2): low may import only ('low',)"
    ]
    assert cycles(imports) == [
        "high.forms -> high.views -> high.forms\n"
        "    high.forms imports high.views (high/forms.py:3)\n"
        "    high.views imports high.forms (high/views.py:1)"
    ]


def test_a_leaf_and_its_package_import_nothing_of_ours(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "low/__init__.py": "from low import store\n",
            "low/config.py": "import low.store\n",
            "low/store.py": "",
        },
    )

    assert upward(find_imports(tmp_path, ("low",)), ("low",), frozenset({"low.config"})) == [
        "low imports low.store (low/__init__.py:1): low is (or holds) a leaf: it imports "
        "nothing of ours",
        "low.config imports low.store (low/config.py:1): low.config is (or holds) a leaf: "
        "it imports nothing of ours",
    ]


# Inside tasks: the API's services and the registry of kinds never import the worker
# runtime, so the API process loads neither it nor what its work bodies need.
API_SIDE = ("tasks.services", "tasks.kinds")


def into_the_worker(imports: Iterable[Import], api_side: tuple[str, ...]) -> list[str]:
    """The imports from an API-side package of tasks into tasks.worker."""
    return [
        f"{found}: {found.importer} is API-side and may not import the worker"
        for found in imports
        if found.importer.startswith(api_side)
        and (found.imported == "tasks.worker" or found.imported.startswith("tasks.worker."))
    ]


def test_the_services_and_the_kinds_never_import_the_worker() -> None:
    wrong = into_the_worker(find_imports(ROOT, LAYERS), API_SIDE)
    if wrong:
        pytest.fail("imports from the API's side of tasks/ into the worker:\n" + "\n".join(wrong))


# What a worker needs and the API must not load: the image and table libraries (their
# import alone costs the API memory and start-up time) and the worker runtime.
WORKER_ONLY_MODULES = ("PIL", "pandas", "numpy", "tasks.worker")


def test_the_api_app_loads_no_worker_runtime_pillow_or_pandas() -> None:
    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, graphql_app.http.app\n"
            f"print(sorted(m for m in {WORKER_ONLY_MODULES!r} if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        timeout=120,
    )

    assert shown.stdout.strip() == "[]"
