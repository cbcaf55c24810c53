"""On a CUDA GPU: the batch engine with its compiled (CUDA-graph) decode step answers as the model alone would.

A small Llama-shaped model (grouped-query attention like the 8B) with a random PEFT LoRA adapter:
- float32: every row's greedy tokens equal a one-question ``generate`` (base) or PEFT's model (tuned), exactly;
- bf16: rounding differs between batch shapes, so each token is checked against teacher-forced logits instead
  (as tests/test_compare_gpu.py does): the base slots follow the base, the tuned slots the adapter;
- more questions than slots finish in one run (slots refilled mid-run), and a stop ends the run at the next look.
Skipped without CUDA. Speed is measured by bench/eval_throughput.py, not here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import random_lora_adapter

pytestmark = [pytest.mark.gpu, pytest.mark.timeout(300)]
NEW_TOKENS = 40
# Logit standard deviations. Measured on an H100 (2026-12-06) with this small model: bf16 rounding left gaps up to
# 1.11 against a plain forward; the other side's tokens (adapter on vs off) gaps of 7.0 and more.
NOISE = 2.5


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    root = tmp_path_factory.mktemp("engine-gpu")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=4096, hidden_size=512, intermediate_size=1408, num_hidden_layers=6,
                         num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=2048)
    LlamaForCausalLM(config).save_pretrained(root / "model")
    return root / "model", random_lora_adapter(root / "model", root / "adapter", 7)


def _prompts(count: int) -> list[list[int]]:
    import random

    rng = random.Random(11)
    return [[rng.randrange(10, 4096) for _ in range(rng.randint(20, 120))] for _ in range(count)]


def _model(model_dir: Path, dtype: Any) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, device_map={"": 0}).eval()


def _engine(model: Any, adapter: Path, slots: int, **kwargs: Any) -> Any:
    from medcot_ui.inference.batch_engine import BatchEngine, cache_length
    from medcot_ui.inference.row_lora import inject

    lora = inject(model, adapter, rows=slots)
    return BatchEngine(model, [], slots, cache_length(128, NEW_TOKENS), lora, compiled=True, **kwargs)


def _answers(engine: Any, prompts: list[list[int]], lengths: list[int], **kwargs: Any) -> dict[Any, list[int]]:
    from medcot_ui.inference.batch_engine import Request

    got: dict[Any, list[int]] = {}
    requests = [Request((side, i), ids, side == "tuned", n) for i, (ids, n) in enumerate(zip(prompts, lengths))
                for side in ("base", "tuned")]
    engine.stats = engine.run(requests, lambda done: got.update({d.request.key: d.tokens for d in done}), **kwargs)
    return got


def _alone(model: Any, ids: list[int], new: int) -> list[int]:
    import torch

    with torch.inference_mode():
        out = model.generate(torch.tensor([ids], device=model.device), max_new_tokens=new, min_new_tokens=new,
                             do_sample=False, pad_token_id=0, temperature=None, top_p=None, top_k=None)
    return out[0, len(ids):].tolist()


def test_float32_answers_equal_each_model_answering_alone_token_for_token(small: tuple[Path, Path]) -> None:
    import torch
    from peft import PeftModel

    model_dir, adapter = small
    prompts, lengths = _prompts(6), [NEW_TOKENS, 12, 31, NEW_TOKENS, 7, 25]
    base = [_alone(_model(model_dir, torch.float32), p, n) for p, n in zip(prompts, lengths)]
    peft = PeftModel.from_pretrained(_model(model_dir, torch.float32), str(adapter)).eval()
    tuned = [_alone(peft, p, n) for p, n in zip(prompts, lengths)]
    assert base != tuned

    engine = _engine(_model(model_dir, torch.float32), adapter, slots=4)
    got = _answers(engine, prompts, lengths)
    assert [got[("base", i)] for i in range(6)] == base
    assert [got[("tuned", i)] for i in range(6)] == tuned
    assert engine.stats.times_refilled > 0, "12 answers through 4 slots: slots must be refilled mid-run"


def _worst_gap(model: Any, lora: Any, prompt: list[int], generated: list[int], tuned: bool = False) -> float:
    """max over steps of (best logit - logit of the generated token) / std, under a teacher-forced forward
    (``lora``: the per-row adapter, on for ``tuned``; None for a plain model)."""
    import torch

    if lora is not None:
        lora.set_rows([tuned])
    ids = torch.tensor([prompt + generated], device=model.device)
    with torch.inference_mode():
        logits = model(input_ids=ids).logits[0].float()
    steps = logits[len(prompt) - 1: len(prompt) - 1 + len(generated)]
    chosen = steps.gather(1, torch.tensor(generated, device=steps.device)[:, None])[:, 0]
    return float(((steps.max(dim=1).values - chosen) / steps.std(dim=1)).max())


def test_bf16_answers_follow_their_own_side_and_slots_are_refilled(small: tuple[Path, Path]) -> None:
    import torch

    model_dir, adapter = small
    model = _model(model_dir, torch.bfloat16)
    engine = _engine(model, adapter, slots=4)
    prompts = _prompts(10)
    got = _answers(engine, prompts, [NEW_TOKENS, 17, 29, 8, NEW_TOKENS, 23, 35, 12, NEW_TOKENS, 30])
    assert engine.stats.finished == 20 and engine.stats.times_refilled > 0
    lora = engine.lora
    for i, prompt in enumerate(prompts[:4]):
        for side in ("base", "tuned"):
            own = _worst_gap(model, lora, prompt, got[(side, i)], side == "tuned")
            other = _worst_gap(model, lora, prompt, got[(side, i)], side != "tuned")
            assert own < NOISE < other, (side, i, own, other)


def test_bf16_with_the_adapter_merged_after_the_base_side_each_side_follows_its_own_model(
        small: tuple[Path, Path]) -> None:
    """The merged side is checked against a merged model: in bf16, W + BA rounds away part of the adapter (on an
    H100 the merged answers sat 3.3 std from the per-row adapter's choices, beyond NOISE), which is why
    evaluations keep the adapter per row (engine_answers.MERGE_TUNED) and this path stays a measured option."""
    import torch

    from medcot_ui.inference.batch_engine import BatchEngine, Request, cache_length
    from medcot_ui.inference.row_lora import merge_into, read_adapter

    model_dir, adapter = small
    model = _model(model_dir, torch.bfloat16)
    engine = BatchEngine(model, [], 4, cache_length(128, NEW_TOKENS), compiled=True)
    prompts, lengths = _prompts(8), [NEW_TOKENS, 17, 29, 8, NEW_TOKENS, 23, 35, 12]
    got: dict[Any, list[int]] = {}
    for side in ("base", "tuned"):
        if side == "tuned":
            merge_into(model, read_adapter(adapter))  # in place: the captured graphs read the merged weights
        engine.run([Request((side, i), p, False, n) for i, (p, n) in enumerate(zip(prompts, lengths))],
                   lambda done: got.update({d.request.key: d.tokens for d in done}))
    base, merged = _model(model_dir, torch.bfloat16), _model(model_dir, torch.bfloat16)
    merge_into(merged, read_adapter(adapter))
    for i, prompt in enumerate(prompts[:4]):
        for side in ("base", "tuned"):
            own, other = (merged, base) if side == "tuned" else (base, merged)
            own_gap, other_gap = (_worst_gap(m, None, prompt, got[(side, i)]) for m in (own, other))
            assert own_gap < NOISE < other_gap, (side, i, own_gap, other_gap)


def test_a_stop_ends_the_run_at_the_next_look_and_the_engine_answers_again_after(small: tuple[Path, Path]) -> None:
    import torch

    from medcot_ui.inference.batch_engine import Request

    model_dir, adapter = small
    engine = _engine(_model(model_dir, torch.bfloat16), adapter, slots=2)
    prompts = _prompts(6)
    finished: list[Any] = []
    requests = [Request(i, ids, False, 4 if i == 0 else NEW_TOKENS) for i, ids in enumerate(prompts)]
    engine.run(requests, finished.extend, should_stop=lambda: bool(finished))
    assert [f.request.key for f in finished] == [0]
    again = _answers(engine, prompts[:2], [8, 8])
    assert len(again) == 4 and all(len(tokens) == 8 for tokens in again.values())
