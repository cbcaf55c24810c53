"""The runs table as a phone-width list: one readable line per run (a ten-column table on a 390 px screen wraps
letter by letter)."""

from __future__ import annotations

import pandas as pd


def compact_choices(table: pd.DataFrame) -> list[tuple[str, int]]:
    """(label, run id) per row of ``runs.table.table_frame()``, e.g. "#3 sepsis-lr2 · running · 12 / 60 steps ·
    loss 1.2345"; a queued run adds where it waits."""
    choices = []
    for row in table.to_dict("records"):
        parts = [f"#{row['id']} {row['name']}", str(row["status"]), f"{row['steps']} steps"]
        if row["last loss"] not in ("", "-", None):
            parts.append(f"loss {row['last loss']}")
        if row["queue"]:
            parts.append(f"queue {row['queue']}")
        choices.append((" · ".join(parts), int(row["id"])))
    return choices
