"""The Publish tab in a real browser: export the demo run's adapter as a zip, then try to publish with the Hub
out of reach and see the failure named, recorded and offered for retry -- with the token nowhere on the page; and
download a merged and a GGUF export through the browser and open them with transformers and llama.cpp."""

from __future__ import annotations

import re
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import pytest

from conftest import fake_hf_token, free_port, start_app
from medcot_ui.publish import gguf, gguf_build

pytestmark = pytest.mark.browser
CANARY = fake_hf_token("CANARYbrowserTOKENneverSHOWN")


def test_a_user_exports_the_adapter_zip_and_sees_an_unreachable_hub_recorded_for_retry(
        demo_run: int, home: Path, processes: Any, browser: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    app = start_app(processes, home, "--no-worker", HF_ENDPOINT=f"http://127.0.0.1:{free_port()}",
                    HF_HUB_OFFLINE="0")
    page = browser.new_page(viewport={"width": 1400, "height": 1800})
    page.goto(app.url)
    page.get_by_role("tab", name="Publish").click()

    # The finished run is chosen already, with its summary and a default repository name.
    expect(page.locator("#publish-run-info")).to_contain_text(f"Run {demo_run} · quick-demo · succeeded",
                                                              timeout=30_000)
    expect(page.locator("#publish-repo textarea")).to_have_value("quick-demo")
    kinds = page.locator("#publish-kind")
    if gguf_build.offer().ok:
        expect(kinds).to_contain_text("GGUF q4_k_m + q8_0")
    else:
        expect(kinds).not_to_contain_text("GGUF")
        expect(page.locator("#publish-gguf-note")).to_contain_text("GGUF export is off")
    page.get_by_label("Merged 16-bit model").check()
    expect(page.locator("#publish-repo textarea")).to_have_value("quick-demo-merged")
    page.get_by_label("LoRA adapter + tokenizer").check()
    expect(page.locator("#publish-repo textarea")).to_have_value("quick-demo")

    page.locator("#publish-export").click()
    status = page.locator("#publish-status")
    expect(status).to_contain_text(re.compile(r"Exported\. To download \(under Export locally\): 1 archive, [\d.]+ KB"),
                                   timeout=60_000)
    link = page.locator("#publish-downloads a[download]").first
    expect(link).to_have_attribute("download", "quick-demo-adapter.zip")
    zip_path = tmp_path / "adapter.zip"
    with urllib.request.urlopen(link.get_attribute("href")) as resp:
        zip_path.write_bytes(resp.read())
    with zipfile.ZipFile(zip_path) as z:
        assert {"adapter_model.safetensors", "adapter_config.json", "README.md"} <= set(z.namelist())

    page.get_by_label("Hugging Face token (write access)").fill(CANARY)
    page.locator("#publish-go").click()
    expect(status).to_contain_text("Cannot reach the Hub.", timeout=60_000)
    expect(status).to_contain_text("Recorded as a failed publish")
    history = page.locator("#publish-history")
    expect(history).to_contain_text("failed")
    expect(history).to_contain_text("succeeded")
    expect(page.locator("#publish-retry")).to_be_visible()

    page.locator("#publish-retry").click()
    expect(history.get_by_text("failed")).to_have_count(2, timeout=60_000)
    assert CANARY not in page.content()
    assert re.search(r"Cannot reach the Hugging Face Hub at http://127\.0\.0\.1:\d+", status.inner_text())


def _download(page: Any, name: str, to: Path) -> Path:
    """Click the file's link in the Download box, as a person would, and keep what the browser saved."""
    with page.expect_download() as download:
        page.locator(f'#publish-downloads a[download="{name}"]').click()
    download.value.save_as(to / name)
    return to / name


@pytest.mark.skipif(not gguf.availability().ok, reason="llama.cpp's GGUF tools are not installed: make install-gguf")
def test_a_merged_and_a_gguf_export_download_through_the_browser_and_open(
        demo_run: int, home: Path, processes: Any, browser: Any, tmp_path: Path) -> None:
    from llama_cpp import Llama
    from playwright.sync_api import expect
    from transformers import AutoModelForCausalLM, AutoTokenizer

    app = start_app(processes, home, "--no-worker")
    page = browser.new_page(viewport={"width": 1400, "height": 1800}, accept_downloads=True)
    page.goto(app.url)
    page.get_by_role("tab", name="Publish").click()
    expect(page.locator("#publish-run-info")).to_contain_text(f"Run {demo_run}", timeout=30_000)
    status = page.locator("#publish-status")

    page.get_by_label("Merged 16-bit model").check()
    page.locator("#publish-export").click()
    expect(status).to_contain_text(re.compile(r"1 archive, [\d.]+ (KB|MB) in all"), timeout=120_000)
    archive = _download(page, "quick-demo-merged.zip", tmp_path)
    with zipfile.ZipFile(archive) as z:
        z.extractall(tmp_path / "merged")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "merged")
    ids = tokenizer("Which artery?", return_tensors="pt").input_ids
    assert model.generate(ids, max_new_tokens=2, do_sample=False).shape[1] == ids.shape[1] + 2

    page.get_by_label("GGUF q4_k_m + q8_0").check()
    page.locator("#publish-export").click()
    gguf_first = r"5 files, [\d.]+ (KB|MB) in all: quick-demo-Q4_K_M\.gguf \([\d.]+ KB\), quick-demo-Q8_0\.gguf"
    expect(status).to_contain_text(re.compile(gguf_first), timeout=120_000)
    for name in ("quick-demo-Q4_K_M.gguf", "quick-demo-Q8_0.gguf"):
        llm = Llama(model_path=str(_download(page, name, tmp_path)), n_ctx=64, verbose=False)
        try:
            assert llm("Which artery?", max_tokens=2, temperature=0.0)["usage"]["completion_tokens"] > 0
        finally:
            llm.close()
