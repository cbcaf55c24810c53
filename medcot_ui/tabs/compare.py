"""Compare tab: one question, the base model and a tuned run answer side by side, streaming (layout and wiring)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gradio as gr

from medcot_ui.compare import stored as comparisons
from medcot_ui.compare.comparable import comparable_runs, held_out_rows
from medcot_ui.compare.engine import CompareEngine
from medcot_ui.compare.errors import CompareError
from medcot_ui.compare.generation import GenerationSettings
from medcot_ui.compare.messages import pane_messages
from medcot_ui.compare.panes import CompareUpdate
from medcot_ui.hosting.context import AppContext
from medcot_ui.data.load import DataError
from medcot_ui.tabs.guard import guard, may
from medcot_ui.tabs.inputs import follow_selected_run, run_id_of
from medcot_ui.units import shorten

ENGINE_KEY = "compare_engine"
PREFERENCE_LABELS = {"Base is better": "base", "Tuned is better": "tuned", "Tie": "tie"}
INTRO = ("Ask one question; the **base model** (left) and the **tuned run** (right: the same weights with the "
         "run's LoRA adapter) answer it at the same time, with the prompt format the run was trained on. Each "
         "answer's reasoning is the collapsible *Thinking* block. Every comparison is saved below. Research use "
         "only: not for clinical decisions.")


def engine_of(ctx: AppContext) -> CompareEngine:
    """The process-wide engine (one copy of the base weights for every visitor)."""
    return ctx.services.setdefault(ENGINE_KEY, CompareEngine())


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


def build(ctx: AppContext) -> dict[str, Any]:
    engine_of(ctx)
    ui: dict[str, Any] = {}
    gr.Markdown(INTRO)
    with gr.Row(equal_height=False):
        ui["run"] = gr.Dropdown(choices=[], value=None, label="Tuned run",
                                info="A finished run (or a cancelled one that saved its adapter). The base model "
                                     "is the one the run was trained from.", scale=4)
        ui["refresh"] = gr.Button("Refresh runs", scale=0, size="sm")
    ui["run_info"] = gr.Markdown()
    ui["sample"] = gr.Dropdown(choices=[], value=None, label="Held-out question from this run",
                               info="Rows the run never trained on (same split, same seed). Or type your own below.")
    with gr.Accordion("Reference reasoning and answer (from the data)", open=False):
        ui["reference"] = gr.Markdown("*Pick a held-out question to see its reference.*")
    ui["question"] = gr.Textbox(label="Question", lines=3, placeholder="A clinical question, e.g. a case vignette "
                                "ending in what the next step or finding would be.")
    with gr.Accordion("Generation settings", open=False):
        with gr.Row():
            ui["max_new_tokens"] = gr.Slider(1, 4096, value=1200, step=1, label="Max new tokens",
                                             info="Reasoning models think at length: 1200 is the recipe's value.")
            ui["temperature"] = gr.Slider(0.01, 2.0, value=0.6, step=0.01, label="Temperature")
            ui["top_p"] = gr.Slider(0.01, 1.0, value=0.95, step=0.01, label="Top-p")
        with gr.Row():
            ui["seed"] = gr.Number(3407, precision=0, label="Seed", info="Same seed and settings: same sample.")
            ui["greedy"] = gr.Checkbox(False, label="Deterministic (greedy)",
                                       info="Always the most likely token: reproducible; ignores temperature, "
                                            "top-p and seed.")
    with gr.Row():
        ui["compare"] = gr.Button("Compare", variant="primary", elem_id="compare-go")
        ui["stop"] = gr.Button("Stop", variant="stop", elem_id="compare-stop")
    ui["status"] = gr.Markdown(elem_id="compare-status")
    with gr.Row(equal_height=True):
        ui["base_chat"] = gr.Chatbot(label="Base model", height=520, elem_id="compare-base", buttons=["copy"],
                                     feedback_options=None)
        ui["tuned_chat"] = gr.Chatbot(label="Tuned model (base + the run's adapter)", height=520,
                                      elem_id="compare-tuned", buttons=["copy"], feedback_options=None)
    ui["current"] = gr.State(None)  # id of the comparison shown in the panes
    with gr.Row(equal_height=True):
        ui["preferred"] = gr.Radio(list(PREFERENCE_LABELS), label="Which answer is better?", scale=2)
        ui["note"] = gr.Textbox(label="Note (optional)", scale=3, lines=1)
        ui["save_preference"] = gr.Button("Save preference", scale=0)
    ui["preference_status"] = gr.Markdown()
    with gr.Accordion("Saved comparisons", open=False):
        ui["only_run"] = gr.Checkbox(True, label="Only the selected run")
        ui["saved"] = gr.Dataframe(headers=comparisons.TABLE_HEADERS, value=[], interactive=False, wrap=True,
                                   elem_id="compare-saved", max_height=400,
                                   column_widths=["5%", "11%", "5%", "27%", "17%", "17%", "6%", "7%", "5%"])
        gr.Markdown("<sub>Click a row to show it in the panes again (and mark a preference).</sub>")
        with gr.Row():
            ui["download_csv"] = gr.Button("Download CSV (spreadsheet)", size="sm")
            ui["download_jsonl"] = gr.Button("Download JSONL (one record per line, for scripts)", size="sm")
        ui["download"] = gr.File(label="Download", interactive=False, elem_id="compare-download", height=90)
    _bind(ctx, ui)
    return ui


def _bind(ctx: AppContext, ui: dict[str, Any]) -> None:
    engine = engine_of(ctx)

    def refresh_runs(current: int | None, request: gr.Request) -> tuple[Any, Any]:
        choices = _run_choices(request)
        ids = [v for _, v in choices]
        return gr.update(choices=choices, value=current if current in ids else None), _empty_note(choices, request)

    def list_runs(request: gr.Request) -> tuple[Any, Any]:
        choices = _run_choices(request)
        return gr.update(choices=choices), _empty_note(choices, request)

    def on_run(run_id: int | None, request: gr.Request) -> tuple[Any, ...]:
        if run_id is None:
            return gr.update(choices=[], value=None), "", "*Pick a held-out question to see its reference.*", []
        try:
            rows = held_out_rows(run_id_of(run_id))
            info = (f"{len(rows)} held-out questions from this run's data." if rows else
                    "This run kept no held-out rows (its 'Held-out rows' setting was 0): type a question.")
        except Exception as exc:  # noqa: BLE001 - e.g. a Hub dataset without a network: free text still works
            rows, info = [], f"Held-out questions are unavailable ({exc}); type a question."
        choices = [(f"{i + 1}. {shorten(r.question, 90)}", i) for i, r in enumerate(rows)]
        return (gr.update(choices=choices, value=None), info, "*Pick a held-out question to see its reference.*",
                _saved(request, run_id_of(run_id)))

    def on_sample(run_id: int | None, index: int | None) -> tuple[Any, Any]:
        if run_id is None or index is None:
            return gr.skip(), gr.skip()
        try:
            row = held_out_rows(run_id_of(run_id))[int(index)]
        except (CompareError, DataError, IndexError) as exc:  # run deleted, data unreachable, stale choice
            raise gr.Error(f"Held-out question: {exc}") from None
        reference = f"**Reference reasoning**\n\n{row.reasoning}\n\n**Reference answer**\n\n{row.answer}"
        return row.question, reference

    def compare(run_id: int | None, question: str, sample: int | None, max_new_tokens: float, temperature: float,
                top_p: float, seed: float, greedy: bool, only_run: bool, request: gr.Request
                ) -> Iterator[tuple[Any, ...]]:
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
            for update in engine.compare(run_id_of(run_id), question, settings, session=_session(request)):
                last = update
                yield (_status(update), pane_messages(update.question, update.base),
                       pane_messages(update.question, update.tuned), gr.skip(), gr.skip())
        except CompareError as exc:
            raise gr.Error(str(exc)) from None
        if last is None or last.base is None:
            return
        saved = comparisons.record(last, reference)
        yield (_status(last, saved.id), gr.skip(), gr.skip(), saved.id,
               _saved(request, _scope(run_id, only_run)))

    def stop(request: gr.Request) -> str:
        guard(request, "compare")
        return ("Stopping both answers…" if engine.stop(_session(request)) else "Nothing is generating.")

    def save_preference(current: int | None, label: str | None, note: str, run_id: int | None, only_run: bool,
                        request: gr.Request) -> tuple[str, Any]:
        guard(request, "compare")
        try:
            row = comparisons.mark_preference(current, PREFERENCE_LABELS.get(label or ""), note)
        except comparisons.ComparisonError as exc:
            raise gr.Error(str(exc)) from None
        said = f"**{label}**" if row.preferred else "no preference"
        return (f"Saved {said} for comparison #{row.id}.",
                _saved(request, _scope(run_id, only_run)))

    def show_saved(table: Any, evt: gr.SelectData, request: gr.Request) -> tuple[Any, ...]:
        if not may(request, "view_runs"):
            return (gr.skip(),) * 6
        row_index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        try:
            comparison_id = int(table.iloc[row_index, 0]) if hasattr(table, "iloc") else int(table[row_index][0])
        except (IndexError, ValueError, TypeError):
            return (gr.skip(),) * 6
        row = comparisons.get_comparison(comparison_id)
        if row is None:
            return (gr.skip(),) * 6
        base, tuned = comparisons.stored_pane(row, "base"), comparisons.stored_pane(row, "tuned")
        label = next((k for k, v in PREFERENCE_LABELS.items() if v == row.preferred), None)
        return (pane_messages(row.question, base), pane_messages(row.question, tuned), row.id, label,
                row.note or "", f"Showing saved comparison #{row.id} (run {row.run_id}).")

    def saved_table(run_id: int | None, only_run: bool, request: gr.Request) -> list[list[Any]]:
        return _saved(request, _scope(run_id, only_run))

    def download(kind: str, run_id: int | None, only_run: bool, request: gr.Request) -> str:
        guard(request, "view_runs")  # a bulk read of everything compared
        scope = _scope(run_id, only_run)
        path = comparisons.export_jsonl(scope) if kind == "jsonl" else comparisons.export_csv(scope)
        return str(path)

    ui["refresh"].click(refresh_runs, ui["run"], [ui["run"], ui["run_info"]], api_name=False)
    # Opening the menu lists runs finished since the page loaded (choices only: the value the user is picking
    # right now must not be overwritten by this event's reply).
    ui["run"].focus(list_runs, None, [ui["run"], ui["run_info"]], api_name=False, queue=False)
    ui["run"].change(on_run, ui["run"], [ui["sample"], ui["run_info"], ui["reference"], ui["saved"]],
                     api_name=False)
    ui["sample"].change(on_sample, [ui["run"], ui["sample"]], [ui["question"], ui["reference"]], api_name=False)
    inputs = [ui["run"], ui["question"], ui["sample"], ui["max_new_tokens"], ui["temperature"], ui["top_p"],
              ui["seed"], ui["greedy"], ui["only_run"]]
    outputs = [ui["status"], ui["base_chat"], ui["tuned_chat"], ui["current"], ui["saved"]]
    # The engine runs one generation at a time; a few more may wait in it with a message saying so.
    ui["compare"].click(compare, inputs, outputs, api_name="compare", concurrency_limit=engine.max_waiting)
    # A new comparison starts with no preference marked (a separate, instant event: not held by the stream).
    ui["compare"].click(lambda: (None, "", ""), None, [ui["preferred"], ui["note"], ui["preference_status"]],
                        api_name=False, queue=False)
    # Stop must never queue behind the generation it stops.
    ui["stop"].click(stop, None, ui["status"], api_name="stop_generation", concurrency_limit=None)
    ui["save_preference"].click(save_preference, [ui["current"], ui["preferred"], ui["note"], ui["run"],
                                                  ui["only_run"]],
                                [ui["preference_status"], ui["saved"]], api_name="compare_preference",
                                # its own lane: marking a preference must not wait behind a generation
                                concurrency_id="compare_notes", concurrency_limit=None)
    ui["saved"].select(show_saved, ui["saved"], [ui["base_chat"], ui["tuned_chat"], ui["current"], ui["preferred"],
                                                 ui["note"], ui["preference_status"]], api_name=False)
    ui["only_run"].change(saved_table, [ui["run"], ui["only_run"]], ui["saved"], api_name=False)
    def download_jsonl(run_id: int | None, only_run: bool, request: gr.Request) -> str:
        return download("jsonl", run_id, only_run, request)

    def download_csv(run_id: int | None, only_run: bool, request: gr.Request) -> str:
        return download("csv", run_id, only_run, request)

    # One click downloads: once the file is ready, the browser follows the file box's link by itself (after the
    # box has redrawn, so it is the new file's link).
    save = "() => { setTimeout(() => document.querySelector('#compare-download a[download]')?.click(), 300); }"
    ui["download_jsonl"].click(download_jsonl, [ui["run"], ui["only_run"]], ui["download"],
                               api_name="download_comparisons_jsonl").success(None, js=save)
    ui["download_csv"].click(download_csv, [ui["run"], ui["only_run"]], ui["download"],
                             api_name="download_comparisons_csv").success(None, js=save)


def _empty_note(choices: list[Any], request: gr.Request | None) -> str:
    if choices:
        return ""
    if not may(request, "compare"):
        return "*Sign in with an allowed account to compare models.*"
    return ("*No finished run with an adapter yet: train one (the Quick demo preset takes about a minute on a CPU), "
            "then come back.*")


def _session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "default"


def wire(ui: dict[str, Any], runs_ui: dict[str, Any] | None = None, *others: Any) -> None:
    """Follow the Runs tab's selection: a comparable run selected there is preselected here."""
    follow_selected_run(runs_ui, ui["run"], _run_choices)
