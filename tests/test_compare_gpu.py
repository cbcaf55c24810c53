"""On a CUDA GPU: the Compare engine on a random-init model of the real 8B shape, bf16 and 4-bit. Both panes stream
from one batched generate, the tuned pane follows the adapter and the base pane the bare base (checked against
teacher-forced logits: bf16 rounding differs between batch shapes, so exact token equality is not expected),
and a second run's adapter is really applied after the compiled decode step was captured for the first.
Skipped without CUDA. Speed is measured by bench/compare_gpu.py, not here.

Set MEDCOT_GPU_WORK to a folder holding `model/` (bench/make_random_8b.py) to reuse one.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT

pytestmark = pytest.mark.gpu
sys.path.insert(0, str(ROOT / "bench"))


@pytest.fixture(scope="module")
def random_8b(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from compare_gpu import make_adapter
    from make_random_8b import build_model

    work = Path(os.environ.get("MEDCOT_GPU_WORK") or tmp_path_factory.mktemp("gpu"))
    model = build_model(work / "model")
    return model, make_adapter(model, work / "adapter")


def _greedy_consistent(model: Any, prompt_ids: Any, generated: list[int], adapter: str | None) -> float:
    """Share of generated tokens that are the argmax of the teacher-forced logits (with or without the adapter);
    fails outright if any token is not even in the top 3 (more than rounding can explain)."""
    import torch

    ids = torch.tensor([prompt_ids + generated], device=model.device)
    with torch.inference_mode():
        if adapter is None:
            with model.disable_adapter():
                logits = model(input_ids=ids).logits[0].float()
        else:
            model.set_adapter(adapter)
            logits = model(input_ids=ids).logits[0].float()
    predicted = logits[len(prompt_ids) - 1: len(prompt_ids) - 1 + len(generated)]
    top3 = predicted.topk(3, dim=-1).indices.tolist()
    for step, (token, best) in enumerate(zip(generated, top3)):
        assert token in best, f"step {step}: token {token} is not among the reference's top 3 {best}"
    return sum(token == best[0] for token, best in zip(generated, top3)) / len(generated)


def _finished_run(model: Path, adapter: Path, four_bit: bool) -> int:
    from compare_gpu import finished_run

    return finished_run(model, adapter, four_bit)


@pytest.mark.parametrize("four_bit", [False, True], ids=["bf16", "4bit"])
def test_both_panes_stream_on_the_gpu_with_the_adapter_on_in_the_tuned_pane_only(
        four_bit: bool, random_8b: tuple[Path, Path], home: Path) -> None:
    if four_bit:
        pytest.importorskip("bitsandbytes")
    from compare_gpu import QUESTION

    from medcot_ui.chat import CompareEngine, GenerationSettings

    model_dir, adapter = random_8b
    run_id = _finished_run(model_dir, adapter, four_bit)
    engine = CompareEngine(update_interval_s=0.0)
    updates = list(engine.compare(run_id, QUESTION, GenerationSettings(max_new_tokens=32, greedy=True)))
    mid = [u for u in updates if u.phase == "generating" and u.base.tokens and u.tuned.tokens
           and not (u.base.finished or u.tuned.finished)]
    assert len(mid) >= 3, "both panes should stream together"
    final = updates[-1]
    assert final.phase == "done" and final.base.tokens == final.tuned.tokens == 32
    assert final.base.token_ids != final.tuned.token_ids, "the adapter must change the tuned pane"

    loaded = engine._loaded
    prompt_ids = loaded.tokenizer(final.prompt)["input_ids"]
    assert _greedy_consistent(loaded.model, prompt_ids, final.tuned.token_ids, f"run-{run_id}") >= 0.9
    assert _greedy_consistent(loaded.model, prompt_ids, final.base.token_ids, None) >= 0.9
    engine.unload()


def test_a_second_runs_adapter_is_applied_after_the_decode_step_was_compiled_for_the_first(
        random_8b: tuple[Path, Path], home: Path, tmp_path: Path) -> None:
    from compare_gpu import QUESTION
    from safetensors.torch import load_file, save_file

    from medcot_ui.chat import CompareEngine, GenerationSettings

    model_dir, adapter = random_8b
    negated = tmp_path / "negated"
    shutil.copytree(adapter, negated)
    weights = load_file(negated / "adapter_model.safetensors")
    save_file({k: -v if "lora_B" in k else v for k, v in weights.items()}, negated / "adapter_model.safetensors")
    first, second = _finished_run(model_dir, adapter, False), _finished_run(model_dir, negated, False)

    engine = CompareEngine(update_interval_s=0.0)
    settings = GenerationSettings(max_new_tokens=24, greedy=True)
    one = list(engine.compare(first, QUESTION, settings))[-1]
    two = list(engine.compare(second, QUESTION, settings))[-1]
    assert engine._loaded.compiled_for == f"run-{second}"
    assert one.tuned.token_ids != two.tuned.token_ids
    prompt_ids = engine._loaded.tokenizer(two.prompt)["input_ids"]
    assert _greedy_consistent(engine._loaded.model, prompt_ids, two.tuned.token_ids, f"run-{second}") >= 0.9
    assert two.base.token_ids == one.base.token_ids, "the base pane is the same base model for both runs"
    engine.unload()
