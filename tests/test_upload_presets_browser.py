"""A clinician uploads their own file, sends it to the Train form, tries every preset and launches: the run
trains on the upload. A preset fills the model and training settings and never touches the data section, and the
form says which data it trains on before Launch (a preset once switched an upload back to the demo data
silently)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import start_app, wait_for
from medcot_ui.store import get_run, run_events
from medcot_ui.training.presets import PRESET_LABELS, PRESETS
from browser_steps import choose, fill, open_tab, status_of

pytestmark = pytest.mark.browser
ROWS = 20


def upload_and_push(page: Any, tmp_path: Path) -> str:
    """Upload a JSONL of our own rows, hold 4 out, send the settings to the Train form; the name it was uploaded
    as."""
    from playwright.sync_api import expect

    notes = tmp_path / "ward-notes.jsonl"
    notes.write_text("".join(json.dumps({"Question": f"Ward case {i}: next step?", "Complex_CoT": "Check vitals.",
                                         "Response": f"Answer {i}."}) + "\n" for i in range(ROWS)),
                     encoding="utf-8")
    page.get_by_label("Uploaded file").check()
    page.locator("#dataset-upload input[type=file]").set_input_files(str(notes))
    expect(page.locator("#dataset-status")).to_contain_text(f"{ROWS} rows ready to train on", timeout=90_000)
    page.get_by_label("Held-out rows").first.fill("4")
    page.locator("#dataset-push").click()
    expect(page.get_by_text("Copied")).to_be_visible(timeout=30_000)
    return notes.name


def data_section(page: Any) -> dict[str, str]:
    return {path: page.locator(f"#field-data-{path} input").input_value()
            for path in ("source", "file_path", "file_name", "split", "eval_size")}


def try_every_preset(page: Any, uploaded: str) -> dict[str, str]:
    """Each preset fills the form (its run name shows it did); the data section and the header stay the upload."""
    open_tab(page, "Train")
    header = page.locator("#train-data")
    wait_for(lambda: uploaded in header.inner_text(), 30, what="the header to name the upload")
    data = data_section(page)
    assert data["source"] == "file" and data["file_name"] == uploaded and data["eval_size"] == "4", data
    assert Path(data["file_path"]).parent.name == "uploads"  # the stored copy the run reads
    # the Quick demo last: it is the one a CPU can train
    for label in sorted(PRESET_LABELS, key=lambda label: PRESET_LABELS[label] == "demo"):
        choose(page, "train-preset", label)
        name = PRESETS[PRESET_LABELS[label]]().name
        wait_for(lambda: page.locator("#field-name input").input_value() == name, 60, what=f"'{label}' applied")
        assert data_section(page) == data, label
        assert "uploaded file" in header.inner_text() and uploaded in header.inner_text(), label
    assert uploaded in page.locator("#train-data-launch").inner_text()  # said again beside Launch
    return data


def test_a_run_launched_after_trying_every_preset_trains_on_the_uploaded_file(processes, home, browser,
                                                                               tmp_path):
    app = start_app(processes, home)
    page = browser.new_page(viewport={"width": 1400, "height": 1800})
    page.goto(app.url)
    uploaded = upload_and_push(page, tmp_path)
    data = try_every_preset(page, uploaded)
    fill(page, "field-name", "on-my-upload")
    fill(page, "field-training-max_steps", 3)
    wait_for(lambda: "name: on-my-upload" in page.locator("#train-config-yaml").inner_text(), 60,
             what="the form to take the new name")
    page.locator("#train-launch").click()
    wait_for(lambda: status_of(page, "on-my-upload") == "succeeded", 240, interval=0.5, what="the run to train")

    run = get_run(1)
    config = json.loads(run.config_json)
    assert config["data"]["source"] == "file" and config["data"]["file_path"] == data["file_path"]
    assert config["model"]["base_model"] == "demo:tiny-llama" and config["training"]["max_steps"] == 3
    trained_on = [e.message for e in run_events(1) if e.message.startswith("data: ")]
    assert trained_on == [f"data: {ROWS - 4} training rows, 4 held out from {uploaded} (train)"], trained_on
