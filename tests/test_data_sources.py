"""Sources: without a network the Hub fails fast and plainly; the training process reads data through the
same loader as the Dataset tab; the held-out split is seeded; the fingerprint names what was trained on."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, child_env, cli, demo_config_file

from medcot_ui.training.config import DataSettings
from medcot_ui.data.load import fingerprint, held_out_indices, prepare, read_file
from medcot_ui.errors import DataError
from medcot_ui.data.stats import tokenizer_for
from medcot_ui.store import get_run

HUB_PROBE = """
import json, time
from medcot_ui.training.config import DataSettings
from medcot_ui.data.report import analyse, status_markdown
started = time.monotonic()
report = analyse(DataSettings(), "demo:tiny-llama", 2048)
print(json.dumps({"seconds": time.monotonic() - started, "unreachable": report.hub_unreachable,
                  "error": report.error, "status": status_markdown(report)}))
"""


@pytest.mark.parametrize("offline_mode", [False, True], ids=["network-down", "HF_HUB_OFFLINE"])
def test_without_a_network_loading_from_the_hub_says_so_quickly_and_offers_demo_data_and_upload(
        home: Path, offline_mode: bool) -> None:
    env = child_env()
    env.pop("HF_HUB_OFFLINE", None)
    if offline_mode:
        env["HF_HUB_OFFLINE"] = "1"
    out = subprocess.run([sys.executable, "-c", HUB_PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["unreachable"] is True
    assert result["error"].startswith("The Hugging Face Hub is unreachable from this machine")
    assert "'FreedomIntelligence/medical-o1-reasoning-SFT' cannot be loaded" in result["error"]
    assert "Use the bundled demo data or upload a file instead." in result["error"]
    assert "Load the demo data" in result["status"] and "upload a file" in result["status"]
    # datasets on its own retries for about 25 s here before giving up.
    assert result["seconds"] < 10, result


def test_the_training_process_reports_a_broken_data_file_with_the_loaders_line_number(home: Path,
                                                                                      tmp_path: Path) -> None:
    data = tmp_path / "rows.jsonl"
    good = {"Question": "q", "Complex_CoT": "r", "Response": "a"}
    data.write_text(json.dumps(good) + "\n" + '{"Question": "q2", "Complex_CoT": }\n', encoding="utf-8")
    config = demo_config_file(tmp_path / "run.yaml", **{"data.source": "file", "data.file_path": str(data)})
    out = cli("train", str(config), check=False)
    assert out.returncode == 1
    run = get_run(1)
    assert run is not None and run.status == "failed"
    with pytest.raises(DataError) as direct:
        read_file(data)
    assert run.error == str(direct.value) == "rows.jsonl: line 2 is not valid JSON at column 35 (expecting value)"


def test_the_held_out_split_is_seeded_and_sized_by_the_user(home: Path) -> None:
    tok = tokenizer_for("demo:tiny-llama").tokenizer
    first = prepare(DataSettings(source="demo", split="train", eval_size=12, split_seed=7), tok)
    again = prepare(DataSettings(source="demo", split="train", eval_size=12, split_seed=7), tok)
    other = prepare(DataSettings(source="demo", split="train", eval_size=12, split_seed=8), tok)
    assert first.eval_indices == again.eval_indices != other.eval_indices
    assert len(first.eval_rows) == 12 and len(first.train_rows) == 108
    assert first.eval_rows == [first.rows[i] for i in first.eval_indices]
    assert not set(first.eval_rows) & set(first.train_rows)
    assert held_out_indices(120, 0, 7) == []


def test_holding_out_every_row_is_an_error_naming_eval_size() -> None:
    with pytest.raises(DataError, match=r"eval_size: 120 held-out rows leaves nothing to train on \(120 rows\)"):
        held_out_indices(120, 120, 1)


def test_the_fingerprint_changes_with_source_content_slice_mapping_template_and_split(tmp_path: Path) -> None:
    base = DataSettings(source="demo", split="train", eval_size=4)
    seen = {fingerprint(base, "sha256:aaa")}
    for data, content in [(base, "sha256:bbb"),
                          (base.model_copy(update={"split": "train[0:50]"}), "sha256:aaa"),
                          (base.model_copy(update={"answer_column": "answer"}), "sha256:aaa"),
                          (base.model_copy(update={"template": "chat_template"}), "sha256:aaa"),
                          (base.model_copy(update={"eval_size": 5}), "sha256:aaa"),
                          (base.model_copy(update={"split_seed": 1}), "sha256:aaa")]:
        value = fingerprint(data, content)
        assert value not in seen
        seen.add(value)
    assert fingerprint(base, "sha256:aaa") in seen  # and it is stable


def test_a_slice_of_an_uploaded_file_is_applied_like_a_hub_slice(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({"Question": f"q{i}", "Complex_CoT": "r", "Response": "a"}) + "\n"
                            for i in range(10)), encoding="utf-8")
    tok = tokenizer_for("demo:tiny-llama").tokenizer
    prepared = prepare(DataSettings(source="file", file_path=str(path), split="train[2:5]"), tok)
    assert [r.question for r in prepared.rows] == ["q2", "q3", "q4"]
    assert prepared.source == "rows.jsonl (train[2:5])"


def test_time_to_first_unreachable_answer_does_not_depend_on_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """A resolver that hangs (some offline networks) is cut off by the probe's own deadline."""
    import socket

    from medcot_ui.data.hub import hub_reachable

    def hang(*_: object, **__: object) -> None:
        time.sleep(5)
        raise socket.gaierror("the resolver gave up")

    monkeypatch.setattr(socket, "getaddrinfo", hang)
    started = time.monotonic()
    assert hub_reachable(timeout=1.0) is False
    assert time.monotonic() - started < 3
