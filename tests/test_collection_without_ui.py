"""The GPU test suite must start on a bare GPU machine: no gradio, gradio_client or itsdangerous there (the GPU
image has torch/transformers/peft and the wheels we carry), and no GPU test may hang a device call.

Collects the GPU test modules in a child pytest with those packages made unimportable, and checks that every
GPU test is collected and carries its own time limit (pytest-timeout fails it instead of letting it hang).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, child_env

UI_ONLY = ("gradio", "gradio_client", "itsdangerous")
GPU_TESTS = sorted(p.name for p in (ROOT / "tests").glob("test_*gpu*.py"))
GPU_MARK = re.compile(r"^(pytestmark = .*|@)pytest\.mark\.gpu", re.M)
MAX_TEST_SECONDS = 300  # two GPU calls of 9 minutes hold the whole suite and the benches

BLOCKER = f"""
import importlib.abc, sys

class BlockUiPackages(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {UI_ONLY!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked: not on the GPU machine)", name=name)
        return None

sys.meta_path.insert(0, BlockUiPackages())
"""

COLLECT = """
import json, sys, pytest

class Items:
    def pytest_collection_finish(self, session):
        self.items = [(i.nodeid, [m.args[0] for m in i.iter_markers("timeout")], "gpu" in i.keywords)
                      for i in session.items]

items = Items()
code = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", *sys.argv[1:]], plugins=[items])
print("ITEMS=" + json.dumps(getattr(items, "items", [])))
sys.exit(code)
"""


def test_the_gpu_tests_collect_without_the_ui_packages_and_each_has_a_time_limit(tmp_path: Path) -> None:
    assert GPU_TESTS, "no tests/test_*gpu*.py found"
    marked = sorted(p.name for p in (ROOT / "tests").glob("test_*.py") if GPU_MARK.search(p.read_text()))
    assert marked == GPU_TESTS, "a GPU test module must be named test_*gpu*.py so the GPU run collects it alone"

    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    env = child_env()
    env["PYTHONPATH"] = f"{tmp_path}:{env['PYTHONPATH']}"
    probe = subprocess.run([sys.executable, "-c", "import gradio"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and "blocked" in probe.stderr, "the blocker must really hide gradio"

    proc = subprocess.run([sys.executable, "-c", COLLECT, *(f"tests/{name}" for name in GPU_TESTS)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, f"collection failed without {UI_ONLY}:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
    items = json.loads(proc.stdout.split("ITEMS=")[-1])
    assert items and all(gpu for _, _, gpu in items), items
    for nodeid, limits, _ in items:
        assert limits and 0 < limits[0] <= MAX_TEST_SECONDS, f"{nodeid}: needs @pytest.mark.timeout(<= 300 s)"
