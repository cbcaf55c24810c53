"""Blind rating stays blind: until a rater has rated every item (or someone who may run evaluations ends rating),
the items table, every item's details and the CSV / JSONL exports (with ``a_side``) are refused to that rater.
Checked in the logic the tab calls, so no hidden button or direct API call gets round it."""

from __future__ import annotations

from pathlib import Path

import pytest

from medcot_ui.evaluate import blinding, rating, view
from medcot_ui.evaluate.create import EvalRequest, create_evaluation
from medcot_ui.evaluate.export import export_csv, export_jsonl
from medcot_ui.evaluate.records import items_of
from medcot_ui.evaluate.tables import EvalItem
from medcot_ui.store import write_session


def answered_evaluation(run_id: int, n: int = 3) -> int:
    """A held-out A/B evaluation whose questions both models have answered (as its job stores them)."""
    evaluation = create_evaluation(EvalRequest(run_id=run_id, n=n))
    with write_session() as s:
        for item in items_of(evaluation.id):
            row = s.get(EvalItem, item.id)
            for side in ("base", "tuned"):
                setattr(row, f"{side}_text", f"{side} wrote this")
                setattr(row, f"{side}_answer", f"{side} wrote this")
            s.add(row)
    return evaluation.id


def sides_visible(evaluation_id: int, rater: str) -> bool:
    table, detail = view.items_table(evaluation_id, rater), view.item_markdown(evaluation_id, 1, rater)
    visible = bool(table) and "Base" in detail
    assert visible == ("still being rated blind" not in detail), detail
    return visible


def test_a_rater_sees_which_model_wrote_what_and_can_export_only_after_rating_every_item(
        demo_run: int, tmp_path: Path) -> None:
    eid = answered_evaluation(demo_run)
    items = items_of(eid)
    for done, item in enumerate(items):
        assert not sides_visible(eid, "alice"), f"after {done} of {len(items)} ratings"
        for export in (export_csv, export_jsonl):
            with pytest.raises(blinding.StillBlind, match=rf"until alice has rated every item \({done} of 3"):
                export(eid, tmp_path / "out", rater="alice")
        rating.rate(item.id, "alice", "A")
    assert sides_visible(eid, "alice")
    assert "a_side" in export_csv(eid, tmp_path / "alice.csv", rater="alice").read_text(encoding="utf-8-sig")
    assert not sides_visible(eid, "bob"), "bob has rated nothing: still blind to him"
    with pytest.raises(blinding.StillBlind):
        export_jsonl(eid, tmp_path / "bob.jsonl", rater="")  # no name is no way round it either


def test_an_owner_ending_rating_opens_the_sides_to_every_rater_and_says_who_ended_it(demo_run: int,
                                                                                    tmp_path: Path) -> None:
    eid = answered_evaluation(demo_run)
    assert not sides_visible(eid, "bob")
    assert "every rater now sees" in blinding.end_rating(eid, "carol")
    assert sides_visible(eid, "bob")
    assert export_jsonl(eid, tmp_path / "bob.jsonl", rater="bob").read_text().count('"a_side"') == 3
    from medcot_ui.evaluate.records import get_evaluation
    from medcot_ui.store import run_events

    job = get_evaluation(eid).job_id
    assert any(e.message.startswith("rating ended by carol") for e in run_events(job))
