"""The evaluation throughput bench runs end to end on the CPU with the demo model (--tiny): each path in its own
process, a table with the ratio to the old path, and its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, child_env


def test_the_throughput_bench_measures_the_engine_and_the_old_path_on_one_workload(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "bench/eval_throughput.py", str(tmp_path / "out"), "--tiny",
                           "--work", str(tmp_path / "work"), "--questions", "12", "--old-questions", "4",
                           "--prompt-tokens", "20", "--min-answer", "4", "--max-new", "12",
                           "--paths", "engine", "old"], cwd=ROOT, env=child_env(), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads((tmp_path / "out" / "eval_throughput.json").read_text())["rows"]
    engine, old = rows
    assert engine["path"].startswith("engine") and engine["requests"] == 24 and old["requests"] == 8
    # Forced lengths: every request produces exactly its drawn length, so both count the same first 4 questions.
    assert 4 * 2 * 4 <= old["useful_tokens"] <= 4 * 2 * 12 and engine["useful_tokens"] >= 24 * 4
    assert engine["tokens_per_s"] > 0 and old["tokens_per_s"] > 0
    assert "engine / old:" in proc.stdout and "gradio" not in proc.stderr
