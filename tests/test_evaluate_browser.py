"""The Evaluate tab in a real browser: queue a held-out evaluation of the demo run, then two raters rate its answers
blind; which model wrote A and B stays hidden until each rating is saved, and the summary shows the win rate, the
raters and their agreement."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from conftest import start_app, wait_for
from medcot_ui.evaluate.records import items_of, list_evaluations
from medcot_ui.store import get_run

pytestmark = pytest.mark.browser
N = 4


def _queue_held_out_evaluation(page: Any, run_id: int) -> int:
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Evaluate").click()
    page.get_by_label("Tuned run").click()
    page.get_by_role("option", name=re.compile(rf"^run {run_id} · ")).click()
    page.get_by_label("Questions (N)").fill(str(N))
    page.get_by_label("Max new tokens").fill("24")
    page.locator("#evaluate-queue").click()
    expect(page.locator("#evaluate-queue-status")).to_contain_text(f"Queued evaluation 1: {N} questions",
                                                                    timeout=30_000)
    evaluation = list_evaluations()[0]
    wait_for(lambda: get_run(evaluation.job_id).status == "succeeded", timeout=240, what="the evaluation to finish")
    expect(page.locator("#evaluate-status")).to_contain_text(f"{2 * N}/{2 * N} answers", timeout=30_000)
    return evaluation.id


def _rate_blind(page: Any, rater: str, pick: str) -> list[str]:
    """Rate every item as ``rater``, always picking ``pick``; returns each reveal."""
    from playwright.sync_api import expect

    page.locator("#evaluate-rater input, #evaluate-rater textarea").first.fill(rater)
    reveals = []
    for number in range(1, N + 1):
        page.locator("#evaluate-next").click()
        blind = page.locator("#evaluate-blind")
        expect(blind).to_contain_text(f"Item {number} of {N}", timeout=30_000)
        expect(blind).to_contain_text("Answer A")
        expect(blind).to_contain_text("Answer B")
        for label in ("base model", "tuned model", "run 1"):  # nothing says which model wrote which
            assert label not in blind.inner_text().lower()
        assert page.locator("#evaluate-reveal").inner_text().strip() == ""
        page.locator("#evaluate-verdict").get_by_label(pick).check()
        page.locator("#evaluate-save").click()
        reveal = page.locator("#evaluate-reveal")
        expect(reveal).to_contain_text(f"Saved: {pick}.", timeout=30_000)
        reveals.append(reveal.inner_text())
    page.locator("#evaluate-next").click()
    expect(page.locator("#evaluate-blind")).to_contain_text(f"Nothing left for {rater} to rate")
    return reveals


def test_raters_rate_blind_see_the_models_only_after_rating_and_the_summary_shows_the_win_rate(
        demo_run: int, home: Path, processes: Any, browser: Any) -> None:
    from playwright.sync_api import expect

    app = start_app(processes, home)
    page = browser.new_page(viewport={"width": 1400, "height": 1800})
    page.goto(app.url)
    evaluation_id = _queue_held_out_evaluation(page, demo_run)

    reveals = _rate_blind(page, "Dr A", "A is better")
    items = items_of(evaluation_id)
    for item, reveal in zip(items, reveals):  # each reveal names the model the item's recorded order put first
        first = "tuned model (run 1)" if item.a_side == "tuned" else "base model"
        assert f"A was the {first};" in reveal
    _rate_blind(page, "Dr B", "Tie")

    tuned_first = sum(item.a_side == "tuned" for item in items)
    status = page.locator("#evaluate-status")
    expect(status).to_contain_text("Win rate of tuned model (run 1) over base model")
    expect(status).to_contain_text(f"({tuned_first}/{N}; 95% CI")
    expect(status).to_contain_text(f"{2 * N} ratings: tuned better {tuned_first}, base better {N - tuned_first}, "
                                   f"tie {N}, both unacceptable 0")
    expect(status).to_contain_text(f"Raters: Dr A ({N}), Dr B ({N})")
    expect(status).to_contain_text(f"Agreement Dr A / Dr B: Cohen's kappa")
    expect(status).to_contain_text(f"on {N} shared items")

    # The run's published model card carries the evaluation: what, N, the interval, who rated, research use only.
    from medcot_ui.publish.card import build_card, gather

    section = str(build_card(gather(demo_run))).split("## Evaluation", 1)[1].split("## Base vs tuned", 1)[0]
    for expected in (f"blind A/B rating of held-out answers, N = {N} questions", f"({tuned_first}/{N}; 95% CI",
                     f"Raters: Dr A ({N}), Dr B ({N})", "Research use only"):
        assert expected in section
