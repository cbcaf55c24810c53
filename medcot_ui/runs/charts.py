"""The Runs tab's charts: a run's metric rows (thinned in the database for long histories) as the frames the four
plots draw, and the signature the tab polls to redraw them only when a step was logged (no Gradio)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from sqlalchemy import func, text
from sqlmodel import select

from medcot_ui.store import Metric, read_session

CHART_MAX_POINTS = 1500    # longer histories are thinned evenly (the last point is always kept)


def metric_signature(run_id: int | None) -> tuple[int, int | None] | None:
    """(rows, last step) of a run's metrics: charts are redrawn only when this changes."""
    if run_id is None:
        return None
    with read_session() as s:
        count, last = s.exec(select(func.count(Metric.id), func.max(Metric.step))
                             .where(Metric.run_id == run_id)).one()
    return int(count), last


CHART_COLUMNS = ("step", "loss", "learning_rate", "grad_norm", "tokens_per_s", "seconds_per_step", "gpu_mem_gb",
                 "eval_loss")
_COLS = ", ".join(CHART_COLUMNS)
# Long histories are thinned in the database (every k-th row, plus every eval row and the latest training loss),
# so a 100,000-step run costs about the same to draw as a 1,500-step one. Window functions: SQLite >= 3.25 and
# PostgreSQL.
_THINNED = text(f"SELECT {_COLS} FROM (SELECT {_COLS}, row_number() OVER (ORDER BY step) AS rn "
                "FROM metrics WHERE run_id = :run_id) AS m "
                "WHERE (rn - 1) % :stride = 0 OR eval_loss IS NOT NULL OR step = (SELECT max(step) FROM metrics "
                "WHERE run_id = :run_id AND loss IS NOT NULL) ORDER BY step")


def metric_rows(run_id: int, max_points: int = CHART_MAX_POINTS) -> list[tuple[Any, ...]]:
    """The run's metric rows (the chart columns), in step order, thinned to about ``max_points``."""
    count = (metric_signature(run_id) or (0, None))[0]
    stride = max(1, -(-count // max_points))
    with read_session() as s:
        return [tuple(r) for r in s.connection().execute(_THINNED, {"run_id": run_id, "stride": stride})]


TRAIN_LOSS, EVAL_LOSS = "train loss", "eval loss"  # the loss chart's two series
# The learning-rate chart plots multiples of 1e-4: its axis labels stay short ("2" for the recipe's 2e-4), where
# the plot would clip "0.0002" and SI prefixes ("200µ", ".2m") read badly.
LR_UNIT, LR_TITLE = 1e-4, "Learning rate (× 1e-4)"


def loss_series(evaluates: bool) -> tuple[str, ...]:
    """The loss chart's series (and so its legend): eval loss only for a run that evaluates."""
    return (TRAIN_LOSS, EVAL_LOSS) if evaluates else (TRAIN_LOSS,)


def loss_title(evaluates: bool) -> str:
    return f"Loss ({', '.join(s.removesuffix(' loss') for s in loss_series(evaluates))})"


def chart_frames(rows: list[tuple[Any, ...]], with_eval: bool = False) -> dict[str, pd.DataFrame]:
    """Data for the four charts: loss (train, and eval when the run evaluates), learning rate, grad norm, tokens/s.

    Column types are fixed (int step, float value, text series) even when there is no data yet: the plot infers
    its axis types from the first frame it gets, and an empty untyped frame would make them categorical. For the
    same reason every series has a row from the start (a missing one gets a single empty point, which the plot
    skips): the plot takes its colours from the series in its first frame and would draw a later one invisibly.
    """
    index = {c: i for i, c in enumerate(CHART_COLUMNS)}

    def points(*series: tuple[str, str], unit: float = 1.0) -> pd.DataFrame:
        picked = [(r[0], r[index[col]] / unit, label) for col, label in series for r in rows
                  if r[index[col]] is not None]
        first_step = picked[0][0] if picked else 0
        picked += [(first_step, math.nan, label) for _, label in series if label not in {p[2] for p in picked}]
        return pd.DataFrame({"step": pd.Series([p[0] for p in picked], dtype="int64"),
                             "value": pd.Series([p[1] for p in picked], dtype="float64"),
                             "series": pd.Series([p[2] for p in picked], dtype="str")})

    return {"loss": points(*zip(("loss", "eval_loss"), loss_series(with_eval))),
            "learning_rate": points(("learning_rate", "learning rate"), unit=LR_UNIT),
            "grad_norm": points(("grad_norm", "grad norm")), "tokens_per_s": points(("tokens_per_s", "tokens/s"))}
