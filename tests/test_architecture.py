"""The architecture's rules that import-linter's contracts do not express (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("nas", "search_spaces", "predictors", "kernels", "services")


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.find_modules_directly_imported_by(v):
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

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_module_imports_itself_through_others() -> None:
    """No import cycle between modules, function-local imports included (only type-checking ones are not)."""
    graph = grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True)
    assert _cycles(graph) == []


def test_no_code_outside_a_space_folder_compares_a_space_name() -> None:
    pattern = re.compile(
        r'(==|!=) *"(ofa_mbv3|ofa_resnet50|nb201)"|"(ofa_mbv3|ofa_resnet50|nb201)" *(==|!=)'
        r'|\.name *(==|!=|not in|in) *\(?"'
    )
    offending = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            relative = path.relative_to(ROOT).as_posix()
            if relative.startswith(("search_spaces/ofa_mbv3/", "search_spaces/ofa_resnet50/", "search_spaces/nb201/")):
                continue
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                if pattern.search(line):
                    offending.append(f"{relative}:{number}: {line.strip()}")
    assert offending == []
