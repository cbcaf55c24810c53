"""The Dataset tab in a real browser: the Hub is unreachable and says so, the demo data loads with its rows,
histogram and exact training text, the settings go to the Train form, a broken JSONL upload is rejected with
its line number and leaves nothing behind, and a good upload with other column names is recognised."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import start_app

from medcot_ui.training.models import BOS, EOS

pytestmark = pytest.mark.browser


DEMO_QUESTIONS = [json.loads(line)["Question"] for line in
                  Path("data/demo/medical_demo.jsonl").read_text(encoding="utf-8").splitlines()]


def see_the_hub_is_unreachable(page: Any, status: Any) -> None:
    """The tab opens on the demo data (no network needed); the Hub, chosen by hand, says plainly it is out of reach
    and offers the way forward."""
    from playwright.sync_api import expect

    expect(page.locator("#dataset-source").get_by_label("Demo data (bundled)")).to_be_checked()
    page.locator("#dataset-source").get_by_label("Hugging Face Hub").check()
    page.locator("#dataset-load").click()
    expect(status).to_contain_text("The Hugging Face Hub is unreachable from this machine", timeout=60_000)
    expect(status).to_contain_text("Press Load the demo data, or upload a file")


def see_the_demo_rows_histogram_and_training_text(page: Any, status: Any) -> Any:
    from playwright.sync_api import expect

    page.locator("#dataset-demo").click()
    expect(status).to_contain_text("120 rows ready to train on", timeout=90_000)
    expect(page.locator("#dataset-rows")).to_contain_text(DEMO_QUESTIONS[0][:60])
    expect(page.locator("#dataset-summary")).to_contain_text("Tokens per epoch")
    expect(page.locator("#dataset-hist .vega-embed")).to_be_visible()
    expect(page.locator("#dataset-hist").get_by_text("tokens per row", exact=True)).to_be_visible()
    bars = page.locator('#dataset-hist svg path[aria-roledescription="bar"]')
    expect(bars.first).to_be_attached()
    counts = [int(re.search(r"rows: (\d+)", bars.nth(i).get_attribute("aria-label")).group(1))
              for i in range(bars.count())]
    assert len(counts) >= 5 and sum(counts) == 120
    training_text = page.locator("#dataset-training-text textarea")
    expect(training_text).to_have_value(re.compile("^" + re.escape(BOS) + "Below is an instruction"))
    assert "<think>\n" in training_text.input_value() and "</think>" in training_text.input_value()
    expect(page.locator("#dataset-prompt textarea")).to_have_value(re.compile(r"### Response:\n<think>\n$"))
    return training_text


def preview_row_3_and_truncate_at_4096(page: Any, training_text: Any) -> None:
    """Any row can be previewed (the checked rows are kept on the server; the page holds only their key)."""
    from playwright.sync_api import expect

    page.get_by_label("Row to preview").fill("3")
    page.get_by_label("Row to preview").press("Enter")
    expect(page.locator("#dataset-row-info")).to_contain_text("Row 3 of 120")
    expect(training_text).to_have_value(re.compile(re.escape(DEMO_QUESTIONS[2][:60])))
    page.get_by_label("Max sequence length").first.fill("4096")
    page.get_by_label("Max sequence length").first.press("Enter")
    expect(page.locator("#dataset-summary")).to_contain_text("Truncated at 4096 tokens", timeout=60_000)
    expect(training_text).to_have_value(re.compile(re.escape(EOS) + "$"))


def push_to_train_and_count_with_its_model(page: Any) -> None:
    """The checked settings go into the Train form; the tokens are counted again with the tokenizer of the model
    chosen there (the recipe's model is not on this machine: the demo tokenizer stood in, and said so)."""
    from playwright.sync_api import expect

    summary = page.locator("#dataset-summary")
    expect(summary).to_contain_text("could not be loaded")
    page.get_by_label("Held-out rows").first.fill("5")
    page.locator("#dataset-push").click()
    expect(page.get_by_text("Copied")).to_be_visible(timeout=30_000)
    page.get_by_role("tab", name="Train").click()
    expect(page.locator("#field-data-source input")).to_have_value("demo")
    expect(page.locator("#field-data-eval_size input")).to_have_value("5")
    expect(page.locator("#field-model-max_seq_length input")).to_have_value("4096")
    page.locator("#field-model-base_model input").fill("demo:tiny-llama")
    page.locator("#field-model-base_model input").press("Enter")
    page.get_by_role("tab", name="Dataset").click()
    expect(page.get_by_label("Model (its tokenizer counts the tokens)")).to_have_value("demo:tiny-llama")
    expect(summary).to_contain_text("Tokenizer: demo:tiny-llama", timeout=60_000)
    expect(summary).not_to_contain_text("could not be loaded")


def upload_a_broken_jsonl(page: Any, status: Any, home: Path, tmp_path: Path) -> None:
    """Rejected with its line number, and nothing of it is kept."""
    from playwright.sync_api import expect

    broken = tmp_path / "broken.jsonl"
    good = {"Question": "q?", "Complex_CoT": "r", "Response": "a"}
    broken.write_text(json.dumps(good) + "\n" + json.dumps(good) + "\n{\"Question\": \"no end\"\n",
                      encoding="utf-8")
    page.get_by_label("Uploaded file").check()
    page.locator("#dataset-upload input[type=file]").set_input_files(str(broken))
    expect(status).to_contain_text("Upload rejected", timeout=30_000)
    expect(status).to_contain_text("broken.jsonl: line 3 is not valid JSON")
    uploads = home / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())


def upload_a_csv_with_other_column_names(page: Any, status: Any, home: Path, tmp_path: Path) -> None:
    """Stored under its content hash, columns recognised, rows shown."""
    from playwright.sync_api import expect

    csv_file = tmp_path / "notes.csv"
    csv_file.write_text("instruction,rationale,output\n" + "".join(
        f'"Case {i}: which artery?","II, III, aVF are inferior.","The right coronary artery ({i})."\n'
        for i in range(12)), encoding="utf-8")
    page.locator("#dataset-upload input[type=file]").set_input_files(str(csv_file))
    expect(status).to_contain_text("12 rows ready to train on", timeout=60_000)
    expect(status).to_contain_text("Recognised columns: question = 'instruction', reasoning = 'rationale', "
                                   "answer = 'output'")
    expect(page.locator("#dataset-rows")).to_contain_text("The right coronary artery (11).")
    [stored] = list((home / "uploads").iterdir())
    assert stored.suffix == ".csv" and stored.read_bytes() == csv_file.read_bytes()
    expect(page.locator("#dataset-file-name textarea, #dataset-file-name input")).to_have_value("notes.csv")


def test_a_user_checks_the_demo_data_sends_it_to_train_and_gets_a_line_numbered_upload_error(
        home: Path, processes: Any, browser: Any, tmp_path: Path) -> None:
    app = start_app(processes, home, "--no-worker")
    page = browser.new_page(viewport={"width": 1400, "height": 1800})
    page.goto(app.url)
    status = page.locator("#dataset-status")
    see_the_hub_is_unreachable(page, status)
    training_text = see_the_demo_rows_histogram_and_training_text(page, status)
    preview_row_3_and_truncate_at_4096(page, training_text)
    push_to_train_and_count_with_its_model(page)
    upload_a_broken_jsonl(page, status, home, tmp_path)
    upload_a_csv_with_other_column_names(page, status, home, tmp_path)


def test_a_large_upload_shows_progress_while_its_tokens_are_counted(home: Path, processes: Any, browser: Any,
                                                                    tmp_path: Path) -> None:
    import sys

    from playwright.sync_api import expect

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    from data_stats import synthetic_rows  # the bench's rows of realistic length

    big = tmp_path / "big.jsonl"
    big.write_text("".join(json.dumps(r) + "\n" for r in synthetic_rows(3000)), encoding="utf-8")
    app = start_app(processes, home, "--no-worker")
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    page.goto(app.url)
    page.get_by_label("Uploaded file").check()
    page.locator("#dataset-upload input[type=file]").set_input_files(str(big))
    status = page.locator("#dataset-status")
    expect(status).to_contain_text(re.compile(r"Counting tokens: [\d,]+ of 3,000 rows"), timeout=60_000)
    expect(status).to_contain_text("3,000 rows ready to train on", timeout=120_000)
