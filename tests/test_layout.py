"""The apps' layout as a newcomer meets it: no import cycles, small modules, torch-free parts."""

import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ("styletransfer", "stylerec")
MAX_LINES = 450
# Tasks send through services and call them: the one pair Celery's shape makes mutual.
ALLOWED_CYCLES = {frozenset({"styletransfer.services", "styletransfer.tasks"})}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def app_modules(app: str) -> dict[str, Path]:
    return {
        module_name(path): path
        for path in (ROOT / app).rglob("*.py")
        if "migrations" not in path.parts
    }


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules of `known` that `path` imports, at the top or inside functions alike."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import module` imports the module, not (only) the package's own names.
            submodules = [f"{base}.{alias.name}" for alias in node.names]
            named = [m for m in submodules if m in known]
            targets = named if len(named) == len(submodules) else [base, *named]
        else:
            continue
        for target in targets:
            if node.__class__ is ast.Import and target not in known:
                target = target.rpartition(".")[0] if target.rpartition(".")[0] in known else target
            if target in known and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {}
    for app in APPS:
        modules.update(app_modules(app))
    known = set(modules)
    return {name: imports_of(name, path, known) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target in graph:
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
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_inside_either_app():
    unexpected = [c for c in cycles(import_graph()) if frozenset(c) not in ALLOWED_CYCLES]
    assert unexpected == []


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


@pytest.mark.parametrize("app", APPS)
def test_no_module_is_longer_than_a_newcomer_reads_at_once(app):
    long = {
        name: lines
        for name, path in app_modules(app).items()
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_stylerec_shows_its_subsystems_in_few_top_level_modules():
    top_level = sorted(path.name for path in (ROOT / "stylerec").glob("*.py"))
    assert len(top_level) <= 14, top_level


def test_the_engines_import_no_django():
    engines = {
        name: path for name, path in app_modules("styletransfer").items() if ".engines" in name
    }
    for name, path in engines.items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            modules = []
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                modules = [node.module or ""]
            for module in modules:
                assert not module.startswith(("django", "stylerec", "rest_framework")), name
                assert not module.startswith("styletransfer.") or module.startswith(
                    "styletransfer.engines"
                ), name


def test_stylerec_never_imports_torch_and_styletransfer_never_imports_stylerec():
    for name, path in app_modules("stylerec").items():
        assert "import torch" not in path.read_text(), name
    graph = import_graph()
    for name, targets in graph.items():
        if name.startswith("styletransfer"):
            assert not any(t.startswith("stylerec") for t in targets), name


def test_every_system_check_has_an_id_of_its_own():
    """A check id is what a shop silences (SILENCED_SYSTEM_CHECKS) and what the README names."""
    pattern = re.compile(r'id="((?:stylerec|styletransfer)\.[EW]\d{3})"')
    ids = [
        found
        for package in ("stylerec", "styletransfer")
        for path in (ROOT / package).rglob("*.py")
        for found in pattern.findall(path.read_text())
    ]
    assert ids, "the apps register checks"
    assert sorted(i for i in set(ids) if ids.count(i) > 1) == []
