"""The shape of the package: no import cycles, the layers of docs/architecture.md, and modules
small enough to read whole."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grimp
import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "signoff"
#: the longest a module may grow (docs/architecture.md, "House style")
MAX_LINES = 470


def strongly_connected(graph: grimp.ImportGraph) -> list[list[str]]:
    """Every group of modules that import each other (Tarjan's algorithm, without recursion)."""
    state = _Tarjan(graph)
    for module in sorted(graph.modules):
        if module not in state.index:
            state.visit(module)
    return state.groups


class _Tarjan:
    def __init__(self, graph: grimp.ImportGraph) -> None:
        self.graph = graph
        self.index: dict[str, int] = {}
        self.low: dict[str, int] = {}
        self.stack: list[str] = []
        self.on_stack: set[str] = set()
        self.groups: list[list[str]] = []

    def _enter(self, node: str) -> tuple[str, Iterator[str]]:
        self.index[node] = self.low[node] = len(self.index)
        self.stack.append(node)
        self.on_stack.add(node)
        return node, iter(sorted(self.graph.find_modules_directly_imported_by(node)))

    def visit(self, root: str) -> None:
        work = [self._enter(root)]
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    parent = work[-1][0]
                    self.low[parent] = min(self.low[parent], self.low[node])
                self._close(node)
            elif child not in self.index:
                work.append(self._enter(child))
            elif child in self.on_stack:
                self.low[node] = min(self.low[node], self.index[child])

    def _close(self, node: str) -> None:
        if self.low[node] != self.index[node]:
            return
        group = []
        while True:
            member = self.stack.pop()
            self.on_stack.discard(member)
            group.append(member)
            if member == node:
                break
        if len(group) > 1:
            self.groups.append(sorted(group))


@pytest.mark.parametrize("type_checking", [False, True], ids=["runtime", "with type-checking"])
def test_the_package_has_no_import_cycle(type_checking: bool) -> None:
    graph = grimp.build_graph(
        "signoff", exclude_type_checking_imports=not type_checking, cache_dir=None
    )
    assert strongly_connected(graph) == []


def test_a_planted_cycle_is_found() -> None:
    """The cycle check itself: a graph with a cycle is reported."""
    graph = grimp.ImportGraph()
    for name in ("a", "a.b", "a.c", "a.d"):
        graph.add_module(name)
    graph.add_import(importer="a.b", imported="a.c")
    graph.add_import(importer="a.c", imported="a.d")
    graph.add_import(importer="a.d", imported="a.b")
    assert strongly_connected(graph) == [["a.b", "a.c", "a.d"]]


def test_imports_point_down_the_layers() -> None:
    result = subprocess.run(
        [Path(sys.executable).parent / "lint-imports", "--no-cache"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_modules_are_small_enough_to_read_whole() -> None:
    long = {
        str(path.relative_to(SRC)): n
        for path in SRC.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
