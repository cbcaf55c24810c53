"""The batch engine answers many questions at once and each answer is exactly what the model alone would say.

On the tiny demo model (CPU, float32), with a random LoRA adapter saved by PEFT: base and tuned requests share
the engine's slots, a finished slot takes the next question mid-run, and every row's greedy tokens equal a plain
one-question ``model.generate`` (base) or PEFT's own model (tuned), token for token; with the adapter merged into
the weights after the base side, the tuned side equals PEFT's merged model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from conftest import random_lora_adapter
from medcot_ui.inference.batch_engine import BatchEngine, Finished, Request, cache_length
from medcot_ui.inference.eos import eos_ids
from medcot_ui.inference.row_lora import inject

QUESTIONS = [
    "A 61-year-old woman has involuntary urine loss when she coughs. What does cystometry show?",
    "fever",
    "A child has a rash and joint pain two weeks after a sore throat. What is the most likely diagnosis?",
    "Which drug reverses heparin?",
    "A 70-year-old man with sudden painless loss of vision in one eye: what does the fundus show, and why?",
]


def _model(model_dir: Path) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir).eval()


@pytest.fixture(scope="module")
def setup(built_demo_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(built_demo_model)
    adapter = random_lora_adapter(built_demo_model, tmp_path_factory.mktemp("engine") / "adapter", 5)
    return {"dir": built_demo_model, "adapter": adapter, "ids": [tokenizer(q)["input_ids"] for q in QUESTIONS],
            "eos": eos_ids(_model(built_demo_model), tokenizer)}


def _alone(model: Any, ids: list[int], new: int, eos: list[int]) -> list[int]:
    """One question through plain ``generate``, greedy, EOS excluded."""
    with torch.inference_mode():
        out = model.generate(torch.tensor([ids]), max_new_tokens=new, do_sample=False, eos_token_id=eos,
                             pad_token_id=eos[0])[0, len(ids):].tolist()
    return out[:-1] if out and out[-1] in eos else out


def _run(engine: BatchEngine, requests: list[Request], **kwargs: Any) -> dict[Any, Finished]:
    got: dict[Any, Finished] = {}
    engine.stats = engine.run(requests, lambda done: got.update({d.request.key: d for d in done}), **kwargs)
    return got


def test_base_and_tuned_answers_sharing_three_slots_equal_each_model_answering_alone(setup: dict[str, Any]) -> None:
    from peft import PeftModel

    lengths = [24, 6, 17, 11, 30]  # unequal limits: slots free up at different steps and are refilled
    base_alone = [_alone(_model(setup["dir"]), ids, n, setup["eos"]) for ids, n in zip(setup["ids"], lengths)]
    peft = PeftModel.from_pretrained(_model(setup["dir"]), str(setup["adapter"])).eval()
    tuned_alone = [_alone(peft, ids, n, setup["eos"]) for ids, n in zip(setup["ids"], lengths)]
    assert base_alone != tuned_alone, "the adapter must change greedy tokens, or this test proves nothing"

    model = _model(setup["dir"])
    slots = 3
    lora = inject(model, setup["adapter"], rows=slots)
    engine = BatchEngine(model, setup["eos"], slots, cache_length(max(map(len, setup["ids"])), max(lengths)), lora)
    requests = [Request((side, i), ids, side == "tuned", n) for i, (ids, n) in enumerate(zip(setup["ids"], lengths))
                for side in ("base", "tuned")]
    got = _run(engine, requests)

    assert [got[("base", i)].tokens for i in range(len(QUESTIONS))] == base_alone
    assert [got[("tuned", i)].tokens for i in range(len(QUESTIONS))] == tuned_alone
    assert engine.stats.finished == 10 and engine.stats.times_refilled >= 3, "slots must be refilled mid-run"
    assert engine.stats.tokens == sum(len(a) for a in base_alone + tuned_alone)


def test_with_the_adapter_merged_after_the_base_side_each_side_answers_as_its_model_alone(
        setup: dict[str, Any]) -> None:
    from peft import PeftModel

    from medcot_ui.inference.row_lora import merge_into, read_adapter

    lengths = [24, 6, 17, 11, 30]
    base_alone = [_alone(_model(setup["dir"]), ids, n, setup["eos"]) for ids, n in zip(setup["ids"], lengths)]
    merged = PeftModel.from_pretrained(_model(setup["dir"]), str(setup["adapter"])).merge_and_unload().eval()
    tuned_alone = [_alone(merged, ids, n, setup["eos"]) for ids, n in zip(setup["ids"], lengths)]
    assert base_alone != tuned_alone

    model = _model(setup["dir"])
    engine = BatchEngine(model, setup["eos"], 3, cache_length(max(map(len, setup["ids"])), max(lengths)))
    base = _run(engine, [Request(i, ids, False, n) for i, (ids, n) in enumerate(zip(setup["ids"], lengths))])
    merge_into(model, read_adapter(setup["adapter"]))  # the same engine (no re-build) answers the tuned side
    tuned = _run(engine, [Request(i, ids, False, n) for i, (ids, n) in enumerate(zip(setup["ids"], lengths))])

    assert [base[i].tokens for i in range(len(QUESTIONS))] == base_alone
    assert [tuned[i].tokens for i in range(len(QUESTIONS))] == tuned_alone


def test_a_layer_that_is_not_a_plain_linear_refuses_a_merged_adapter_naming_the_module(setup: dict[str, Any]) -> None:
    from torch import nn

    from medcot_ui.inference.row_lora import AdapterError, AdapterWeights, merge_into

    model = _model(setup["dir"])
    name = "model.layers.0.self_attn.q_proj"
    layer = model.get_submodule(name)
    # a wrapped layer, as a 4-bit Linear4bit is: only plain 16/32-bit nn.Linear weights can take the sum
    model.get_submodule("model.layers.0.self_attn").q_proj = nn.Sequential(layer)
    weights = AdapterWeights({name: (torch.zeros(2, layer.in_features), torch.zeros(layer.out_features, 2))}, 1.0)
    with pytest.raises(AdapterError, match="q_proj.*cannot take a merged adapter"):
        merge_into(model, weights)


def test_an_answer_ends_at_its_end_of_sequence_token_and_forced_lengths_ignore_it(setup: dict[str, Any]) -> None:
    model = _model(setup["dir"])
    ids = setup["ids"][0]
    free_run = _alone(model, ids, 20, setup["eos"])
    stop = free_run[6]  # make the 7th token the end of the answer
    first = free_run.index(stop)
    engine = BatchEngine(model, [stop], 2, cache_length(len(ids), 20))
    got = _run(engine, [Request("ends", ids, False, 20), Request("forced", ids, False, 20, forced_tokens=15)])

    assert got["ends"].finish == "eos" and got["ends"].tokens == free_run[:first]
    assert got["forced"].finish == "length" and got["forced"].tokens == free_run[:15]


def test_stopping_ends_the_run_and_reports_only_finished_answers(setup: dict[str, Any]) -> None:
    model = _model(setup["dir"])
    engine = BatchEngine(model, setup["eos"], 2, cache_length(max(map(len, setup["ids"])), 40))
    finished: list[Finished] = []
    requests = [Request(i, ids, False, 8 if i == 0 else 40, forced_tokens=8 if i == 0 else 40)
                for i, ids in enumerate(setup["ids"])]
    engine.run(requests, finished.extend, should_stop=lambda: bool(finished))

    assert [f.request.key for f in finished] == [0], "the run stops at the first look after a stop request"


def test_sampled_answers_are_reproducible_from_the_seed(setup: dict[str, Any]) -> None:
    model = _model(setup["dir"])
    requests = [Request(i, ids, False, 12) for i, ids in enumerate(setup["ids"])]

    def sample(seed: int) -> list[list[int]]:
        engine = BatchEngine(model, setup["eos"], 3, cache_length(max(map(len, setup["ids"])), 12), greedy=False,
                             temperature=1.0, seed=seed)
        got = _run(engine, requests)
        return [got[i].tokens for i in range(len(requests))]

    assert sample(1) == sample(1) != sample(2)


def test_a_request_longer_than_the_cache_is_refused_naming_its_length(setup: dict[str, Any]) -> None:
    engine = BatchEngine(_model(setup["dir"]), setup["eos"], 1, cache_length(10, 10))
    with pytest.raises(ValueError, match="a prompt of 30 tokens \\+ 5 new tokens does not fit"):
        engine.run([Request(0, [5] * 30, False, 5)], lambda done: None)
