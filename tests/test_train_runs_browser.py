"""A user launches training from the Train form and follows it in the Runs tab, in a real browser.

The app is started the README's way (``python app.py``, which starts its own worker) with the demo model;
Debian's chromium is driven by Playwright. Two runs: 'first' (3000 steps, so it is still training while we
reload and cancel it) and 'second' (queued behind it, then trains to the end).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from browser_steps import choose, fill, on_tab, open_tab, runs_table, select_run, status_of
from conftest import start_app, wait_for
from jobs.queue import purge_deleted
from medcot_ui.store import get_run, run_events
from medcot_ui.training.config import RunConfig

pytestmark = pytest.mark.browser

LOSS_POINTS_JS = """() => {
  const line = [...document.querySelectorAll('#chart-loss path[aria-roledescription="line mark"]')]
    .find(p => (p.getAttribute('aria-label') || '').includes('train loss'));
  // a line drawn without a colour is invisible to the user: it does not count
  const stroke = line && getComputedStyle(line).stroke;
  const d = line && line.getAttribute('d');  // null while the series has no point yet
  return d && stroke && stroke !== 'none' && stroke !== 'transparent' ? d.split('L').length : 0;
}"""


def loss_points(page: Any) -> int:
    return page.evaluate(LOSS_POINTS_JS)


def wait_for_status(page: Any, run_id: int, name: str, status: str) -> None:
    """Wait for the run's row (the real SQLite file) to reach ``status``, then for the page to show it: on a loaded
    machine the stop itself can take long (the trainer reaches its next step, checkpoints, saves its adapter), and
    the page's one-second poll comes on top. A timeout says which of the two is late, with the run's last events."""
    def row_has_it() -> bool:
        return get_run(run_id).status == status

    try:
        wait_for(row_has_it, 240, interval=0.3, what=f"run {run_id} ('{name}') to be {status} in the database")
    except AssertionError as exc:
        events = [e.message for e in run_events(run_id)][-6:]
        raise AssertionError(f"{exc}; it is {get_run(run_id).status}, last events: {events}") from None
    wait_for(lambda: status_of(page, name) == status, 30, interval=0.3, what=f"the page to show '{name}' {status}")


def fill_demo_form(page: Any, name: str, max_steps: int) -> None:
    open_tab(page, "Train")
    choose(page, "train-preset", "Quick demo (CPU)")
    wait_for(lambda: page.locator("#field-model-base_model input").input_value() == "demo:tiny-llama", 60,
             what="the preset to fill the form")
    fill(page, "field-name", name)
    fill(page, "field-training-max_steps", max_steps)
    # choosing a preset re-checks the whole form, which can take a while on a busy 2-core machine
    wait_for(lambda: f"name: {name}" in page.locator("#train-config-yaml").inner_text(), 60,
             what="the resolved config to show the new name")


def launch_demo(page: Any, name: str, max_steps: int) -> None:
    fill_demo_form(page, name, max_steps)
    page.locator("#train-launch").click()
    on_tab(page, "Runs", "Launch to switch to the Runs tab")
    wait_for(lambda: f": {name}" in page.locator("#run-header").inner_text(), 20, what=f"run '{name}' selected")


def refuse_bad_settings(page: Any, tmp_path: Path) -> None:
    """The form validates next to the field before anything is queued; a config file that does not validate is
    refused line by line, and the form is left as it was."""
    open_tab(page, "Train")
    fill(page, "field-training-max_steps", -1)
    error = page.locator("#error-training-max_steps")
    wait_for(lambda: "greater than or equal to 0" in error.inner_text(), 20, what="the field's own error")
    page.locator("#train-launch").click()
    wait_for(lambda: "Not launched" in page.locator("#train-launch-msg").inner_text(), 20, what="launch refused")
    assert page.get_by_role("tab", name="Train", exact=True).get_attribute("aria-selected") == "true"
    bad = tmp_path / "bad.yaml"
    bad.write_text("training:\n  max_steps: -5\n  max_stepz: 3\n")
    with page.expect_file_chooser() as chooser:
        page.locator("#train-load").click()
    chooser.value.set_files(str(bad))
    summary = page.locator("#train-summary")
    wait_for(lambda: "Could not load bad.yaml" in summary.inner_text(), 20, what="the load error")
    assert "training.max_steps: Input should be greater than or equal to 0" in summary.inner_text()
    assert "training.max_stepz: unknown setting" in summary.inner_text()
    assert page.locator("#field-training-max_steps input").input_value() == "-1"


def save_and_launch_first(page: Any) -> None:
    """'first': the CPU preset with 3000 steps, so it is still training while we look at it and after its resume
    (on a loaded machine 300 were done before the second cancel landed). Its config is saved
    as YAML first, and the file holds exactly what the form shows."""
    fill_demo_form(page, "first", 3000)
    assert "No GPU on this machine" in page.locator("#train-estimate").inner_text()  # the estimate says where it trains
    assert "medcot enqueue" in page.locator("#train-cli").inner_text()
    page.locator("#train-save").click()
    link = page.locator("#train-saved a[download='first.yaml']")
    wait_for(lambda: link.count(), 20, what="the saved config's download link")
    with page.expect_download() as download:
        link.click()
    saved = RunConfig.from_yaml(Path(download.value.path()).read_text())
    assert saved.name == "first" and saved.training.max_steps == 3000 and saved.model.base_model == "demo:tiny-llama"
    page.locator("#train-launch").click()
    on_tab(page, "Runs", "Launch to switch to the Runs tab")
    wait_for(lambda: status_of(page, "first") == "running", 90, interval=0.3, what="'first' to start training")


def queue_second_behind_first(page: Any) -> None:
    """'second', launched while 'first' trains: it waits, and the UI says why."""
    launch_demo(page, "second", 60)
    header = page.locator("#run-header").inner_text()
    assert "queued" in header and "Queue position #1" in header
    assert "waiting: run 1 (first) is training" in header
    wait_for(lambda: runs_table(page).get("second", {}).get("queue") == "#1 · run 1 (first) is training", 20,
             what="the table's queue column")


def watch_first_live_and_after_a_reload(page: Any) -> None:
    """The loss chart of 'first' gains points while it trains; reloading loses nothing (it is all in the DB)."""
    select_run(page, "first")
    before = wait_for(lambda: loss_points(page), 60, interval=0.3, what="the first loss points")
    wait_for(lambda: loss_points(page) > before, 60, interval=0.3, what="more loss points")
    page.reload()
    open_tab(page, "Runs")
    wait_for(lambda: status_of(page, "first") == "running" and status_of(page, "second") == "queued", 30,
             what="both runs after the reload")
    select_run(page, "first")
    wait_for(lambda: loss_points(page) > before, 30, what="the chart after the reload")
    assert "tokens/s" in page.locator("#run-perf").inner_text()


def cancel_first(page: Any) -> None:
    """Cancel asks first; the run stops at its next step (and 'second' takes over the worker)."""
    page.locator("#run-cancel").click()
    confirm = page.locator("#confirm-cancel-row")
    wait_for(lambda: "Cancel run 1 (first)?" in confirm.inner_text(), 20, what="the confirmation")
    assert status_of(page, "first") == "running"  # asking is not doing
    page.locator("#confirm-cancel").click()
    wait_for_status(page, 1, "first", "cancelled")


def watch_second_to_the_end(page: Any) -> None:
    """'second' goes queued -> running -> succeeded, its loss chart filling in as it trains."""
    select_run(page, "second")
    seen: list[str] = ["queued"]
    counts: list[int] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        status = status_of(page, "second")
        if status and status != seen[-1]:
            seen.append(status)
        if status == "running":
            counts.append(loss_points(page))
        if status in {"succeeded", "failed", "cancelled", "interrupted"}:
            break
        time.sleep(0.2)
    assert seen == ["queued", "running", "succeeded"], seen
    assert len({c for c in counts if c}) >= 2, f"the loss chart did not grow while running: {counts}"
    wait_for(lambda: loss_points(page) == 60, 30, what="all 60 logged steps on the chart")
    assert runs_table(page)["second"]["steps"] == "60 / 60"
    assert "succeeded at step 60 of 60" in page.locator("#run-progress").inner_text()
    # no evaluation in this run: the legend lists the train loss only
    assert "train loss" in page.locator("#chart-loss").inner_html()
    assert "eval loss" not in page.locator("#chart-loss").inner_html()
    page.get_by_text("Files on disk", exact=True).click()  # open the accordion
    wait_for(lambda: "adapter/" in page.locator("#run-artifacts").inner_text(), 20, what="the adapter on disk")


def clone_second_then_resume_first(page: Any) -> None:
    page.locator("#run-clone").click()
    on_tab(page, "Train", "Clone to switch to the Train tab")
    wait_for(lambda: page.locator("#field-name input").input_value() == "second-copy", 20, what="the cloned name")
    assert page.locator("#field-training-max_steps input").input_value() == "60"
    open_tab(page, "Runs")
    select_run(page, "first")
    page.locator("#run-resume").click()
    wait_for(lambda: "resuming from checkpoint-" in page.locator("#run-log").inner_text(), 120, interval=0.3,
             what="'first' to resume from its checkpoint")
    assert status_of(page, "first") == "running" and "attempt 2" in page.locator("#run-header").inner_text()
    page.locator("#run-cancel").click()
    page.locator("#confirm-cancel").click()
    wait_for_status(page, 1, "first", "cancelled")


def delete_first(page: Any) -> None:
    page.locator("#run-delete").click()
    wait_for(lambda: "Delete run 1 (first)" in page.locator("#confirm-delete-row").inner_text(), 20,
             what="the delete confirmation")
    assert "You can undo this" in page.locator("#confirm-delete-row").inner_text()
    page.locator("#confirm-delete").click()
    wait_for(lambda: "first" not in runs_table(page), 20, what="'first' to leave the table")


def delete_undo_and_delete_for_good(page: Any, home: Path) -> None:
    delete_first(page)
    assert (home / "runs" / "run-1").exists(), "a deleted run's files wait for the undo period"
    page.locator("#run-undo-delete").click()
    wait_for(lambda: status_of(page, "first") == "cancelled", 20, what="'first' back in the table after Undo")
    assert "Run 1 (first) is back" in page.locator("#run-action-msg").inner_text()
    assert ": first" in page.locator("#run-header").inner_text()
    delete_first(page)
    page.locator("#runs-deleted").get_by_text("Recently deleted runs").click()
    page.locator("#runs-deleted-list input").click()
    assert page.get_by_role("option").filter(has_text="run 1 · first · cancelled").count() == 1
    page.keyboard.press("Escape")
    assert purge_deleted(0) == [1]  # what the worker does once the undo period is over
    assert not (home / "runs" / "run-1").exists()
    assert "second" in runs_table(page)


@pytest.mark.timeout(600)  # two real trainings and a resume on a shared 2-core machine
def test_launch_watch_reload_cancel_and_finish_runs_from_the_browser(processes, home, browser, tmp_path):
    app = start_app(processes, home)
    page = browser.new_page(viewport={"width": 1400, "height": 1800})
    page.goto(app.url)
    refuse_bad_settings(page, tmp_path)
    save_and_launch_first(page)
    queue_second_behind_first(page)
    watch_first_live_and_after_a_reload(page)
    cancel_first(page)
    watch_second_to_the_end(page)
    clone_second_then_resume_first(page)
    delete_undo_and_delete_for_good(page, home)
