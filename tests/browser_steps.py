"""Small browser steps the Train, Runs and phone stories share (Playwright pages on the running app)."""

from __future__ import annotations

import re
from typing import Any

from conftest import wait_for

TABLE_JS = """() => {
  const rows = {};
  for (const c of document.querySelectorAll('#runs-table [role=gridcell]')) {
    (rows[c.dataset.row] ||= {})[c.dataset.col] = c.innerText.trim();
  }
  return Object.values(rows).map(r => ({name: r[1], status: r[2], steps: r[8], queue: r[9]}));
}"""


def runs_table(page: Any) -> dict[str, dict[str, str]]:
    return {r["name"]: r for r in page.evaluate(TABLE_JS) if r.get("name")}


def status_of(page: Any, name: str) -> str | None:
    return runs_table(page).get(name, {}).get("status")


def choose(page: Any, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def fill(page: Any, elem_id: str, value: Any) -> None:
    box = page.locator(f"#{elem_id} input, #{elem_id} textarea").first
    box.fill(str(value))
    box.press("Tab")  # commit the value, as leaving the field does


def open_tab(page: Any, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()


def on_tab(page: Any, name: str, what: str) -> None:
    wait_for(lambda: page.get_by_role("tab", name=name, exact=True).get_attribute("aria-selected") == "true", 20,
             what=what)


def select_run(page: Any, name: str) -> None:
    cell = page.locator("#runs-table [role=gridcell][data-col='1']").filter(has_text=re.compile(rf"^\s*{name}\s*$"))
    cell.click()
    wait_for(lambda: f": {name}" in page.locator("#run-header").inner_text(), 20, what=f"run '{name}' shown")
