"""A reviewer wants the standard benchmark table in minutes: multiple choice scored by log-likelihood, as
lm-evaluation-harness scores MedQA, with no generation. The scores are the log-probabilities the model gives each
option's letter, checked here against a direct computation on the tiny model."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from medcot_ui.evaluate.loglik import OptionScores, context_of, score_options

OPTIONS = {"A": "Left anterior descending artery", "B": "Right coronary artery", "C": "Left circumflex artery",
           "D": "Left main coronary artery"}
QUESTION = "ST elevation in II, III and aVF: which artery is most likely occluded?"


def direct_logprob(model, tokenizer, context: str, letter: str) -> float:
    """log P(" X" | context), one unpadded sequence, summed token by token."""
    import torch

    whole = tokenizer(context + f" {letter}")["input_ids"]
    head = len(tokenizer(context)["input_ids"])
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([whole])).logits[0].double()
    total = 0.0
    for position in range(head, len(whole)):
        total += float(torch.log_softmax(logits[position - 1], dim=-1)[whole[position]])
    return total


def test_each_options_score_is_its_letters_log_probability_given_the_harness_prompt(built_demo_model: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(built_demo_model)
    model = AutoModelForCausalLM.from_pretrained(built_demo_model).eval()
    context = context_of(QUESTION, OPTIONS)
    assert context == (f"Question: {QUESTION}\nA. Left anterior descending artery\nB. Right coronary artery\n"
                       "C. Left circumflex artery\nD. Left main coronary artery\nAnswer:")
    scores = score_options(model, tokenizer, QUESTION, OPTIONS, rows=6)  # padded rows change nothing
    for letter in OPTIONS:
        assert scores.logprob[letter] == pytest.approx(direct_logprob(model, tokenizer, context, letter), abs=1e-4)
        assert scores.logprob[letter] < 0
    assert scores.acc_choice == max(OPTIONS, key=lambda k: scores.logprob[k])
    assert OptionScores.from_json(scores.to_json()) == scores


def test_acc_norm_divides_by_the_continuations_bytes() -> None:
    scores = OptionScores({"A": -4.0, "B": -6.0}, {"A": 2, "B": 6})
    assert scores.acc_choice == "A" and scores.norm_choice == "B"  # -2.0 per byte against -1.0
    assert OptionScores.from_json("an ordinary generated answer") is None


def test_a_loglik_evaluation_runs_through_the_worker_and_reports_acc_and_acc_norm_for_both_models(
        demo_run: int, processes) -> None:
    from conftest import cli, wait_for
    from medcot_ui.evaluate.create import EvalRequest, EvaluationError, create_evaluation
    from medcot_ui.evaluate.records import get_evaluation, items_of
    from medcot_ui.store import get_run

    with pytest.raises(EvaluationError, match="method: log-likelihood scoring needs multiple-choice questions"):
        create_evaluation(EvalRequest(run_id=demo_run, method="loglik"))
    out = cli("eval", "choice", str(demo_run), "--source", "demo", "--method", "loglik", "-n", "12").stdout
    evaluation_id = int(out.split("queued evaluation ")[1].split()[0])
    processes.worker()
    job_id = get_evaluation(evaluation_id).job_id
    wait_for(lambda: get_run(job_id).status == "succeeded", timeout=180, what="the log-likelihood evaluation")
    items = items_of(evaluation_id)
    for item in items:
        for side in ("base", "tuned"):
            scores = OptionScores.from_json(getattr(item, f"{side}_text"))
            assert scores is not None and getattr(item, f"{side}_choice") == scores.acc_choice
            assert all(math.isfinite(v) for v in scores.logprob.values())
    # the adapter changes the scores: the two sides are not one model scored twice
    assert any(i.base_text != i.tuned_text for i in items)
    shown = cli("eval", "show", str(evaluation_id)).stdout
    assert "by log-likelihood, N = 12 questions" in shown
    assert "acc, base model:" in shown and "acc, tuned model (run 1):" in shown and "acc_norm" in shown
    assert "exact McNemar p =" in shown and "Unparsed" not in shown
