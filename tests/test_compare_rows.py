"""Compare's one batch of two panes: row 0 must be exactly the base model and row 1 exactly the tuned model.

On the tiny demo model (CPU, float32) with random LoRA adapters saved by PEFT: the row-scaled batch's greedy
tokens are checked against two independent generates, plain transformers on the base and PEFT's own
single-adapter model, through the static KV cache the GPU path uses (eager here; compiled on CUDA).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import random_lora_adapter
from medcot_ui.inference.decode_attention import NAME as GROUPED, use_grouped_decode_attention
from medcot_ui.inference.fast_decode import Decoder, bucket
from medcot_ui.inference.row_lora import AdapterError, RowLoRA, inject, read_adapter

NEW_TOKENS = 24
QUESTION = "A 61-year-old woman has involuntary urine loss when she coughs. What does cystometry show?"


def _base(model_dir: Path) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir).eval()


@pytest.fixture(scope="module")
def adapters(built_demo_model: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("adapters")
    return random_lora_adapter(built_demo_model, root / "one", 1), random_lora_adapter(built_demo_model, root / "two", 2)


def _prompt(model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)(QUESTION, return_tensors="pt")["input_ids"]


def _greedy(model: Any, ids: Any, **kwargs: Any) -> list[list[int]]:
    import torch

    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW_TOKENS,
                             min_new_tokens=NEW_TOKENS, do_sample=False, **kwargs)
    return out[:, ids.shape[1]:].tolist()


def _peft_generate(model_dir: Path, adapter: Path, ids: Any) -> list[int]:
    from peft import PeftModel

    return _greedy(PeftModel.from_pretrained(_base(model_dir), str(adapter)).eval(), ids)[0]


def _both_rows(model: Any, lora: RowLoRA, ids: Any) -> list[list[int]]:
    lora.set_rows([False, True])
    decoder = Decoder(model, rows=2, compiled=False, why_eager="CPU", static=True)
    return _greedy(model, ids.repeat(2, 1), **decoder.generate_kwargs(ids.shape[1] + NEW_TOKENS))


def test_the_base_row_is_the_plain_base_model_and_the_tuned_row_is_the_peft_adapter(
        built_demo_model: Path, adapters: tuple[Path, Path]) -> None:
    ids = _prompt(built_demo_model)
    plain = _greedy(_base(built_demo_model), ids)[0]
    tuned = _peft_generate(built_demo_model, adapters[0], ids)
    assert plain != tuned, "the adapter must change greedy tokens, or this test proves nothing"

    model = _base(built_demo_model)
    assert use_grouped_decode_attention(model), "Compare's models decode with grouped attention"
    lora = inject(model, adapters[0])
    base_row, tuned_row = _both_rows(model, lora, ids)
    assert base_row == plain
    assert tuned_row == tuned

    lora.detach()
    assert _greedy(model, ids)[0] == plain, "detach must leave the plain base model"


def test_a_second_adapter_loaded_in_place_replaces_the_first_in_the_tuned_row_only(
        built_demo_model: Path, adapters: tuple[Path, Path]) -> None:
    ids = _prompt(built_demo_model)
    model = _base(built_demo_model)
    lora = inject(model, adapters[0])
    first = _both_rows(model, lora, ids)
    tensors = [layer.lora_a.data_ptr() for layer in lora.layers.values()]

    second = read_adapter(adapters[1])
    assert lora.fits(second)
    lora.load(second)
    assert [layer.lora_a.data_ptr() for layer in lora.layers.values()] == tensors, "must load in place"
    base_row, tuned_row = _both_rows(model, lora, ids)
    assert base_row == first[0]
    assert tuned_row == _peft_generate(built_demo_model, adapters[1], ids) != first[1]


def test_a_compiled_decode_step_computes_both_rows_as_the_eager_one_does(
        built_demo_model: Path, adapters: tuple[Path, Path]) -> None:
    """On the GPU the decode step is compiled, and there the adapter's B product is a sum fused into the add."""
    import torch

    model = _base(built_demo_model)
    use_grouped_decode_attention(model)  # traced by the compiler too
    inject(model, adapters[0]).set_rows([False, True])
    ids = _prompt(built_demo_model)[:, -1:].repeat(2, 1)  # one token per row: a decode step's shape
    with torch.no_grad():
        eager = model(input_ids=ids, use_cache=False).logits
        compiled = torch.compile(model, dynamic=False)(input_ids=ids, use_cache=False).logits
    assert not torch.allclose(eager[0], eager[1], atol=1e-3), "the adapter must change the tuned row"
    torch.testing.assert_close(compiled, eager, atol=1e-4, rtol=1e-4)
    assert compiled.argmax(-1).tolist() == eager.argmax(-1).tolist()


def test_grouped_decode_attention_gives_sdpa_s_logits_at_every_step_over_a_static_cache(
        built_demo_model: Path) -> None:
    """The demo model shares each key/value head between two query heads, as the 8B shares one among four."""
    import torch

    ids = _prompt(built_demo_model).repeat(2, 1)
    logits = {}
    for grouped in (False, True):
        model = _base(built_demo_model)
        assert model.config.num_key_value_heads < model.config.num_attention_heads
        if grouped:
            assert use_grouped_decode_attention(model)
        decoder = Decoder(model, rows=2, compiled=False, why_eager="CPU", static=True)
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW_TOKENS,
                                 min_new_tokens=NEW_TOKENS, do_sample=False, output_logits=True,
                                 return_dict_in_generate=True, **decoder.generate_kwargs(ids.shape[1] + NEW_TOKENS))
        logits[grouped] = torch.stack(out.logits)
    torch.testing.assert_close(logits[True], logits[False], atol=1e-4, rtol=1e-4)


def test_only_a_compiled_decoder_switches_its_model_to_grouped_decode_attention(built_demo_model: Path) -> None:
    """Measured faster only compiled (CUDA graphs); eager steps keep SDPA, which launches fewer kernels."""
    eager, compiled, bench_sdpa = _base(built_demo_model), _base(built_demo_model), _base(built_demo_model)
    Decoder(eager, compiled=False, why_eager="CPU", static=True)
    Decoder(compiled, compiled=True)
    Decoder(bench_sdpa, compiled=True, grouped_attention=False)
    assert (eager.config._attn_implementation, compiled.config._attn_implementation,
            bench_sdpa.config._attn_implementation) == ("sdpa", GROUPED, "sdpa")


def test_an_adapter_compare_cannot_apply_is_refused_naming_the_setting(
        built_demo_model: Path, adapters: tuple[Path, Path], tmp_path: Path) -> None:
    import shutil

    dora = tmp_path / "dora"
    shutil.copytree(adapters[0], dora)
    config = json.loads((dora / "adapter_config.json").read_text())
    (dora / "adapter_config.json").write_text(json.dumps({**config, "use_dora": True}))
    with pytest.raises(AdapterError, match="use_dora"):
        read_adapter(dora)


def test_static_caches_come_in_power_of_two_buckets_so_later_questions_reuse_compiled_shapes() -> None:
    assert [bucket(n) for n in (1, 1024, 1025, 1800, 4096, 5000)] == [1024, 1024, 2048, 2048, 4096, 8192]


def test_a_decode_step_that_transformers_does_not_compile_is_reported_not_silently_run_eager(
        built_demo_model: Path) -> None:
    """On the CPU transformers compiles nothing: a decoder asked to compile must say so in its status."""
    from concurrent.futures import Future

    def run_here(fn: Any) -> Future:
        done: Future = Future()
        done.set_result(fn())
        return done

    decoder = Decoder(_base(built_demo_model), rows=2, compiled=True)
    assert decoder.status.state == "compiling"
    decoder.warm_up(run_here, token_id=5, tokens=40).result()
    assert decoder.status.state == "failed" and "eager" in decoder.status.message
    assert not decoder.compiled and decoder.generate_kwargs(40) == {}, "then eager over a dynamic cache"
