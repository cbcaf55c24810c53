"""Local exports of the demo run: exact file sets, a merge that keeps the model's outputs, GGUF that llama.cpp runs."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import torch

import importlib.util

from medcot_ui.publish import gguf, gguf_build, merge, records

from medcot_ui.publish import export as publish
from medcot_ui.publish import records

from medcot_ui.publish import view as publish_view
from medcot_ui.store import get_run

TOKENIZER = {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja"}
CARD = {"README.md", "loss_curve.png", "training_config.yaml"}


def test_the_adapter_export_holds_exactly_the_adapter_tokenizer_and_card_and_zips_them(demo_run: int) -> None:
    seen: list[str] = []
    outcome = publish.export_local(demo_run, "adapter", progress=lambda f, d: seen.append(d))

    expected = CARD | TOKENIZER | {"adapter_config.json", "adapter_model.safetensors"}
    assert set(outcome.files) == expected
    assert {p.name for p in outcome.folder.iterdir()} == expected, "no checkpoints, optimizer states or logs"
    (download,) = outcome.downloads
    assert download.path.name == "quick-demo-adapter.zip" and download.size == download.path.stat().st_size
    with zipfile.ZipFile(download.path) as z:
        assert set(z.namelist()) == expected
    assert seen[-1] == "Exported"
    (row,) = records.publishes_for_run(demo_run)
    assert (row.kind, row.destination, row.status, row.target) == ("adapter", "local", "succeeded",
                                                                    str(outcome.folder))
    assert set(json.loads(row.files_json)) == expected


def _logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(ids).logits.float()


def test_a_merged_model_gives_the_logits_of_base_plus_adapter(demo_run: int, tmp_path: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = get_run(demo_run).adapter_dir
    base_path = json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    ids = tokenizer("A 58-year-old man has crushing chest pain. Which artery?", return_tensors="pt").input_ids
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32), adapter)
    expected = _logits(tuned, ids)
    with tuned.disable_adapter():
        assert not torch.allclose(_logits(tuned, ids), expected, atol=1e-3), "the adapter must change the logits"

    # PEFT's merge_and_unload, saved and reloaded: the same logits in float32 ...
    assert merge.merge_adapter(adapter, tmp_path / "fp32", dtype="float32") == "float32"
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "fp32", dtype=torch.float32)
    torch.testing.assert_close(_logits(merged, ids), expected, atol=1e-5, rtol=1e-5)

    # ... and the app's 16-bit export (merged in a child process) within 16-bit rounding.
    outcome = publish.export_local(demo_run, "merged")
    assert set(outcome.files) == CARD | TOKENIZER | {"config.json", "generation_config.json", "model.safetensors"}
    assert json.loads((outcome.folder / "config.json").read_text())["dtype"] == "float16"
    merged16 = AutoModelForCausalLM.from_pretrained(outcome.folder, dtype=torch.float32)
    torch.testing.assert_close(_logits(merged16, ids), expected, atol=2e-2, rtol=0)
    assert "saved as float16" in (outcome.folder / "README.md").read_text()


def test_a_merge_this_machine_has_no_room_for_is_refused_before_it_starts_naming_what_it_needs(
        demo_run: int, monkeypatch: pytest.MonkeyPatch) -> None:
    recipe_8b = get_run(demo_run).model_copy(update={"config_json": json.dumps(
        {"model": {"base_model": "unsloth/DeepSeek-R1-Distill-Llama-8B"}})})
    with pytest.raises(publish.PublishError, match=r"about 18\.7 GB of free RAM .* has 15\.0 GB free"):
        publish.check_memory_for_merge(recipe_8b, available=15 * 2**30)  # a GPU Space's small tier
    publish.check_memory_for_merge(recipe_8b, available=32 * 2**30)

    import psutil

    monkeypatch.setattr(psutil, "virtual_memory", lambda: type("vm", (), {"available": 1024})())
    with pytest.raises(publish.PublishError, match="Export the adapter instead"):
        publish.export_local(demo_run, "merged")
    assert not (publish.export_root(demo_run) / "merged").exists()
    (row,) = records.publishes_for_run(demo_run)
    assert row.status == "failed" and "free RAM" in row.error


# `make test` builds llama-cpp-python (make install-gguf); the converter part of the first-use build is re-run here.
needs_llama_cpp = pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                                     reason="llama-cpp-python is not installed: make install-gguf")


@needs_llama_cpp
def test_the_first_gguf_export_installs_the_tools_then_its_files_load_in_llama_cpp_and_generate(
        demo_run: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np
    from llama_cpp import Llama
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv("MEDCOT_LLAMA_CPP_DIR", str(tmp_path / "llama.cpp"))  # a machine where `make run` skipped it
    assert not gguf.availability().ok
    choices, note = publish_view.kind_choices()
    assert "gguf" in [v for _, v in choices] and "the first GGUF export builds them" in note
    seen: list[str] = []
    outcome = publish.export_local(demo_run, "gguf", progress=lambda f, d: seen.append(d))
    assert seen[0].startswith("Building llama.cpp's GGUF tools") and gguf.availability().ok
    assert "install-gguf.sh" in (publish.export_root(demo_run) / "export.log").read_text()
    q4, q8 = "quick-demo-Q4_K_M.gguf", "quick-demo-Q8_0.gguf"
    assert set(outcome.files) == CARD | {q4, q8}
    assert gguf.read_metadata(outcome.folder / q4)["general.file_type"] == gguf.QUANTS["q4_k_m"][0]
    assert gguf.read_metadata(outcome.folder / q8)["general.file_type"] == gguf.QUANTS["q8_0"][0]

    merged_dir = publish.export_root(demo_run) / "merged"  # made on the way, reused by later exports
    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    question = "A 58-year-old man presents with crushing retrosternal chest pain. Which artery is occluded?"
    ids = tokenizer(question)["input_ids"]
    for name in (q4, q8):
        llm = Llama(model_path=str(outcome.folder / name), n_ctx=256, verbose=False, logits_all=True)
        try:
            assert llm.tokenize(question.encode(), add_bos=True) == ids, "llama.cpp must tokenize like transformers"
            completion = llm(question, max_tokens=8, temperature=0.0)
            assert completion["usage"]["completion_tokens"] > 0
            if name == q8:  # 8-bit weights: the same next-token scores as the merged model, to rounding
                llm.reset()
                llm.eval(ids)
                scores = np.array(llm.scores[: len(ids)])
                merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32)
                reference = _logits(merged, torch.tensor([ids]))[0].numpy()
                assert np.corrcoef(scores.ravel(), reference.ravel())[0, 1] > 0.999
        finally:
            llm.close()
    (row,) = [p for p in records.publishes_for_run(demo_run) if p.kind == "gguf"]
    assert row.status == "succeeded"


def test_the_first_use_build_reports_progress_from_the_compilers_own_step_counts() -> None:
    # What `pip install -v` prints while scikit-build-core compiles llama.cpp: ninja's [done/total] (or make's
    # [ NN%]) before each object; pip's own lines carry no progress.
    lines = ["  [12/96] Building CXX object vendor/llama.cpp/src/CMakeFiles/llama.dir/llama.cpp.o",
             "[ 45%] Building C object vendor/llama.cpp/ggml/src/CMakeFiles/ggml-base.dir/ggml.c.o",
             "  Collecting llama-cpp-python==0.3.36", "  *** Building project with Ninja..."]
    assert [gguf_build.step_fraction(line) for line in lines] == [12 / 96, 0.45, None, None]


def test_without_llama_cpp_or_a_compiler_to_build_it_the_gguf_option_is_disabled_and_says_why(
        demo_run: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDCOT_LLAMA_CPP_DIR", str(tmp_path / "no-llama-cpp-here"))
    monkeypatch.setenv("PATH", str(tmp_path / "a-path-without-compilers"))
    available = gguf_build.offer()
    assert not available.ok and "scripts/install-gguf.sh" in available.reason
    assert "no cc or c++ compiler" in available.reason
    choices, reason = publish_view.kind_choices()
    assert [v for _, v in choices] == ["adapter", "merged"] and reason == available.reason

    with pytest.raises(publish.PublishError, match="GGUF export is off"):
        publish.export_local(demo_run, "gguf")
    (row,) = records.publishes_for_run(demo_run)
    assert row.status == "failed" and "install-gguf.sh" in row.error

    import gradio as gr

    from medcot_ui.hosting.context import AppContext
    from medcot_ui.tabs import publish as tab

    with gr.Blocks():
        ui = tab.build(AppContext())
    assert [v for _, v in ui.kind.choices] == ["adapter", "merged"]
    assert "GGUF export is off" in ui.gguf_note.value


def test_an_unfinished_run_cannot_be_exported_and_the_refusal_says_why(home: Path) -> None:
    from medcot_ui.jobkinds import enqueue
    from medcot_ui.training.presets import quick_demo

    run = enqueue("train", quick_demo())
    with pytest.raises(publish.PublishError, match=f"Run {run.id} is queued: wait until it has finished"):
        publish.export_local(run.id, "adapter")
    assert records.publishes_for_run(run.id)[0].status == "failed"
    assert publish_view.run_choices() == []


def test_a_publish_left_pending_by_a_stopped_app_is_marked_failed_and_retryable(demo_run: int) -> None:
    from medcot_ui.store import Publish, write_session

    with write_session() as s:
        s.add(Publish(run_id=demo_run, kind="merged", target="alice/quick-demo-merged", status="pending",
                      created_at=records.PROCESS_STARTED - 60))
    assert records.reap_interrupted() == 1
    failed = records.last_failed(demo_run)
    assert failed is not None and failed.error.startswith("Interrupted: the app stopped")
    assert publish_view.history_table(demo_run)[0][4] == "failed"


def test_the_publish_form_says_whose_token_is_used_and_who_will_own_the_repository(demo_run: int) -> None:
    from medcot_ui.publish.hub import Identity

    assert "your Hugging Face login" in publish_view.token_help("space")
    assert "your own" in publish_view.token_help("password")
    assert "HF_TOKEN" in publish_view.token_help("local")
    alice = Identity(name="Alice", role="write", writable_orgs=("med-lab",))
    assert "will be owned by you (published as Alice)" in publish_view.target_text(alice, "alice/quick-demo")
    assert "will be owned by med-lab (published as Alice)" in publish_view.target_text(alice, "med-lab/quick-demo")
    run = get_run(demo_run)
    # Switching the export kind keeps the account the user typed and changes only the repository's name.
    assert publish_view.repo_for_kind(run, "gguf", "med-lab/whatever") == "med-lab/quick-demo-GGUF"
    assert publish_view.repo_for_kind(run, "merged", "") == "quick-demo-merged"


def test_a_container_memory_limit_counts_as_less_free_ram(tmp_path: Path) -> None:
    free = 8 * 2**30  # the machine's free memory, fixed: read twice it changes on a busy machine
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "memory.max").write_text(f"{2 * 2**30}\n")
    (v2 / "memory.current").write_text(f"{2**30}\n")
    assert publish.available_ram(v2, free) == 2**30  # a 2 GiB container with 1 GiB in use
    (v2 / "memory.max").write_text("max\n")
    assert publish.available_ram(v2, free) == free
    v1 = tmp_path / "v1" / "memory"
    v1.mkdir(parents=True)
    (v1 / "memory.limit_in_bytes").write_text(f"{3 * 2**30}\n")
    (v1 / "memory.usage_in_bytes").write_text(f"{4 * 2**30}\n")
    assert publish.available_ram(tmp_path / "v1", free) == 0
    assert publish.available_ram(tmp_path / "none", free) == free
    assert publish.available_ram(tmp_path / "none") > 0  # read from the machine when not given


def test_a_pre_quantized_base_is_refused_by_the_merge_with_what_to_do_instead(demo_run: int, home: Path,
                                                                               tmp_path: Path) -> None:
    import shutil

    quantized = tmp_path / "demo-bnb-4bit"
    shutil.copytree(home / "models" / "demo-tiny-llama", quantized)
    config = json.loads((quantized / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "bitsandbytes", "load_in_4bit": True}
    (quantized / "config.json").write_text(json.dumps(config))
    adapter = get_run(demo_run).adapter_dir
    with pytest.raises(merge.MergeRefused, match="is a quantized checkpoint: merging needs its 16-bit weights"):
        merge.merge_adapter(adapter, tmp_path / "out", base=str(quantized))
    assert not (tmp_path / "out").exists()
