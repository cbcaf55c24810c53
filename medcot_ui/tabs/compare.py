"""Compare tab: one question, the base model and a tuned run answer side by side, streaming (layout and wiring)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from medcot_ui.compare import stored as comparisons
from medcot_ui.compare.comparable import comparable_runs, held_out, held_out_rows
from medcot_ui.compare.engine import CompareEngine
from medcot_ui.compare.errors import CompareError
from medcot_ui.compare.generation import GenerationSettings
from medcot_ui.compare.messages import pane_messages
from medcot_ui.compare.panes import CompareUpdate
from medcot_ui.errors import DataError
from medcot_ui.hosting.context import AppContext
from medcot_ui.tabs.guard import guard, may
from medcot_ui.tabs.inputs import follow_selected_run, run_id_of
from medcot_ui.tabs.wiring import Updates, bound, unchanged
from medcot_ui.units import shorten

ENGINE_KEY = "compare_engine"
PREFERENCE_LABELS = {"Base is better": "base", "Tuned is better": "tuned", "Tie": "tie"}
PICK_SAMPLE = "*Pick a held-out question to see its reference.*"
INTRO = ("Ask one question; the **Base model** pane and the **Tuned model** pane (the same weights with the run's "
         "LoRA adapter) answer it at the same time, with the prompt format the run was trained on. Each "
         "answer's reasoning is the collapsible *Thinking* block. Every comparison is saved below. Research use "
         "only: not for clinical decisions.")


@dataclass
class CompareTab:
    """The Compare tab's components (what its handlers read and update), and the engine they drive."""
    engine: CompareEngine
    run: gr.Dropdown
    refresh: gr.Button
    run_info: gr.Markdown
    sample: gr.Dropdown
    reference: gr.Markdown
    question: gr.Textbox
    max_new_tokens: gr.Slider
    temperature: gr.Slider
    top_p: gr.Slider
    seed: gr.Number
    greedy: gr.Checkbox
    compare: gr.Button
    stop: gr.Button
    status: gr.Markdown
    base_chat: gr.Chatbot
    tuned_chat: gr.Chatbot
    current: gr.State  # id of the comparison shown in the panes
    preferred: gr.Radio
    note: gr.Textbox
    save_preference: gr.Button
    preference_status: gr.Markdown
    only_run: gr.Checkbox
    saved: gr.Dataframe
    download_csv: gr.Button
    download_jsonl: gr.Button
    download: gr.File


def engine_of(ctx: AppContext) -> CompareEngine:
    """The process-wide engine (one copy of the base weights for every visitor)."""
    return ctx.services.setdefault(ENGINE_KEY, CompareEngine())


# ---- layout -----------------------------------------------------------------------------------------------

def _slider(name: str, step: float) -> gr.Slider:
    """A slider whose range, default, label and help are the generation setting's own."""
    field = GenerationSettings.model_fields[name]
    lo, hi = GenerationSettings.bounds(name)
    return gr.Slider(lo, hi, value=field.default, step=step, label=field.title, info=field.description)


def _settings_inputs() -> dict[str, Any]:
    """The generation settings' inputs, drawn from GenerationSettings (one source of ranges and defaults)."""
    fields = GenerationSettings.model_fields
    with gr.Accordion("Generation settings", open=False):
        with gr.Row():
            inputs = {"max_new_tokens": _slider("max_new_tokens", 1), "temperature": _slider("temperature", 0.01),
                      "top_p": _slider("top_p", 0.01)}
        with gr.Row():
            inputs["seed"] = gr.Number(fields["seed"].default, precision=0, label=fields["seed"].title,
                                       info=fields["seed"].description)
            inputs["greedy"] = gr.Checkbox(fields["greedy"].default, label=fields["greedy"].title,
                                           info=fields["greedy"].description)
    return inputs


def _question_inputs() -> dict[str, Any]:
    with gr.Row(equal_height=False):
        run = gr.Dropdown(choices=[], value=None, label="Tuned run",
                          info="A finished run (or a cancelled one that saved its adapter). The base model is the "
                               "one the run was trained from.", scale=4)
        refresh = gr.Button("Refresh runs", scale=0, size="sm")
    run_info = gr.Markdown()
    sample = gr.Dropdown(choices=[], value=None, label="Held-out question from this run",
                         info="Rows the run never trained on (same split, same seed). Or type your own below.")
    with gr.Accordion("Reference reasoning and answer (from the data)", open=False):
        reference = gr.Markdown(PICK_SAMPLE)
    question = gr.Textbox(label="Question", lines=3, placeholder="A clinical question, e.g. a case vignette ending "
                          "in what the next step or finding would be.")
    return {"run": run, "refresh": refresh, "run_info": run_info, "sample": sample, "reference": reference,
            "question": question}


def _answer_outputs() -> dict[str, Any]:
    with gr.Row():
        compare = gr.Button("Compare", variant="primary", elem_id="compare-go")
        stop = gr.Button("Stop", variant="stop", elem_id="compare-stop")
    status = gr.Markdown(elem_id="compare-status")
    with gr.Row(equal_height=True):
        base_chat = gr.Chatbot(label="Base model", height=520, elem_id="compare-base", buttons=["copy"],
                               feedback_options=None)
        tuned_chat = gr.Chatbot(label="Tuned model (base + the run's adapter)", height=520, elem_id="compare-tuned",
                                buttons=["copy"], feedback_options=None)
    current = gr.State(None)
    with gr.Row(equal_height=True):
        preferred = gr.Radio(list(PREFERENCE_LABELS), label="Which answer is better?", scale=2)
        note = gr.Textbox(label="Note (optional)", scale=3, lines=1)
        save_preference = gr.Button("Save preference", scale=0)
    preference_status = gr.Markdown()
    return {"compare": compare, "stop": stop, "status": status, "base_chat": base_chat, "tuned_chat": tuned_chat,
            "current": current, "preferred": preferred, "note": note, "save_preference": save_preference,
            "preference_status": preference_status}


def _saved_list() -> dict[str, Any]:
    with gr.Accordion("Saved comparisons", open=False):
        only_run = gr.Checkbox(True, label="Only the selected run")
        saved = gr.Dataframe(headers=comparisons.TABLE_HEADERS, value=[], interactive=False, wrap=True,
                             elem_id="compare-saved", max_height=400,
                             column_widths=["5%", "11%", "5%", "27%", "17%", "17%", "6%", "7%", "5%"])
        gr.Markdown("<sub>Click a row to show it in the panes again (and mark a preference).</sub>")
        with gr.Row():
            download_csv = gr.Button("Download CSV (spreadsheet)", size="sm")
            download_jsonl = gr.Button("Download JSONL (one record per line, for scripts)", size="sm")
        download = gr.File(label="Download", interactive=False, elem_id="compare-download", height=90)
    return {"only_run": only_run, "saved": saved, "download_csv": download_csv, "download_jsonl": download_jsonl,
            "download": download}


def build(ctx: AppContext) -> CompareTab:
    gr.Markdown(INTRO)
    # The sections are drawn in page order (arguments are evaluated left to right).
    ui = CompareTab(engine=engine_of(ctx), **_question_inputs(), **_settings_inputs(), **_answer_outputs(),
                    **_saved_list())
    _bind(ui)
    return ui


# ---- handlers ---------------------------------------------------------------------------------------------

def _run_choices(request: gr.Request | None) -> list[tuple[str, int]]:
    """The runs this caller may compare (listed when the menu opens: nothing stored is baked into the page)."""
    if not may(request, "compare"):
        return []
    return [(r.label, r.id) for r in comparable_runs()]


def _scope(run_id: int | None, only_run: bool) -> int | None:
    """Which run's comparisons to list or export: the selected one when asked to, else all (None)."""
    return run_id_of(run_id) if only_run and run_id is not None else None


def _saved(request: gr.Request | None, run_id: int | None) -> list[list[Any]]:
    """The saved-comparisons list for callers who may see stored work (empty for the others)."""
    return comparisons.table(run_id) if may(request, "view_runs") else []


def _empty_note(choices: list[Any], request: gr.Request | None) -> str:
    if choices:
        return ""
    if not may(request, "compare"):
        return "*Sign in with an allowed account to compare models.*"
    return ("*No finished run with an adapter yet: train one (the Quick demo preset takes about a minute on a CPU), "
            "then come back.*")


def _session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "default"


def _status(update: CompareUpdate, saved_id: int | None = None) -> str:
    if update.phase in ("waiting", "loading") or update.base is None or update.tuned is None:
        return update.message
    parts = []
    for pane in (update.base, update.tuned):
        rate = f", {pane.tokens_per_s:.0f} tokens/s" if pane.tokens_per_s else ""
        ttft = f", first token {pane.first_token_s:.2f} s" if pane.first_token_s is not None else ""
        parts.append(f"{pane.label}: {pane.tokens} tokens{ttft}{rate}")
    head = f"**{update.message.removesuffix('…')}**"
    saved = f" Saved as comparison #{saved_id}." if saved_id is not None else ""
    return f"{head} · {' · '.join(parts)} · {update.device}.{saved}"


def refresh_runs(ui: CompareTab, current: int | None, request: gr.Request) -> Updates:
    choices = _run_choices(request)
    ids = [v for _, v in choices]
    return {ui.run: gr.update(choices=choices, value=current if current in ids else None),
            ui.run_info: _empty_note(choices, request)}


def list_runs(ui: CompareTab, request: gr.Request) -> Updates:
    choices = _run_choices(request)
    return {ui.run: gr.update(choices=choices), ui.run_info: _empty_note(choices, request)}


def on_run(ui: CompareTab, run_id: int | None, request: gr.Request) -> Updates:
    if run_id is None:
        return {ui.sample: gr.update(choices=[], value=None), ui.run_info: "", ui.reference: PICK_SAMPLE,
                ui.saved: []}
    try:
        split = held_out(run_id_of(run_id))
        rows = split.rows
        info = (f"{len(rows)} held-out questions from this run's data." if rows else
                "This run kept no held-out rows (its 'Held-out rows' setting was 0): type a question.")
        info += f"\n\n**Warning:** {split.warning[0].upper()}{split.warning[1:]}." if split.warning else ""
    except Exception as exc:  # noqa: BLE001 - e.g. a Hub dataset without a network: free text still works
        rows, info = [], f"Held-out questions are unavailable ({exc}); type a question."
    choices = [(f"{i + 1}. {shorten(r.question, 90)}", i) for i, r in enumerate(rows)]
    return {ui.sample: gr.update(choices=choices, value=None), ui.run_info: info, ui.reference: PICK_SAMPLE,
            ui.saved: _saved(request, run_id_of(run_id))}


def on_sample(ui: CompareTab, run_id: int | None, index: int | None) -> Updates:
    if run_id is None or index is None:
        return unchanged()
    try:
        row = held_out_rows(run_id_of(run_id))[int(index)]
    except (CompareError, DataError, IndexError) as exc:  # run deleted, data unreachable, stale choice
        raise gr.Error(f"Held-out question: {exc}") from None
    return {ui.question: row.question,
            ui.reference: f"**Reference reasoning**\n\n{row.reasoning}\n\n**Reference answer**\n\n{row.answer}"}


def compare(ui: CompareTab, run_id: int | None, question: str, sample: int | None, max_new_tokens: float,
            temperature: float, top_p: float, seed: float, greedy: bool, only_run: bool, request: gr.Request
            ) -> Iterator[Updates]:
    guard(request, "compare")
    if run_id is None:
        raise gr.Error("Tuned run: pick a finished run first.")
    try:
        settings = GenerationSettings.from_values(max_new_tokens, temperature, top_p, seed, greedy)
        reference = None
        if sample is not None:
            row = held_out_rows(run_id_of(run_id))[int(sample)]
            reference = row if row.question.strip() == (question or "").strip() else None
        last: CompareUpdate | None = None
        for update in ui.engine.compare(run_id_of(run_id), question, settings, session=_session(request)):
            last = update
            yield {ui.status: _status(update), ui.base_chat: pane_messages(update.question, update.base),
                   ui.tuned_chat: pane_messages(update.question, update.tuned)}
    except CompareError as exc:
        raise gr.Error(str(exc)) from None
    if last is None or last.base is None:
        return
    saved = comparisons.record(last, reference)
    yield {ui.status: _status(last, saved.id), ui.current: saved.id, ui.saved: _saved(request, _scope(run_id, only_run))}


def clear_preference(ui: CompareTab) -> Updates:
    """A new comparison starts with no preference marked."""
    return {ui.preferred: None, ui.note: "", ui.preference_status: ""}


def stop(ui: CompareTab, request: gr.Request) -> Updates:
    guard(request, "compare")
    if not ui.engine.stop(_session(request)):
        return {ui.status: "Nothing is generating."}
    # A toast, not the status line: the stream writes its own "Stopped…" there, and this handler's reply could
    # reach the page after it and leave "Stopping…" showing for good.
    gr.Info("Stopping both answers…")
    return {ui.status: gr.skip()}


def save_preference(ui: CompareTab, current: int | None, label: str | None, note: str, run_id: int | None,
                    only_run: bool, request: gr.Request) -> Updates:
    guard(request, "compare")
    try:
        row = comparisons.mark_preference(current, PREFERENCE_LABELS.get(label or ""), note)
    except comparisons.ComparisonError as exc:
        raise gr.Error(str(exc)) from None
    said = f"**{label}**" if row.preferred else "no preference"
    return {ui.preference_status: f"Saved {said} for comparison #{row.id}.",
            ui.saved: _saved(request, _scope(run_id, only_run))}


def show_saved(ui: CompareTab, table: Any, evt: gr.SelectData, request: gr.Request) -> Updates:
    if not may(request, "view_runs"):
        return unchanged()
    row_index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
    try:
        comparison_id = int(table.iloc[row_index, 0]) if hasattr(table, "iloc") else int(table[row_index][0])
    except (IndexError, ValueError, TypeError):
        return unchanged()
    row = comparisons.get_comparison(comparison_id)
    if row is None:
        return unchanged()
    base, tuned = comparisons.stored_pane(row, "base"), comparisons.stored_pane(row, "tuned")
    label = next((k for k, v in PREFERENCE_LABELS.items() if v == row.preferred), None)
    return {ui.base_chat: pane_messages(row.question, base), ui.tuned_chat: pane_messages(row.question, tuned),
            ui.current: row.id, ui.preferred: label, ui.note: row.note or "",
            ui.preference_status: f"Showing saved comparison #{row.id} (run {row.run_id})."}


def saved_table(ui: CompareTab, run_id: int | None, only_run: bool, request: gr.Request) -> Updates:
    return {ui.saved: _saved(request, _scope(run_id, only_run))}


def download_jsonl(ui: CompareTab, run_id: int | None, only_run: bool, request: gr.Request) -> Updates:
    return _download(ui, comparisons.export_jsonl, run_id, only_run, request)


def download_csv(ui: CompareTab, run_id: int | None, only_run: bool, request: gr.Request) -> Updates:
    return _download(ui, comparisons.export_csv, run_id, only_run, request)


def _download(ui: CompareTab, export: Callable[[int | None], Path], run_id: int | None, only_run: bool,
              request: gr.Request) -> Updates:
    guard(request, "view_runs")  # a bulk read of everything compared
    return {ui.download: str(export(_scope(run_id, only_run)))}


# One click downloads: once the file is ready, the browser follows the file box's link by itself (after the box has
# redrawn, so it is the new file's link).
FOLLOW_DOWNLOAD = "() => { setTimeout(() => document.querySelector('#compare-download a[download]')?.click(), 300); }"


def _bind(ui: CompareTab) -> None:
    run_menu = [ui.run, ui.run_info]
    # Public, so an API client can fill the run menu as this button does (/compare checks its value against it).
    ui.refresh.click(bound(refresh_runs, ui), ui.run, run_menu, api_name="list_finished_runs")
    # Opening the menu lists runs finished since the page loaded (choices only: the value the user is picking
    # right now must not be overwritten by this event's reply).
    ui.run.focus(bound(list_runs, ui), None, run_menu, api_name=False, queue=False)
    ui.run.change(bound(on_run, ui), ui.run, [ui.sample, ui.run_info, ui.reference, ui.saved], api_name=False)
    ui.sample.change(bound(on_sample, ui), [ui.run, ui.sample], [ui.question, ui.reference], api_name=False)
    inputs = [ui.run, ui.question, ui.sample, ui.max_new_tokens, ui.temperature, ui.top_p, ui.seed, ui.greedy,
              ui.only_run]
    # The engine runs one generation at a time; a few more may wait in it with a message saying so.
    ui.compare.click(bound(compare, ui), inputs, [ui.status, ui.base_chat, ui.tuned_chat, ui.current, ui.saved],
                     api_name="compare", concurrency_limit=ui.engine.max_waiting)
    # A separate, instant event: not held by the stream.
    ui.compare.click(bound(clear_preference, ui), None, [ui.preferred, ui.note, ui.preference_status],
                     api_name=False, queue=False)
    # Stop must never queue behind the generation it stops.
    ui.stop.click(bound(stop, ui), None, ui.status, api_name="stop_generation", concurrency_limit=None)
    ui.save_preference.click(bound(save_preference, ui), [ui.current, ui.preferred, ui.note, ui.run, ui.only_run],
                             [ui.preference_status, ui.saved], api_name="compare_preference",
                             # its own lane: marking a preference must not wait behind a generation
                             concurrency_id="compare_notes", concurrency_limit=None)
    ui.saved.select(bound(show_saved, ui), ui.saved, [ui.base_chat, ui.tuned_chat, ui.current, ui.preferred, ui.note,
                                                      ui.preference_status], api_name=False)
    ui.only_run.change(bound(saved_table, ui), [ui.run, ui.only_run], ui.saved, api_name=False)
    ui.download_jsonl.click(bound(download_jsonl, ui), [ui.run, ui.only_run], ui.download,
                            api_name="download_comparisons_jsonl").success(None, js=FOLLOW_DOWNLOAD)
    ui.download_csv.click(bound(download_csv, ui), [ui.run, ui.only_run], ui.download,
                          api_name="download_comparisons_csv").success(None, js=FOLLOW_DOWNLOAD)


def wire(ui: CompareTab, runs_ui: Any = None, *others: Any) -> None:
    """Follow the Runs tab's selection: a comparable run selected there is preselected here."""
    follow_selected_run(runs_ui, ui.run, _run_choices)
