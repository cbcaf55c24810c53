"""The import rules of docs/architecture.md ("Layers"), checked on the source: arrows point one way.

Every import counts, those inside functions too (a lazy import still ties two modules together).
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOUNDATIONS = ("settings", "redact", "errors", "units", "textfiles", "record_files")
FEATURES = ("data", "training", "compare", "evaluate", "reinforce", "runs", "publish", "hosting", "tabs")
# What a tab may take from jobs/: the queue's public actions (cancel, resume, delete...). Enqueueing goes through
# medcot_ui.jobkinds; job processes (train, evaluate, worker...) are started by the worker only.
TAB_JOB_MODULES = {"jobs.queue"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports (``from a.b import c`` counts as a.b and a.b.c: c may be a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def sources(folder: str) -> dict[str, Path]:
    return {module_name(p): p for p in (ROOT / folder).rglob("*.py") if "versions" not in p.parts}


def test_no_tab_imports_a_job_module_but_the_queue() -> None:
    offenders = [f"{name} imports {imported}" for name, path in sources("medcot_ui/tabs").items()
                 for imported in imports_of(path)
                 if imported.split(".")[0] == "jobs" and imported != "jobs" and imported not in TAB_JOB_MODULES
                 and not any(imported.startswith(m + ".") for m in TAB_JOB_MODULES)]
    assert not offenders, offenders


def test_the_queue_imports_no_feature_package() -> None:
    imported = imports_of(ROOT / "jobs" / "queue.py")
    features = sorted(m for m in imported if m.split(".")[:2][-1] in FEATURES and m.startswith("medcot_ui."))
    assert not features, f"jobs/queue.py reaches feature packages {features}: resolve them through jobkinds"
    assert "medcot_ui.store" in imported  # the scan sees the queue's imports at all


def test_the_foundations_import_nothing_of_the_application_but_the_base_error() -> None:
    offenders = [f"{name} imports {imported}" for name in FOUNDATIONS
                 for imported in imports_of(ROOT / "medcot_ui" / f"{name}.py")
                 if imported.split(".")[0] in {"medcot_ui", "jobs"} and not imported.startswith("medcot_ui.errors")]
    assert not offenders, offenders


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [node, nxt] if nxt in path else [node, nxt]
            if not state.get(nxt) and (found := visit(nxt, path + [node])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if not state.get(start) and (found := visit(start, [])):
            return found
    return None


def test_no_import_cycles_in_the_application() -> None:
    modules = sources("medcot_ui")
    graph = {name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()}
    assert len(graph) > 50
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_cycle_finder_finds_a_cycle() -> None:
    # data/hub.py and data/load.py imported each other before errors.py held DataError.
    assert _cycle({"hub": {"load"}, "load": {"hub"}, "x": set()}) == ["hub", "load", "hub"]
