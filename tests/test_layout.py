"""The folder tree tells the design: modules stay small, functions short, and the README's layout names every part."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _python_files() -> list[Path]:
    files = [ROOT / "app.py", ROOT / "medcot.py"]
    for folder in ("medcot_ui", "jobs", "tests", "bench", "scripts"):
        files += (ROOT / folder).rglob("*.py")
    # Alembic writes its migrations; their length follows the schema, not our design.
    return sorted(p for p in files if "versions" not in p.relative_to(ROOT).parts)


def test_no_module_is_over_400_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for p in _python_files()
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"split these by responsibility: {long}"


def test_no_function_is_over_60_lines() -> None:
    long = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "extract named steps from: " + "; ".join(long)


def test_the_readme_layout_names_every_package_and_top_level_module() -> None:
    readme = (ROOT / "README.md").read_text()
    layout = re.search(r"## Layout\n+```\n(.*?)```", readme, re.S)
    assert layout, "README.md has no Layout section"
    text = layout.group(1)
    package = ROOT / "medcot_ui"
    parts = [p.name + "/" for p in package.iterdir() if p.is_dir() and (p / "__init__.py").exists()]
    parts += [p.name for p in package.glob("*.py") if p.name != "__init__.py"]
    parts += ["migrations/", "app.py", "medcot.py", "jobs/", "bench/", "tests/"]
    missing = [name for name in parts if name not in text]
    assert not missing, f"README layout does not mention {missing}"


def test_the_core_imports_no_gradio_no_tab_and_no_job() -> None:
    """Arrows point one way: tabs -> core + jobs, jobs -> core; the core never imports upward."""
    offenders = []
    for path in (ROOT / "medcot_ui").rglob("*.py"):
        if "tabs" in path.relative_to(ROOT).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                if name.split(".")[0] in {"gradio", "jobs"} or name.startswith("medcot_ui.tabs"):
                    offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    for path in (ROOT / "jobs").rglob("*.py"):
        if re.search(r"^\s*(import|from) gradio", path.read_text(), re.M):
            offenders.append(f"{path.relative_to(ROOT)} imports gradio")
    assert not offenders, offenders
