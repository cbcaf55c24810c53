"""The Compare engine on the demo model: both panes stream together from one batched generate, the adapter is on
in the tuned pane and off in the base pane, Stop ends both, the GPU is shared politely with training."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from conftest import train_demo_run, use_home
from medcot_ui.compare.comparable import comparable_run, held_out_rows
from medcot_ui.compare.engine import CompareEngine
from medcot_ui.compare.errors import CompareError
from medcot_ui.compare.generation import GenerationSettings
from medcot_ui.compare.gpu_budget import GpuMemory
from medcot_ui.compare.messages import pane_messages
from medcot_ui.compare.panes import Pane, refresh_text

GiB = 2**30


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, built_demo_model: Path) -> Any:
    """A data directory holding one finished demo run (trained once for this file)."""
    from medcot_ui.store import dispose_engines

    with pytest.MonkeyPatch.context() as mp:
        home = use_home(mp, tmp_path_factory.mktemp("compare") / "home", built_demo_model)
        run_id = train_demo_run()
        yield SimpleNamespace(home=home, run_id=run_id, engine=CompareEngine(update_interval_s=0.0))
        dispose_engines()


def _question(demo: Any) -> str:
    return held_out_rows(demo.run_id)[0].question


def _drain(updates: Any) -> list[Any]:
    return list(updates)


def _reference_ids(demo: Any, run_id: int, prompt: str, max_new_tokens: int, with_adapter: bool) -> list[int]:
    """What plain transformers (+ PeftModel for the tuned side) generates greedily for the same prompt."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base_dir = demo.home / "models" / "demo-tiny-llama"
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    if with_adapter:
        run, _, adapter = comparable_run(run_id)
        model = PeftModel.from_pretrained(model, str(adapter))
    enc = tokenizer(prompt, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)
    ids = out[0, enc["input_ids"].shape[1]:].tolist()
    return [t for t in ids if t != tokenizer.eos_token_id]


def test_both_panes_stream_token_by_token_before_either_finishes(demo: Any) -> None:
    updates = _drain(demo.engine.compare(demo.run_id, _question(demo), GenerationSettings(max_new_tokens=16,
                                                                                           greedy=True)))
    growing = [(u.base.tokens, u.tuned.tokens) for u in updates
               if u.phase == "generating" and u.base.tokens and u.tuned.tokens
               and not u.base.finished and not u.tuned.finished]
    assert len(growing) >= 3, f"expected several updates with both panes mid-stream, got {growing}"
    assert growing[0] < growing[-1], "both panes should grow between updates"
    assert updates[-1].phase == "done" and updates[-1].base.finished and updates[-1].tuned.finished
    # one generate for both panes: every step gives each pane one token
    assert all(b == t for b, t in growing)


def test_tuned_pane_equals_peft_model_and_base_pane_equals_the_base_model(demo: Any) -> None:
    n = 24
    final = _drain(demo.engine.compare(demo.run_id, _question(demo), GenerationSettings(max_new_tokens=n,
                                                                                        greedy=True)))[-1]
    tuned_ref = _reference_ids(demo, demo.run_id, final.prompt, n, with_adapter=True)
    base_ref = _reference_ids(demo, demo.run_id, final.prompt, n, with_adapter=False)
    assert final.tuned.token_ids == tuned_ref
    assert final.base.token_ids == base_ref
    assert final.base.token_ids != final.tuned.token_ids, "the adapter must change the tuned pane's output"


def test_the_prompt_is_the_runs_own_inference_prompt(demo: Any) -> None:
    from medcot_ui.training.models import load_tokenizer
    from medcot_ui.training.prompts import PromptFormat

    run, config, _ = comparable_run(demo.run_id)
    final = _drain(demo.engine.compare(demo.run_id, "Chest pain at rest?", GenerationSettings(max_new_tokens=2,
                                                                                              greedy=True)))[-1]
    expected = PromptFormat.from_data_settings(config.data).inference_prompt(
        "Chest pain at rest?", load_tokenizer(config.model.base_model))
    assert final.prompt == expected and final.prompt.endswith("<think>\n")


def test_greedy_is_reproducible_and_sampling_follows_the_seed(demo: Any) -> None:
    def ids(settings: GenerationSettings) -> tuple[list[int], list[int]]:
        final = _drain(demo.engine.compare(demo.run_id, _question(demo), settings))[-1]
        return final.base.token_ids, final.tuned.token_ids

    greedy = GenerationSettings(max_new_tokens=8, greedy=True)
    assert ids(greedy) == ids(greedy)
    sampled = GenerationSettings(max_new_tokens=8, temperature=1.5, top_p=1.0, seed=11)
    assert ids(sampled) == ids(sampled)
    assert ids(sampled) != ids(GenerationSettings(max_new_tokens=8, temperature=1.5, top_p=1.0, seed=12))


def test_stop_ends_both_panes_at_once_and_keeps_what_was_written(demo: Any) -> None:
    stream = demo.engine.compare(demo.run_id, _question(demo), GenerationSettings(max_new_tokens=1000, greedy=True),
                                 session="stopper")
    for update in stream:
        if update.phase == "generating" and update.base.tokens >= 3:
            assert demo.engine.stop("stopper")
            break
    rest = list(stream)
    final = rest[-1]
    assert final.phase == "done" and final.stopped
    assert final.base.finish_reason == final.tuned.finish_reason == "stopped"
    assert 3 <= final.base.tokens < 100 and final.base.text
    assert not demo.engine.stop("stopper"), "nothing is left running after Stop"


def test_a_second_runs_adapter_swaps_in_without_reloading_the_base(demo: Any) -> None:
    """Run 2's adapter is run 1's with the LoRA update negated: its own output, on the same base weights."""
    from safetensors.torch import load_file, save_file

    from jobs.queue import finish
    from medcot_ui.jobkinds import enqueue
    from medcot_ui.store import RunStatus, write_session, Run

    run1, config, adapter1 = comparable_run(demo.run_id)
    run2 = enqueue("train", run1.run_config().with_overrides({"name": "negated"}))
    adapter2 = Path(run2.output_dir) / "adapter"
    shutil.copytree(adapter1, adapter2)
    weights = load_file(adapter2 / "adapter_model.safetensors")
    save_file({k: -v if "lora_B" in k else v for k, v in weights.items()}, adapter2 / "adapter_model.safetensors")
    with write_session() as s:
        s.get(Run, run2.id).status = RunStatus.running
    finish(run2.id, RunStatus.succeeded)

    engine = demo.engine
    _drain(engine.compare(demo.run_id, "Fever?", GenerationSettings(max_new_tokens=2, greedy=True)))
    base_weights = engine._loaded.model.model.embed_tokens.weight
    n = 12
    final = _drain(engine.compare(run2.id, _question(demo), GenerationSettings(max_new_tokens=n, greedy=True)))[-1]
    assert engine._loaded.model.model.embed_tokens.weight is base_weights, "base was reloaded"
    runs_loaded = {name.rsplit("-", 1)[0] for name in engine.loaded_adapters}
    assert {f"run-{demo.run_id}", f"run-{run2.id}"} <= runs_loaded
    assert final.tuned.token_ids == _reference_ids(demo, run2.id, final.prompt, n, with_adapter=True)
    assert final.base.token_ids == _reference_ids(demo, run2.id, final.prompt, n, with_adapter=False)

    # The run is resumed and saves new weights: the next comparison uses them, and the old copy is dropped.
    save_file(weights, adapter2 / "adapter_model.safetensors")
    again = _drain(engine.compare(run2.id, _question(demo), GenerationSettings(max_new_tokens=n, greedy=True)))[-1]
    assert again.tuned.token_ids == _reference_ids(demo, run2.id, again.prompt, n, with_adapter=True)
    assert again.tuned.token_ids != final.tuned.token_ids
    assert sum(name.startswith(f"run-{run2.id}-") for name in engine.loaded_adapters) == 1


@pytest.mark.parametrize("text, state, shown", [
    ("The bladder fills.\n</think>\nStress incontinence.", "closed", ["The bladder fills.", "Stress incontinence."]),
    ("Still weighing the options", "unclosed", ["Still weighing the options"]),
    ("<think>\nshort\n</think>\n\nAnswer only", "closed", ["short", "Answer only"]),
])
def test_reasoning_and_answer_are_split_for_closed_and_unclosed_think(text: str, state: str, shown: list[str]
                                                                       ) -> None:
    pane = Pane("Tuned", prompt_opened_think=True, text=text, finish_reason="eos", seconds=2.0)
    pane.tokens = 30
    messages = pane_messages("Q?", pane)
    assert pane.completion.state == state
    thinking = messages[1]
    assert thinking["metadata"]["status"] == "done" and thinking["content"] == shown[0]
    if state == "closed":
        assert thinking["metadata"]["title"] == "Thinking"
        assert messages[2]["content"].startswith(shown[1])
    else:
        assert "unfinished" in thinking["metadata"]["title"]
        assert "No answer" in messages[2]["content"] and "never closed" in messages[2]["content"]


def test_thinking_is_open_while_streaming_and_closed_once_the_answer_starts() -> None:
    pane = Pane("Base", text="Let me think about the anatomy", seconds=1.5)
    pane.tokens = 7
    messages = pane_messages("Q?", pane)
    assert messages[1]["metadata"] == {"title": "Thinking", "status": "pending", "duration": 1.5, "log": "7 tokens"}
    assert len(messages) == 2, "no answer is shown while the model is still reasoning"
    pane.text += "\n</think>\nThe answer"
    pane.think_tokens, pane.think_seconds, pane.tokens, pane.seconds = 8, 1.6, 10, 2.0
    messages = pane_messages("Q?", pane)
    assert messages[1]["metadata"] == {"title": "Thinking", "status": "done", "duration": 1.6, "log": "8 tokens"}
    assert messages[2] == {"role": "assistant", "content": "The answer"}


def test_a_completion_without_any_think_block_is_all_answer() -> None:
    pane = Pane("Base", prompt_opened_think=False, text="Just an answer.", finish_reason="eos", seconds=1.0)
    messages = pane_messages("Q?", pane)
    assert len(messages) == 2 and "metadata" not in messages[1]
    assert messages[1]["content"].startswith("Just an answer.")
    assert pane.completion.state == "none"


def test_think_token_count_and_seconds_come_from_the_token_that_closed_it(demo: Any) -> None:
    from medcot_ui.training.models import load_tokenizer

    tokenizer = load_tokenizer("demo:tiny-llama")
    pane = Pane("Tuned")
    for i, tok in enumerate(tokenizer("fever and cough</think>pneumonia", add_special_tokens=False)["input_ids"]):
        pane.add(tok, 0.1 * (i + 1))
    refresh_text(tokenizer, (pane,))
    close_at = tokenizer.convert_tokens_to_ids("</think>")
    expected = pane.token_ids.index(close_at) + 1
    assert pane.think_tokens == expected and pane.think_seconds == pytest.approx(0.1 * expected)
    assert pane.completion.answer == "pneumonia"


def test_bad_input_is_refused_with_the_field_named(demo: Any) -> None:
    with pytest.raises(CompareError, match="question: empty"):
        next(demo.engine.compare(demo.run_id, "   "))
    with pytest.raises(CompareError, match=r"temperature: 5.0 .*<= 2.0"):
        GenerationSettings.from_values(100, 5.0, 0.9, 1, False)
    with pytest.raises(CompareError, match="max_new_tokens: 0"):
        GenerationSettings.from_values(0, 0.6, 0.9, 1, False)
    with pytest.raises(CompareError, match="run 999 does not exist"):
        next(demo.engine.compare(999, "Q?"))


def test_the_generation_sliders_allow_exactly_what_the_settings_accept(demo: Any) -> None:
    import gradio as gr

    from medcot_ui.hosting.context import AppContext
    from medcot_ui.tabs import compare as tab

    with gr.Blocks():
        ui = tab.build(AppContext())
    for name in ("max_new_tokens", "temperature", "top_p"):
        slider = getattr(ui, name)
        assert (slider.minimum, slider.maximum) == GenerationSettings.bounds(name), name
    top = ui.max_new_tokens.maximum
    assert GenerationSettings.from_values(top, 0.6, 0.9, 1, False).max_new_tokens == top
    with pytest.raises(CompareError, match=f"max_new_tokens: {top + 1} "):
        GenerationSettings.from_values(top + 1, 0.6, 0.9, 1, False)
    shown = (ui.max_new_tokens.value, ui.temperature.value, ui.top_p.value, ui.seed.value, ui.greedy.value)
    assert GenerationSettings.from_values(*shown) == GenerationSettings(), "the tab starts at the defaults"


def test_a_run_that_is_not_finished_cannot_be_compared(demo: Any) -> None:
    from medcot_ui.jobkinds import enqueue
    from medcot_ui.training.presets import quick_demo

    queued = enqueue("train", quick_demo())
    with pytest.raises(CompareError, match=f"run {queued.id} is queued"):
        next(demo.engine.compare(queued.id, "Q?"))


def test_comparisons_take_turns_and_a_full_waiting_line_is_refused(demo: Any) -> None:
    engine = CompareEngine(max_waiting=1, update_interval_s=0.0)
    first = engine.compare(demo.run_id, _question(demo), GenerationSettings(max_new_tokens=400, greedy=True),
                           session="a")
    for update in first:
        if update.phase == "generating":
            break  # the first holds the model now
    second = engine.compare(demo.run_id, "Q?", GenerationSettings(max_new_tokens=2, greedy=True), session="b")
    assert next(second).phase == "waiting"
    with pytest.raises(CompareError, match="already waiting"):
        next(engine.compare(demo.run_id, "Q?", session="c"))
    engine.stop("a")
    list(first)
    assert list(second)[-1].phase == "done"


@pytest.fixture
def gpu_training_run(demo: Any) -> Any:
    """A real queued-then-claimed run row, recorded as training on a GPU (the worker writes device like this)."""
    from jobs.queue import claim_specific, finish
    from medcot_ui.jobkinds import enqueue
    from medcot_ui.training.presets import quick_demo
    from medcot_ui.store import Run, RunStatus, write_session

    run = enqueue("train", quick_demo())
    claim_specific(run.id, "test-worker")
    with write_session() as s:
        s.get(Run, run.id).device = "NVIDIA H100 80GB HBM3 (79 GiB)"
    yield run
    finish(run.id, RunStatus.interrupted)


def test_while_training_holds_the_gpu_it_waits_and_says_why_then_starts_when_memory_frees(
        demo: Any, gpu_training_run: Any) -> None:
    # The free memory the driver would report: training leaves 1 GiB for a while, then finishes a phase.
    free = iter([1 * GiB] * 4 + [70 * GiB] * 100)
    engine = CompareEngine(update_interval_s=0.0, memory_poll_s=0.01,
                           memory_probe=lambda: GpuMemory(next(free), 80 * GiB))
    updates = _drain(engine.compare(demo.run_id, "Q?", GenerationSettings(max_new_tokens=2, greedy=True)))
    waits = [u.message for u in updates if u.phase == "waiting"]
    assert waits and f"training run {gpu_training_run.id} is using the GPU" in waits[0]
    assert "1.0 GiB free of 80 GiB" in waits[0] and "left for the training run" in waits[0]
    assert updates[-1].phase == "done" and updates[-1].base.tokens


def test_when_memory_never_frees_it_refuses_with_an_explanation_instead_of_risking_oom(
        demo: Any, gpu_training_run: Any) -> None:
    engine = CompareEngine(wait_for_memory_s=0.05, memory_poll_s=0.01,
                           memory_probe=lambda: GpuMemory(1 * GiB, 80 * GiB))
    with pytest.raises(CompareError, match=rf"Not started: training run {gpu_training_run.id} is using the GPU.*"
                                           "Max new tokens"):
        _drain(engine.compare(demo.run_id, "Q?", GenerationSettings(max_new_tokens=2, greedy=True)))
    assert engine.loaded_model_id is None, "nothing was loaded onto the busy GPU"


def test_held_out_questions_are_the_runs_own_eval_rows(demo: Any) -> None:
    from medcot_ui.data.load import prepare
    from medcot_ui.training.models import load_tokenizer

    run, config, _ = comparable_run(demo.run_id)
    prepared = prepare(config.data, load_tokenizer(config.model.base_model))
    rows = held_out_rows(demo.run_id)
    assert rows == prepared.eval_rows and len(rows) == config.data.eval_size
    assert not {r.question for r in rows} & {r.question for r in prepared.train_rows}


def test_an_update_stream_left_half_read_stops_its_generation(demo: Any) -> None:
    """A page closed mid-answer: Gradio closes the generator; the generate thread must end, not run to 1000."""
    stream = demo.engine.compare(demo.run_id, _question(demo), GenerationSettings(max_new_tokens=1000, greedy=True))
    for update in stream:
        if update.phase == "generating" and update.base.tokens >= 2:
            break
    started = time.monotonic()
    stream.close()
    assert time.monotonic() - started < 10
    assert demo.engine.model_thread.submit(lambda: "idle").result(timeout=5) == "idle", "generation still running"


def test_the_static_cache_decode_path_gives_the_same_greedy_answers_as_the_eager_one(demo: Any) -> None:
    """On CUDA the engine decodes with a static KV cache (compiled there); its tokens must not change."""
    settings = GenerationSettings(max_new_tokens=12, greedy=True)
    eager = _drain(CompareEngine(fast_decode=False).compare(demo.run_id, _question(demo), settings))[-1]
    static = _drain(CompareEngine(fast_decode=True).compare(demo.run_id, _question(demo), settings))[-1]
    assert (static.base.token_ids, static.tuned.token_ids) == (eager.base.token_ids, eager.tuned.token_ids)


def test_stop_pressed_while_the_decode_step_is_prepared_ends_the_comparison_at_once(demo: Any) -> None:
    """On a GPU the decode step compiles for about a minute before the first answer; Stop must not wait for it.
    Here the model thread is kept busy, so the preparation waits as a compile would."""
    import threading

    engine = CompareEngine(fast_decode=True)
    release = threading.Event()
    stream = engine.compare(demo.run_id, _question(demo), GenerationSettings(max_new_tokens=8, greedy=True))
    busy = None
    for update in stream:
        if busy is None and update.message.startswith("Attaching the LoRA adapter"):
            busy = engine.model_thread.submit(lambda: release.wait(60))  # the preparation queues behind this
        if update.phase == "loading" and "s so far" in update.message:
            break
    assert busy is not None and not busy.done()
    engine.stop("default")
    stopped_at = time.monotonic()
    rest = list(stream)
    assert time.monotonic() - stopped_at < 3, "Stop waited for the preparation"
    assert [u.phase for u in rest][-1:] == ["done"] and rest[-1].stopped
    assert rest[-1].message.startswith("Stopped before it started. The fast decoding step goes on compiling")
    assert not [u for u in rest if u.phase == "generating"], "no answer was started"
    release.set()
    assert engine.model_thread.submit(lambda: "idle").result(timeout=60) == "idle", "the preparation finished"
    engine.unload()


@pytest.mark.parametrize("free_gib, training, four_bit_run, expected", [
    (70, False, True, False),   # a QLoRA run on a roomy, idle GPU: 16-bit weights (compiled decoding)
    (70, True, True, True),     # ... while a training run holds the GPU: 4-bit, the smaller copy
    (0.5, False, True, True),   # ... without room for 16-bit weights: 4-bit
    (70, False, False, False),  # a run trained on 16-bit weights is compared on them
])
def test_a_qlora_runs_base_is_served_in_16_bit_only_when_the_gpu_has_room(
        demo: Any, free_gib: float, training: bool, four_bit_run: bool, expected: bool) -> None:
    _, config, _ = comparable_run(demo.run_id)
    config = config.with_overrides({"model.load_in_4bit": four_bit_run})
    engine = CompareEngine(memory_probe=lambda: GpuMemory(int(free_gib * GiB), 80 * GiB),
                           training_probe=lambda: [SimpleNamespace(id=9, device="NVIDIA H100")] if training else [])
    assert engine._serve_4bit(config) is expected
