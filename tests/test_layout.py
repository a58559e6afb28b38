"""The layout rules of docs/ARCHITECTURE.md, checked on the source: no import cycle
between ovencast's modules (imports inside functions and under TYPE_CHECKING count),
small training modules, decisions in docs/decisions/ instead of constants, and every job
or run state spelled once, in its enum."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

from ovencast.jobs.states import JobStatus, RunStatus

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "ovencast"
MAX_TRAINING_MODULE_LINES = 300
FROZEN = ("migrations/versions/",)  # migrations are snapshots of their day


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(module: str, path: Path, modules: dict[str, Path]) -> Iterator[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                     for alias in node.names]
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                yield name


def _a_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of the graph (module -> the modules it imports), [] if none."""
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as exc:
        return list(exc.args[1])
    return []


def test_no_import_cycle_among_ovencast_modules() -> None:
    modules = _modules()
    graph = {name: set(_imports(name, path, modules)) for name, path in modules.items()}
    assert _a_cycle(graph) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    assert sorted(set(_a_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}))) == [
        "a", "b", "c"]


def test_no_training_module_is_over_300_lines() -> None:
    sizes = {path.name: len(path.read_text(encoding="utf-8").splitlines())
             for path in (PACKAGE / "training").glob("*.py")}
    assert {name: n for name, n in sizes.items() if n > MAX_TRAINING_MODULE_LINES} == {}


def _sources() -> Iterator[tuple[str, str]]:
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE).as_posix()
        if not relative.startswith(FROZEN):
            yield relative, path.read_text(encoding="utf-8")


def test_no_decision_constants_in_the_code() -> None:
    assert [name for name, text in _sources() if "_DECISION" in text] == []


@pytest.mark.parametrize("state", sorted({*JobStatus, *RunStatus}))
def test_each_state_is_spelled_only_in_its_enum(state: str) -> None:
    literal = re.compile(rf"""['"]{re.escape(state)}['"]""")
    assert [name for name, text in _sources()
            if literal.search(text) and name != "jobs/states.py"] == []
