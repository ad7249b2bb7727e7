"""Print the import graph of a package (``identification/`` by default) and check that it stays layered.

Every ``import`` and ``from ... import`` statement counts, at module level and inside functions alike
(a function-local import hides a cycle from Python, not from a reader). An edge is drawn to the module
named (``from .pipeline import cache`` is an edge to ``identification.pipeline.cache`` when that is a
module, else to ``identification.pipeline``); the implicit import of a parent package is not an edge.

Exits 1 when the graph has a cycle, or when a module imports another module's private name: either
``from x import _name`` or ``x._name`` on a project module ``x`` it imported (``ml``, ``submissions``,
``whalesite`` and the package itself count as the project). Prints "no cycles, no private imports"
otherwise. Standard library only, so it runs before anything is installed:

    python scripts/import_graph.py [package_dir]
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECT = {"identification", "ml", "submissions", "whalesite", "accounts", "follows", "api"}  # plus the package scanned


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    base = ROOT.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def absolute(node: ast.ImportFrom, current: str, is_package: bool) -> str:
    """The absolute module a ``from`` import reads from."""
    if not node.level:
        return node.module or ""
    parts = current.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


class Imports(ast.NodeVisitor):
    """The project modules one file imports (with the line and whether inside a function), and its
    uses of other modules' private names."""

    def __init__(self, current: str, is_package: bool):
        self.current, self.is_package = current, is_package
        self.edges: dict[str, list[tuple[int, bool]]] = {}
        self.private: list[str] = []
        self.aliases: dict[str, str] = {}  # local name -> project module
        self.depth = 0

    def _edge(self, target: str, line: int) -> None:
        if target.split(".")[0] in PROJECT and target != self.current:
            self.edges.setdefault(target, []).append((line, self.depth > 0))

    def visit_FunctionDef(self, node):
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Import(self, node: ast.Import):
        for alias in node.names:
            self._edge(alias.name, node.lineno)
            if alias.name.split(".")[0] in PROJECT:  # ``import a.b`` binds ``a``; ``import a.b as c`` binds ``c``
                self.aliases[alias.asname or alias.name.split(".")[0]] = (
                    alias.name if alias.asname else alias.name.split(".")[0]
                )

    def visit_ImportFrom(self, node: ast.ImportFrom):
        source = absolute(node, self.current, self.is_package)
        if source.split(".")[0] not in PROJECT:
            return
        for alias in node.names:
            full = f"{source}.{alias.name}"
            if is_module(full):
                self._edge(full, node.lineno)
                self.aliases[alias.asname or alias.name] = full
            else:
                self._edge(source, node.lineno)
                if is_private(alias.name):
                    self.private.append(f"{self.current}:{node.lineno} imports {alias.name} from {source}")

    def visit_Attribute(self, node: ast.Attribute):
        if isinstance(node.value, ast.Name) and node.value.id in self.aliases and is_private(node.attr):
            self.private.append(f"{self.current}:{node.lineno} uses {self.aliases[node.value.id]}.{node.attr}")
        self.generic_visit(node)


def scan(package: Path):
    graph: dict[str, dict[str, list[tuple[int, bool]]]] = {}
    private: list[str] = []
    PROJECT.add(module_name(package / "__init__.py").split(".")[0])
    for path in sorted(package.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        name = module_name(path)
        visitor = Imports(name, path.name == "__init__.py")
        visitor.visit(ast.parse(path.read_text(), str(path)))
        graph[name] = visitor.edges
        private += visitor.private
    return graph, private


def cycles(graph: dict[str, dict]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), inside the scanned package."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in graph:
                continue
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
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            visit(v)
    return found


def main(argv: list[str]) -> int:
    package = Path(argv[1]).resolve() if len(argv) > 1 else ROOT / "identification"
    graph, private = scan(package)
    for name, edges in graph.items():
        inside = sorted(t for t in edges if t in graph)
        local = sorted(t for t in inside if all(in_function for _, in_function in edges[t]))
        line = ", ".join(f"{t} (in a function)" if t in local else t for t in inside)
        print(f"{name} -> {line or '-'}")
    problems = cycles(graph)
    for component in problems:
        print("cycle: " + " <-> ".join(component))
    for item in private:
        print("private import: " + item)
    if problems or private:
        return 1
    print("no cycles, no private imports")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
