"""GRPO: a clinician reinforces a model on multiple-choice questions from the same form and queue as SFT.

The rewards are plain functions checked directly; a GRPO run of the demo model goes through the real worker and
a real GRPOTrainer, logs its rewards every step, survives kill -9 by resuming from its checkpoint, and ends as a
run that Compare and Evaluate accept.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from conftest import cli, wait_for
from medcot_ui.reinforce.rewards import RewardLog, correctness, format_score, length_penalty, reward_functions
from medcot_ui.store import get_run, run_events, run_metrics
from medcot_ui.training.config import ConfigError
from medcot_ui.training.presets import grpo_quick, quick_demo

OPTIONS = {"A": "Aspirin", "B": "Heparin", "C": "Protamine"}


@pytest.mark.parametrize("completion, reward", [
    ("Heparin is reversed by protamine.\n</think>\nThe answer is C.", 1.0),
    ("reasoning</think>\n(C)", 1.0),
    ("reasoning</think>\nProtamine", 1.0),  # the option's text alone names it
    ("reasoning</think>\nThe answer is B.", 0.0),
    ("The answer is C.", 0.0),  # still inside <think>: unfinished reasoning is never an answer
    ("reasoning</think>\nB or C", 0.0),  # two letters: no answer
])
def test_the_correctness_reward_is_one_only_for_the_key_read_after_the_reasoning(completion: str,
                                                                                  reward: float) -> None:
    assert correctness(completion, OPTIONS, "C") == reward


def test_the_format_reward_wants_one_closed_reasoning_block_then_one_letter() -> None:
    assert format_score("why</think>\nAnswer: A", OPTIONS) == 1.0
    assert format_score("why</think>\nAnswer: D", OPTIONS) == 0.0, "D is not an option"
    assert format_score("why</think> A</think> B", OPTIONS) == 0.0
    assert format_score("why</think><think>more</think> A", OPTIONS) == 0.0
    assert format_score("Answer: A", OPTIONS, opened=False) == 1.0, "a prompt that opened no <think> block"


def test_the_length_penalty_is_the_share_of_the_budget_used() -> None:
    assert (length_penalty(0, 512), length_penalty(128, 512), length_penalty(900, 512)) == (0.0, -0.25, -1.0)


def test_weighted_rewards_reach_trl_under_their_metric_names_and_all_zero_weights_are_refused() -> None:
    log = RewardLog([])
    funcs, weights = reward_functions({"correctness": 1.0, "format": 0.5, "length": 0.0}, 64, log)
    assert [f.__name__ for f in funcs] == ["right_answer", "answer_format"] and weights == [1.0, 0.5]
    scores = funcs[0](prompts=["Q <think>\n"] * 2, completions=["x</think> C", "x</think> A"],
                      options=[json.dumps(OPTIONS)] * 2, key=["C", "C"])
    assert scores == [1.0, 0.0] and log.sample()[0].startswith("reward +1.00: 'x</think> C'")
    with pytest.raises(ValueError, match="every reward weight is 0"):
        reward_functions({"correctness": 0.0, "format": 0.0, "length": 0.0}, 64, log)


def test_a_group_size_that_does_not_divide_the_completions_per_step_is_refused_naming_the_fields() -> None:
    with pytest.raises(ConfigError, match=r"grpo.num_generations: 3 must divide batch size x gradient "
                                          r"accumulation \(4 x 2\)"):
        grpo_quick().with_overrides({"grpo.num_generations": 3})
    assert grpo_quick().job_kind == "grpo" and quick_demo().job_kind == "train"


def test_continuous_batching_is_refused_on_unsloth_where_it_was_measured_failing() -> None:
    from jobs.grpo import generation_problem

    config = grpo_quick().with_overrides({"grpo.generation": "continuous_batching"})
    assert generation_problem(config, "unsloth").startswith("grpo.generation: continuous batching does not run "
                                                            "with the Unsloth backend")
    assert generation_problem(config, "transformers") is None
    assert generation_problem(grpo_quick(), "unsloth") is None, "the default generation runs everywhere"


def test_evaluating_a_grpo_run_flags_the_questions_it_reinforced_on_but_not_its_held_out_ones(home: Path) -> None:
    from medcot_ui.evaluate.contamination import check_contamination, normalise
    from medcot_ui.evaluate.create import training_texts
    from medcot_ui.jobkinds import enqueue
    from medcot_ui.reinforce.questions import load_questions

    config = grpo_quick()
    run_id = enqueue("grpo", config).id
    questions = load_questions(config)
    trained = training_texts([run_id])
    assert len(trained) == len(questions.train) == 20
    everything = check_contamination([q.question for q in questions.train + questions.held_out], trained)
    # The rule needs 64 shared characters (or 13 words): shorter questions can never be flagged.
    long_enough = [i for i, q in enumerate(questions.train) if len(normalise(q.question)) >= 64]
    assert len(long_enough) >= 10 and everything.flagged == long_enough, "none of the 4 held out is flagged"


def test_the_train_form_estimates_grpo_from_the_measured_step_and_gives_no_numbers_where_none_was_measured() -> None:
    from medcot_ui.training.estimate_text import describe
    from medcot_ui.training.presets import grpo_recipe

    on_cpu = describe(grpo_quick(), cuda=False)
    assert on_cpu.startswith("Each step samples 4 completions of up to 24 tokens for each of 2 questions")
    assert "No GRPO time estimate here (no GPU on this machine)" in on_cpu and " s per step" not in on_cpu
    recipe = describe(grpo_recipe(), cuda=True)
    assert "About **86 s per step** (69 s generating, 17 s training), so **2.4 h** for 100 steps" in recipe
    assert "about **30 GB** of GPU memory" in recipe and "one measured step on an H100" in recipe
    shorter = describe(grpo_recipe().with_overrides({"grpo.max_completion_length": 256}), cuda=True)
    assert "(34 s generating, 11 s training)" in shorter, "generation scales with the completion length"


def test_a_grpo_run_logs_rewards_every_step_resumes_after_kill_9_and_is_evaluable(
        home: Path, tmp_path: Path, processes) -> None:  # noqa: ANN001
    from medcot_ui.compare.comparable import comparable_runs
    from medcot_ui.evaluate.create import EvalRequest, create_evaluation

    config = grpo_quick().with_overrides({"training.max_steps": 60, "training.save_steps": 10})
    path = tmp_path / "grpo.yaml"
    path.write_text(config.to_yaml(), encoding="utf-8")
    out = cli("enqueue", str(path))
    run_id = int(out.stdout.split("queued run ")[1].split()[0])
    assert get_run(run_id).kind == "grpo"
    processes.worker()
    wait_for(lambda: (get_run(run_id).last_step or 0) >= 14, timeout=120, interval=0.02, what="step 14")
    os.kill(get_run(run_id).pid, signal.SIGKILL)
    wait_for(lambda: get_run(run_id).status == "interrupted", timeout=5, what="interrupted within the lease")
    assert "killed" in get_run(run_id).error

    cli("resume", str(run_id))
    wait_for(lambda: get_run(run_id).status in {"succeeded", "failed"}, timeout=120, what="the resumed run")
    run = get_run(run_id)
    assert run.status == "succeeded", run.error
    messages = [e.message for e in run_events(run_id)]
    assert any(m.startswith("resuming from checkpoint-10 (step 10)") for m in messages), messages
    assert any(m.startswith("questions: 20 to reinforce on, 4 held out") for m in messages)
    assert any(m.startswith("step 60 completions: reward ") for m in messages), "a sample per logging step"
    metrics = run_metrics(run_id)
    assert [m.step for m in metrics] == list(range(1, 61)), "each step once, none restarted from 0"
    for m in metrics:
        extra = json.loads(m.extra_json)
        assert {"reward", "reward_std", "rewards/right_answer/mean", "rewards/answer_format/mean", "kl",
                "completions/mean_length", "clip_ratio/region_mean"} <= extra.keys()
    held_out = (Path(run.output_dir) / "held_out_questions.jsonl").read_text().splitlines()
    assert len(held_out) == 4 and {"question", "options", "answer_idx"} <= json.loads(held_out[0]).keys()

    assert run_id in [r.id for r in comparable_runs()]
    evaluation = create_evaluation(EvalRequest(kind="choice", run_id=run_id, n=4, source="file",
                                               file_path=str(Path(run.output_dir) / "held_out_questions.jsonl")))
    assert evaluation.n_items == 4

    from medcot_ui.publish import card as model_card

    card = str(model_card.build_card(model_card.gather(run_id)))
    assert "reinforcement with a verifiable reward (TRL `GRPOTrainer`: 4 completions per" in card


def test_on_a_toy_task_whose_key_is_always_c_grpo_raises_the_correctness_reward(home: Path, tmp_path: Path,
                                                                                 processes) -> None:  # noqa: ANN001
    """The demo model knows the answer format but picks letters at chance; GRPO alone must teach it the rule."""
    findings = ["fever", "cough", "rash", "pain", "edema", "anemia", "sepsis", "seizure", "murmur", "jaundice"]
    questions = tmp_path / "always_c.jsonl"
    questions.write_text("".join(json.dumps({
        "question": f"Toy question {i}: which finding fits?",
        "options": dict(zip("ABCD", [findings[(i + k) % 10] for k in range(4)])), "answer_idx": "C"}) + "\n"
        for i in range(40)), encoding="utf-8")
    config = grpo_quick().with_overrides({
        "grpo.questions": "file", "grpo.questions_file": str(questions), "grpo.temperature": 0.7,
        "grpo.max_completion_length": 40, "grpo.num_generations": 8, "training.per_device_train_batch_size": 8,
        "training.gradient_accumulation_steps": 1, "training.learning_rate": 1e-2, "training.max_steps": 40,
        "training.logging_steps": 1, "training.save_steps": 1000})
    path = tmp_path / "toy.yaml"
    path.write_text(config.to_yaml(), encoding="utf-8")
    run_id = int(cli("enqueue", str(path)).stdout.split("queued run ")[1].split()[0])
    processes.worker()
    wait_for(lambda: get_run(run_id).status in {"succeeded", "failed"}, timeout=240, what="the toy GRPO run")
    assert get_run(run_id).status == "succeeded", get_run(run_id).error
    right = [json.loads(m.extra_json)["rewards/right_answer/mean"] for m in run_metrics(run_id)]
    first, last = sum(right[:10]) / 10, sum(right[-10:]) / 10
    assert last > first + 0.3, (first, last, right)
