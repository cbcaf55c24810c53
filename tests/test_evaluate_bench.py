"""The evaluation throughput bench runs end to end on the CPU with the demo model (--tiny): a table and its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, child_env


def test_the_throughput_bench_measures_eval_and_plain_generate_per_side_and_batch(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "bench/eval_throughput.py", str(tmp_path / "out"), "--tiny",
                           "--work", str(tmp_path / "work"), "--tokens", "4", "--batches", "1", "2",
                           "--repeats", "1"], cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "out" / "eval_throughput.json").read_text())
    assert [(r["side"], r["batch"]) for r in result["rows"]] == [("base", 1), ("tuned", 1), ("base", 2), ("tuned", 2)]
    for row in result["rows"]:
        assert row["eval_tokens_per_s"] > 0 and row["plain_tokens_per_s"] > 0
        assert row["ratio"] == pytest.approx(row["eval_tokens_per_s"] / row["plain_tokens_per_s"], rel=0.02)
    assert "eval tok/s" in proc.stdout and "gradio" not in proc.stderr
