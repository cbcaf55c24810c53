"""The Compare tab in a real browser: pick the finished demo run, ask a held-out question, watch both answers stream
with their thinking blocks, stop them, mark a preference and download the comparison."""

from __future__ import annotations

import csv
import io
import re
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import start_app, train_demo_run, wait_for

pytestmark = pytest.mark.browser


def _token_count(page: Any, pane: str) -> int:
    """The token count the pane's thinking block shows (0 before it appears)."""
    logs = page.locator(f"#compare-{pane} .thought-group .duration")
    if logs.count() == 0:
        return 0
    match = re.match(r"\s*(\d+) tokens", logs.first.inner_text())
    return int(match.group(1)) if match else 0


def _pick_run_and_held_out_question(page: Any, run_id: int, sample: Any) -> None:
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Compare").click()
    page.get_by_label("Tuned run").click()
    page.get_by_role("option", name=re.compile(rf"^run {run_id} · ")).click()
    expect(page.get_by_text("8 held-out questions from this run's data.")).to_be_visible(timeout=30_000)
    page.get_by_label("Held-out question from this run").click()
    page.get_by_role("option").first.click()
    expect(page.get_by_label("Question", exact=True)).to_have_value(sample.question, timeout=15_000)
    page.get_by_text("Reference reasoning and answer").click()
    expect(page.get_by_text(sample.answer[:40])).to_be_visible()


def _compare_watch_both_stream_and_stop(page: Any) -> tuple[int, int]:
    """Both panes stream at once: each shows a thinking block, open with a spinner, whose token count grows while
    the other pane is still going too. Stop ends both; returns their token counts at the stop."""
    from playwright.sync_api import expect

    page.locator("#compare-go").click()
    status = page.locator("#compare-status")
    wait_for(lambda: _token_count(page, "base") >= 2 and _token_count(page, "tuned") >= 2, timeout=90,
             what="both panes to start streaming")
    first = (_token_count(page, "base"), _token_count(page, "tuned"))
    for pane in ("base", "tuned"):
        expect(page.locator(f"#compare-{pane} .thought-group .title.expanded")).to_be_visible()
        expect(page.locator(f"#compare-{pane} .thought-group .loading-spinner")).to_be_visible()
    wait_for(lambda: _token_count(page, "base") > first[0] and _token_count(page, "tuned") > first[1], timeout=60,
             what="both panes to grow")
    expect(status).to_contain_text("Generating both answers")

    page.locator("#compare-stop").click()
    expect(status).to_contain_text("Stopped", timeout=30_000)
    expect(status).to_contain_text("Saved as comparison #1", timeout=30_000)
    stopped_at = (_token_count(page, "base"), _token_count(page, "tuned"))
    assert stopped_at[0] < 1200 and stopped_at[1] < 1200
    time.sleep(1.0)
    assert (_token_count(page, "base"), _token_count(page, "tuned")) == stopped_at, "nothing streams after Stop"
    return stopped_at


def _unfinished_thinking_is_labelled_closed_and_toggles(page: Any) -> None:
    """The demo model never closes </think>: the block says so, is closed now, and opens and closes on a click."""
    from playwright.sync_api import expect

    title = page.locator("#compare-tuned .thought-group .title")
    expect(title).to_contain_text("Thinking (unfinished: the reasoning never closed with </think>)")
    expect(title).not_to_have_class(re.compile(r"\bexpanded\b"))
    expect(page.locator("#compare-tuned").get_by_text("No answer: the reasoning was never closed")).to_be_visible()
    title.click()
    expect(title).to_have_class(re.compile(r"\bexpanded\b"))
    title.click()
    expect(title).not_to_have_class(re.compile(r"\bexpanded\b"))


def _prefer_tuned_and_download_csv(page: Any, sample: Any) -> list[dict[str, str]]:
    from playwright.sync_api import expect

    page.get_by_label("Tuned is better").check()
    page.get_by_label("Note (optional)").fill("=shorter reasoning")
    page.get_by_role("button", name="Save preference").click()
    expect(page.get_by_text("Saved Tuned is better for comparison #1.")).to_be_visible(timeout=15_000)
    page.get_by_text("Saved comparisons").click()
    expect(page.locator("#compare-saved [data-testid='cell-0-3']")).to_contain_text(sample.question[:30])
    with page.expect_download(timeout=30_000) as download:  # one click, and the browser saves the file
        page.get_by_role("button", name="Download CSV").click()
    return list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8-sig"))))


def test_a_user_compares_a_held_out_question_sees_both_stream_stops_them_and_exports(
        home: Path, processes: Any, browser: Any) -> None:
    from medcot_ui.compare.comparable import held_out_rows

    run_id = train_demo_run()
    sample = held_out_rows(run_id)[0]
    app = start_app(processes, home, "--no-worker")
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    page.goto(app.url)

    _pick_run_and_held_out_question(page, run_id, sample)
    stopped_at = _compare_watch_both_stream_and_stop(page)
    _unfinished_thinking_is_labelled_closed_and_toggles(page)
    rows = _prefer_tuned_and_download_csv(page, sample)

    assert len(rows) == 1
    row = rows[0]
    assert row["question"] == sample.question and row["run_id"] == str(run_id)
    assert row["stopped"] == "True" and row["base_finish"] == row["tuned_finish"] == "stopped"
    assert row["preferred"] == "tuned" and row["note"] == "'=shorter reasoning"
    assert row["reference_answer"] == sample.answer
    assert int(row["base_tokens"]) == stopped_at[0] and int(row["tuned_tokens"]) == stopped_at[1]
    assert list((home / "exports").glob("comparisons-run-*.csv")), "the export is also kept in the data folder"
