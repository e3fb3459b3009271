"""The package structure holds (docs/architecture.md): no import cycle between the packages of tuneforge, and
torch and its libraries only where a model runs. Read from the source with `ast`, so nothing is imported.

A "package" is the first name under tuneforge/ (a subpackage or a top-level module). Every import counts,
lazy ones inside functions included: a cycle through a lazy import is still a cycle of the design.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "tuneforge"
HEAVY = {"torch", "transformers", "peft", "sentence_transformers", "trl", "vllm"}
HEAVY_ALLOWED = {"inference", "training", "evaluation"}  # the packages whose code runs in torch processes
# package -> the only packages it may import (beyond the standard library and third-party libraries)
ALLOWED_IMPORTS = {
    "inference": {"errors", "processes"},  # the model side: the parent-side packages build on it, never the reverse
}
# package -> the only packages that may import it
ALLOWED_IMPORTERS = {
    # Bedrock's shapes stay at the edge; a batch job's records are InvokeModel/Converse bodies in files, so its process
    # reads and writes them with the same codecs as the API (wire.bodies, wire.batch)
    "wire": {"api", "cli", "batch", "console"},  # the console: the tree's HTTP statuses (wire.errors)
    "api": {"cli"},
    "console": {"api"},  # the web console is mounted by the server; it never imports api/ (that would be a cycle)
    "cli": {"__main__"},
}


def _modules() -> list[tuple[str, Path]]:
    return [(path.relative_to(ROOT).parts[0].removesuffix(".py"), path) for path in sorted(ROOT.rglob("*.py"))
            if "migrations" not in path.parts]


def _imports(path: Path) -> list[str]:
    """Absolute names of every module `path` imports (relative imports resolved)."""
    parts = ["tuneforge", *path.relative_to(ROOT).with_suffix("").parts]
    package = parts[:-1]  # what a relative import is relative to (for __init__.py: its own package)
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            names.append(base)
            names += [f"{base}.{alias.name}" for alias in node.names]  # `from tuneforge import jobs` names a package
    return names


def _graph() -> dict[str, set[str]]:
    packages = {name for name, _ in _modules()}
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in _modules():
        for imported in _imports(path):
            parts = imported.split(".")
            if parts[0] == "tuneforge" and len(parts) > 1 and parts[1] in packages and parts[1] != name:
                graph[name].add(parts[1])
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in list(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_between_packages():
    cycles = _cycles(_graph())
    assert cycles == [], "import cycles between packages: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_heavy_libraries_are_imported_only_where_models_run():
    heavy = sorted({f"{path.relative_to(ROOT.parent)}: {imported.split('.')[0]}" for name, path in _modules() if name not in HEAVY_ALLOWED
                    for imported in _imports(path) if imported.split(".")[0] in HEAVY})
    assert heavy == [], f"torch and its libraries belong in {', '.join(sorted(HEAVY_ALLOWED))}/: " + "; ".join(heavy)


def test_packages_import_only_what_their_rule_allows():
    graph = _graph()
    wrong = [f"{package} imports {other}" for package, allowed in ALLOWED_IMPORTS.items() for other in sorted(graph[package] - allowed)]
    wrong += [f"{importer} imports {package}" for package, importers in ALLOWED_IMPORTERS.items()
              for importer in sorted(graph) if package in graph[importer] and importer not in importers]
    assert wrong == [], "; ".join(wrong)


def test_the_check_sees_imports_of_every_kind():
    # the rule is only as good as its parser: lazy, relative and package-level imports all count
    assert "tuneforge.inference.worker" in _imports(ROOT / "evaluation" / "run.py")  # a lazy import inside run()
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
