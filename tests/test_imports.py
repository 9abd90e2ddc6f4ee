"""The project's modules import without side effects and form no import cycle.

Every product module (app.py, checkpoints.py, demos/, checks/, offline/, training/, tools/, bench/) is imported, in a
fresh process: each script guards its work behind `if __name__ == "__main__"`, so importing one starts no server and
writes nothing in the tree. The import graph counts every import statement, those inside functions too (a lazy import
hides a cycle from Python until the function runs, not from the design), and app.py's import of each concept's tab
module by its name in CONCEPT_TABS.
"""

import ast
import subprocess
import sys

import pytest
from conftest import ROOT

import app

PACKAGES = ("demos", "checks", "offline", "training", "tools", "bench")
TOP_LEVEL = ("app", "checkpoints")


def _modules() -> dict[str, object]:
    """Each project module's dotted name and its file."""
    files = [ROOT / f"{name}.py" for name in TOP_LEVEL]
    files += sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))
    modules = {}
    for path in files:
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _imported(name: str, path) -> set[str]:
    """The project modules `name`'s file imports, anywhere in it (a function's imports too): for `from a import b`,
    `a.b` where that is a module, else `a`."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.update(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names)
    return {_project_module(imported) for imported in found} - {None, name}


def _project_module(dotted: str) -> str | None:
    """The project module `dotted` names (the longest prefix that is one), or None for a library."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in MODULES:
            return ".".join(parts[:end])
    return None


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


def import_graph() -> dict[str, set[str]]:
    graph = {name: _imported(name, path) for name, path in MODULES.items()}
    graph["app"] |= {f"demos.tabs.{name}" for name in app.CONCEPT_TABS}  # importlib.import_module, by name
    return graph


def test_the_cycle_finder_finds_a_cycle_and_only_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_among_the_projects_modules():
    graph = import_graph()
    cycles = _cycles(graph)
    described = ["; ".join(f"{name} -> {', '.join(sorted(graph[name] & set(cycle)))}" for name in cycle)
                 for cycle in cycles]
    assert not cycles, "import cycles (module -> the modules of its cycle it imports):\n" + "\n".join(described)


def _tree_status() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout


@pytest.mark.slow  # a process that imports gradio, torch and transformers
def test_every_module_imports_in_a_fresh_process_and_writes_nothing():
    before = _tree_status()
    imports = "; ".join(f"import {name}" for name in sorted(MODULES))
    done = subprocess.run([sys.executable, "-B", "-c", imports], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert _tree_status() == before
