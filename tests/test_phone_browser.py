"""The Runs and Compare tabs on a phone (390 px wide), in a real browser: nothing scrolls sideways, the runs are
a compact list whose lines wrap between words (not letter by letter), and nothing lies over another element --
checked on the page's own boxes, with a screenshot kept for a person to look at."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from browser_steps import open_tab
from conftest import start_app, wait_for
from medcot_ui.jobkinds import enqueue
from medcot_ui.training.presets import quick_demo

pytestmark = pytest.mark.browser
PHONE = {"width": 390, "height": 844}

# For each element matched: its box, its line count, and whether the element drawn at its centre is inside it
# (an element floating over it would be drawn there instead).
BOXES_JS = """(selector) => [...document.querySelectorAll(selector)].filter(e => e.offsetParent !== null).map(e => {
  e.scrollIntoView({block: 'center'});
  const r = e.getBoundingClientRect();
  const top = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
  const lineHeight = parseFloat(getComputedStyle(e).lineHeight) || 20;
  return {text: e.innerText.trim(), x: r.left, y: r.top + window.scrollY, w: r.width, h: r.height,
          lines: Math.round(e.getBoundingClientRect().height / lineHeight), onTop: e.contains(top)};
})"""


def boxes(page: Any, selector: str) -> list[dict[str, Any]]:
    return page.evaluate(BOXES_JS, selector)


def overlapping(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] and a["y"] < b["y"] + b["h"] and \
        b["y"] < a["y"] + a["h"]


def assert_fits_the_phone(page: Any, items: list[dict[str, Any]], max_lines: int, uncovered: bool = True) -> None:
    """No sideways scrolling; each item inside the screen, readable in a few lines, uncovered, apart from the rest.
    (A pane's name badge sits inside the pane's own frame by design: ``uncovered=False`` for those.)"""
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    for i, item in enumerate(items):
        assert item["x"] >= 0 and item["x"] + item["w"] <= PHONE["width"], item
        assert item["lines"] <= max_lines, f"wraps into {item['lines']} lines: {item}"
        assert item["onTop"] or not uncovered, f"something lies over {item['text']!r}"
        assert not [other for other in items[i + 1:] if overlapping(item, other)], item


def test_on_a_phone_the_runs_read_as_a_list_and_compare_stacks_its_named_panes(
        demo_run: int, home: Path, processes: Any, browser: Any, tmp_path: Path) -> None:
    for name in ("sepsis-lactate-threshold-review", "pediatric-dosing"):
        enqueue("train", quick_demo().with_overrides({"name": name}))  # no worker: they stay queued, with a reason
    app = start_app(processes, home, "--no-worker")
    page = browser.new_page(viewport=PHONE)
    page.goto(app.url)

    open_tab(page, "Runs")
    wait_for(lambda: len(boxes(page, "#runs-list label")) == 3, 30, what="three runs in the phone list")
    assert not page.locator("#runs-table").is_visible()  # the ten-column table is the wide screen's
    runs = boxes(page, "#runs-list label")
    assert runs[0]["text"].startswith("#3 pediatric-dosing · queued")
    assert "quick-demo · succeeded" in runs[2]["text"]
    assert_fits_the_phone(page, runs, max_lines=4)
    assert min(r["w"] for r in runs) > PHONE["width"] * 0.7  # a full-width line each, not a narrow column
    page.screenshot(path=str(tmp_path / "runs-390.png"), full_page=True)
    page.locator("#runs-list label").nth(2).click()
    wait_for(lambda: f"Run {demo_run}: quick-demo" in page.locator("#run-header").inner_text(), 20,
             what="the run chosen in the list to be shown")
    assert_fits_the_phone(page, boxes(page, "#run-cancel, #run-resume, #run-clone, #run-delete"), max_lines=2)

    open_tab(page, "Compare")
    panes = boxes(page, "#compare-base, #compare-tuned")
    assert len(panes) == 2
    assert_fits_the_phone(page, panes, max_lines=10_000)
    assert panes[0]["y"] + panes[0]["h"] <= panes[1]["y"], "the panes are stacked, base first"
    labels = boxes(page, "#compare-base [data-testid=block-label], #compare-tuned [data-testid=block-label]")
    assert [label["text"] for label in labels][:1] == ["Base model"] and labels[1]["text"].startswith("Tuned")
    assert_fits_the_phone(page, labels, max_lines=2, uncovered=False)
    page.screenshot(path=str(tmp_path / "compare-390.png"), full_page=True)
