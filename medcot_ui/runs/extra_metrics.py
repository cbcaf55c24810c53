"""The metrics without a chart of their own (token accuracy, entropy, num_tokens and whatever else the trainer
logs, kept in ``metrics.extra_json``): which a run has, and one of them as a chart's frame (no Gradio)."""

from __future__ import annotations

import json

import pandas as pd
from sqlalchemy import text
from sqlmodel import select

from medcot_ui.runs.charts import CHART_MAX_POINTS
from medcot_ui.store import Metric, read_session


# What a GRPO run is watched by (TRL's names), first in the menu in this order, so the chart opens on the reward.
GRPO_HEADLINE = ("reward", "rewards/right_answer/mean", "reward_std", "rewards/answer_format/mean",
                 "completions/mean_length", "kl", "clip_ratio/region_mean")


def extra_keys(run_id: int | None) -> list[str]:
    """The extra keys of the run's latest training row and latest evaluation row (two indexed reads, whatever the
    run's length): what the "More metrics" menu offers, a GRPO run's headline metrics first, then by name."""
    if run_id is None:
        return []
    keys: set[str] = set()
    with read_session() as s:
        for logged in (Metric.loss, Metric.eval_loss):
            row = s.exec(select(Metric.extra_json).where(Metric.run_id == run_id, logged.is_not(None),
                                                         Metric.extra_json.is_not(None))
                         .order_by(Metric.step.desc()).limit(1)).first()
            keys |= set(json.loads(row)) if row else set()
    return [k for k in GRPO_HEADLINE if k in keys] + sorted(keys - set(GRPO_HEADLINE))


# Thinned in the database like the fixed charts (every k-th row with extras, plus the last), so a 100,000-step run
# parses about as much JSON as a 1,500-step one.
_THINNED = text("SELECT step, extra_json FROM (SELECT step, extra_json, row_number() OVER (ORDER BY step) AS rn, "
                "count(*) OVER () AS n FROM metrics WHERE run_id = :run_id AND extra_json IS NOT NULL) AS m "
                "WHERE (rn - 1) % (1 + (n - 1) / :max_points) = 0 OR rn = n ORDER BY step")


def extra_frame(run_id: int | None, key: str | None, max_points: int = CHART_MAX_POINTS) -> pd.DataFrame:
    """(step, value) of ``key`` over the run, thinned evenly to about ``max_points`` (the last point kept); typed
    columns even when empty, as the fixed charts' frames."""
    points: list[tuple[int, float]] = []
    if run_id is not None and key:
        with read_session() as s:
            rows = s.connection().execute(_THINNED, {"run_id": run_id, "max_points": max_points}).all()
        points = [(step, values[key]) for step, text_ in rows if key in (values := json.loads(text_))]
    return pd.DataFrame({"step": pd.Series([p[0] for p in points], dtype="int64"),
                         "value": pd.Series([p[1] for p in points], dtype="float64")})
