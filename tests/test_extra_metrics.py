"""Metrics keep every key the trainer logs: what has no column of its own (token accuracy, entropy, tokens seen)
is stored with its step, and the Runs tab's "More metrics" chart offers it."""
from __future__ import annotations

import json

from jobs.callbacks import merged_extras
from medcot_ui.jobkinds import enqueue
from medcot_ui.runs.extra_metrics import extra_frame, extra_keys
from medcot_ui.store import Metric, run_metrics, write_session
from medcot_ui.training.presets import quick_demo


def test_a_trained_run_keeps_token_accuracy_entropy_and_tokens_and_the_charts_offer_them(demo_run: int) -> None:
    keys = extra_keys(demo_run)
    assert {"mean_token_accuracy", "entropy", "num_tokens"} <= set(keys), keys
    assert "eval_mean_token_accuracy" in keys, "the evaluation rows' keys are offered too"
    assert not {"loss", "eval_loss", "learning_rate", "grad_norm", "epoch"} & set(keys), "those have their charts"
    frame = extra_frame(demo_run, "num_tokens")
    assert len(frame) == len([m for m in run_metrics(demo_run) if m.loss is not None])
    assert frame["value"].is_monotonic_increasing and frame["value"].iloc[-1] > 0


def test_a_training_and_an_evaluation_log_at_one_step_keep_both_sets_of_keys() -> None:
    stored = merged_extras(None, {"loss": 1.2, "mean_token_accuracy": 0.5, "entropy": float("nan"), "flag": True})
    both = json.loads(merged_extras(stored, {"eval_loss": 1.4, "eval_mean_token_accuracy": 0.4}))
    assert both == {"mean_token_accuracy": 0.5, "eval_mean_token_accuracy": 0.4}
    assert merged_extras(None, {"loss": 1.0, "epoch": 0.5}) is None


def test_a_long_history_is_thinned_keeping_the_last_step_and_a_run_without_extras_offers_none(home) -> None:  # noqa: ANN001
    run_id = enqueue("train", quick_demo()).id
    assert extra_keys(run_id) == [] and extra_frame(run_id, None).empty
    with write_session() as s:
        for step in range(1, 10_001):
            s.add(Metric(run_id=run_id, step=step, loss=1.0, extra_json=json.dumps({"entropy": step / 10})))
    frame = extra_frame(run_id, "entropy", max_points=1500)
    assert 1400 <= len(frame) <= 1501 and frame["step"].iloc[-1] == 10_000 and frame["step"].iloc[0] == 1
    assert extra_frame(run_id, "missing").empty


def test_a_grpo_runs_menu_opens_on_the_reward_then_correctness_spread_format_length_kl_and_clipping(home) -> None:  # noqa: ANN001
    from medcot_ui.training.presets import grpo_quick

    run_id = enqueue("grpo", grpo_quick()).id
    logged = {"entropy": 1.0, "kl": 0.01, "reward": 0.5, "reward_std": 0.2, "rewards/right_answer/mean": 0.4,
              "rewards/answer_format/mean": 0.9, "completions/mean_length": 30.0, "clip_ratio/region_mean": 0.0,
              "step_time": 0.3}
    with write_session() as s:
        s.add(Metric(run_id=run_id, step=1, loss=0.0, extra_json=json.dumps(logged)))
    assert extra_keys(run_id) == ["reward", "rewards/right_answer/mean", "reward_std", "rewards/answer_format/mean",
                                  "completions/mean_length", "kl", "clip_ratio/region_mean", "entropy", "step_time"]
