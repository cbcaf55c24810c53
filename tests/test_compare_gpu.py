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

pytestmark = [pytest.mark.gpu, pytest.mark.timeout(240)]  # fails a hung GPU test inside one device call
sys.path.insert(0, str(ROOT / "bench"))


@pytest.fixture
def engines() -> Any:
    """Engines made by a test, unloaded afterwards even when it fails (their compiled graphs hold GPU memory)."""
    from medcot_ui.compare.engine import CompareEngine

    made: list[Any] = []

    def make(**kwargs: Any) -> Any:
        made.append(CompareEngine(update_interval_s=0.0, **kwargs))
        return made[-1]

    yield make
    for engine in made:
        engine.unload()


@pytest.fixture(scope="module")
def random_8b(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from compare_gpu import make_adapter
    from make_random_8b import build_model

    work = Path(os.environ.get("MEDCOT_GPU_WORK") or tmp_path_factory.mktemp("gpu"))
    model = build_model(work / "model")
    return model, make_adapter(model, work / "adapter")


def _worst_gap(loaded: Any, prompt_ids: list[int], generated: list[int], adapter: str | None) -> float:
    """How far the generated tokens are from greedy under a teacher-forced reference forward, in units of the
    logits' standard deviation: max over steps of (best logit - logit of the generated token) / std.

    0 means every token is the reference's argmax. Rounding (bf16, batch shape, cached vs full attention) moves
    logits by a few hundredths of a std; a different model (adapter on vs off) by whole stds.
    """
    import torch

    if adapter is not None:  # that run's weights into the injected layers, as the engine switches runs
        loaded.lora.load(loaded.adapters[adapter])
        loaded.active = adapter
    loaded.lora.set_rows([adapter is not None])  # one row: the adapter on (tuned) or scaled to 0 (base)
    ids = torch.tensor([prompt_ids + generated], device=loaded.model.device)
    with torch.inference_mode():
        logits = loaded.model(input_ids=ids).logits[0].float()
    steps = logits[len(prompt_ids) - 1: len(prompt_ids) - 1 + len(generated)]
    chosen = steps.gather(1, torch.tensor(generated, device=steps.device)[:, None])[:, 0]
    gaps = (steps.max(dim=1).values - chosen) / steps.std(dim=1)
    return float(gaps.max())


# In logit standard deviations. Measured on an H200 (random 8B, 32 tokens): rounding left gaps up to 0.17 between the
# compiled bf16 batch and a plain forward; the other model's tokens (adapter on vs off) gaps of 5.7 to 7.1.
NOISE = 1.0


def _adapter_of(engine: Any, run_id: int) -> str:
    """The name the run's adapter is loaded under (``run-<id>-<mtime>``)."""
    return next(name for name in engine.loaded_adapters if name.startswith(f"run-{run_id}-"))


def _finished_run(model: Path, adapter: Path, four_bit: bool) -> int:
    from compare_gpu import finished_run

    return finished_run(model, adapter, four_bit)


@pytest.mark.parametrize("four_bit", [False, True], ids=["bf16", "4bit"])
def test_both_panes_stream_on_the_gpu_with_the_adapter_on_in_the_tuned_pane_only(
        four_bit: bool, random_8b: tuple[Path, Path], home: Path, engines: Any) -> None:
    if four_bit:
        pytest.importorskip("bitsandbytes")
    from compare_gpu import QUESTION

    from medcot_ui.compare.generation import GenerationSettings

    model_dir, adapter = random_8b
    run_id = _finished_run(model_dir, adapter, four_bit)
    engine = engines(precision="4bit" if four_bit else "16bit")
    updates = list(engine.compare(run_id, QUESTION, GenerationSettings(max_new_tokens=32, greedy=True)))
    mid = [u for u in updates if u.phase == "generating" and u.base.tokens and u.tuned.tokens
           and not (u.base.finished or u.tuned.finished)]
    assert len(mid) >= 3, "both panes should stream together"
    final = updates[-1]
    assert final.phase == "done" and final.base.tokens == final.tuned.tokens == 32
    assert final.base.token_ids != final.tuned.token_ids, "the adapter must change the tuned pane"
    assert engine._loaded.quantised is four_bit and ("4-bit" in final.device) is four_bit

    loaded = engine._loaded
    prompt_ids = loaded.tokenizer(final.prompt)["input_ids"]
    assert (engine.decode_status.state == "ready") is not four_bit, engine.decode_status
    gaps = {(pane, ref): _worst_gap(loaded, prompt_ids, getattr(final, pane).token_ids, adapter)
            for pane in ("base", "tuned") for ref, adapter in (("base", None), ("tuned", _adapter_of(engine, run_id)))}
    assert gaps[("tuned", "tuned")] < NOISE and gaps[("base", "base")] < NOISE, gaps
    assert gaps[("tuned", "base")] > NOISE and gaps[("base", "tuned")] > NOISE, gaps


def test_a_second_runs_adapter_is_applied_after_the_decode_step_was_compiled_for_the_first(
        random_8b: tuple[Path, Path], home: Path, tmp_path: Path, engines: Any) -> None:
    from compare_gpu import QUESTION
    from safetensors.torch import load_file, save_file

    from medcot_ui.compare.generation import GenerationSettings

    model_dir, adapter = random_8b
    negated = tmp_path / "negated"
    shutil.copytree(adapter, negated)
    weights = load_file(negated / "adapter_model.safetensors")
    save_file({k: -v if "lora_B" in k else v for k, v in weights.items()}, negated / "adapter_model.safetensors")
    first, second = _finished_run(model_dir, adapter, False), _finished_run(model_dir, negated, False)

    engine = engines(precision="16bit")
    settings = GenerationSettings(max_new_tokens=24, greedy=True)
    one = list(engine.compare(first, QUESTION, settings))[-1]
    two = list(engine.compare(second, QUESTION, settings))[-1]
    assert engine._loaded.active == _adapter_of(engine, second)
    assert engine.decode_status.state == "ready", engine.decode_status
    assert one.tuned.token_ids != two.tuned.token_ids
    loaded, prompt_ids = engine._loaded, engine._loaded.tokenizer(two.prompt)["input_ids"]
    assert _worst_gap(loaded, prompt_ids, two.tuned.token_ids, _adapter_of(engine, second)) < NOISE
    assert _worst_gap(loaded, prompt_ids, two.tuned.token_ids, _adapter_of(engine, first)) > NOISE, "run 1's graph was reused"
    assert _worst_gap(loaded, prompt_ids, two.base.token_ids, None) < NOISE
