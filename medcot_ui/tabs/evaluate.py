"""Evaluate tab: queue an evaluation, watch it, rate its answers blind, read the summary (layout and wiring)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from jobs.queue import QueueError, request_cancel, resume
from medcot_ui.compare.comparable import comparable_runs
from medcot_ui.data.uploads import UploadRejected, accept_upload
from medcot_ui.evaluate import blinding, rating, view
from medcot_ui.evaluate.benchmark_layouts import BENCHMARKS
from medcot_ui.evaluate.benchmark_table import benchmark_markdown
from medcot_ui.evaluate.blinding import StillBlind
from medcot_ui.evaluate.choice_data import DEFAULT_HUB_SPLIT
from medcot_ui.evaluate.create import GENERATE, EvalRequest, EvaluationError, create_evaluation, fewer_note
from medcot_ui.evaluate.loglik import METHOD as LOGLIK
from medcot_ui.evaluate.export import export_csv, export_jsonl
from medcot_ui.evaluate.in_card import finished_evaluations
from medcot_ui.evaluate.records import get_evaluation, items_of
from medcot_ui.evaluate.results import contamination_line, side_labels
from medcot_ui.evaluate.tables import CHOICE, HELD_OUT
from medcot_ui.hosting.context import AppContext
from medcot_ui.tabs.guard import caller_of, guard, may
from medcot_ui.tabs.wiring import Updates, bound, unchanged

KINDS = {"Held-out answers, rated blind (A/B)": HELD_OUT, "Multiple-choice accuracy": CHOICE}
METHOD_LABELS = {"Generate: reason, then a letter": GENERATE, "Log-likelihood of each option": LOGLIK}
SOURCES = {"The run's held-out rows": "held_out",
           **{f"{b.title}: {b.dataset_id} (Hub)": f"hub:{name}" for name, b in BENCHMARKS.items()},
           "Demo multiple-choice file (offline)": "demo", "Uploaded file": "file"}
VERDICTS = {label: verdict for verdict, label in rating.VERDICT_LABELS.items()}
BASE_MODEL = 0  # the "against" menu's value for the run's own base model
DEFAULTS = EvalRequest()
INTRO = ("Did the tuning help? **Held-out A/B**: both models answer questions the run never trained on; raters "
         "judge the two answers blind, as A and B, and see which model wrote which only after rating. **Multiple "
         "choice**: accuracy of both models with 95% intervals and a paired exact McNemar test. Evaluations run in "
         "the queue like training (one GPU user at a time). Research use only: not for clinical decisions.")


@dataclass
class EvaluateTab:
    kind: gr.Radio
    run: gr.Dropdown
    against: gr.Dropdown
    source: gr.Radio
    upload: gr.File
    n: gr.Number
    max_new_tokens: gr.Number
    batch_size: gr.Number
    greedy: gr.Checkbox
    exclude: gr.Checkbox
    method: gr.Radio
    mapping: gr.Textbox
    queue: gr.Button
    queue_status: gr.Markdown
    evaluation: gr.Dropdown
    cancel: gr.Button
    resume: gr.Button
    status: gr.Markdown
    benchmarks: gr.Markdown
    timer: gr.Timer
    rater: gr.Textbox
    next_item: gr.Button
    blind: gr.Markdown
    item: gr.State
    verdict: gr.Radio
    note: gr.Textbox
    save: gr.Button
    reveal: gr.Markdown
    items: gr.Dataframe
    number: gr.Number
    detail: gr.Markdown
    download_csv: gr.Button
    download_jsonl: gr.Button
    end_rating: gr.Button
    download: gr.File


# ---- layout -----------------------------------------------------------------------------------------------

def _new_evaluation() -> dict[str, Any]:
    with gr.Accordion("New evaluation", open=True):
        kind = gr.Radio(list(KINDS), value=next(iter(KINDS)), label="What to measure")
        with gr.Row():
            run = gr.Dropdown(choices=[], value=None, label="Tuned run", info="A finished run with an adapter.")
            against = gr.Dropdown(choices=[("Its base model", BASE_MODEL)], value=BASE_MODEL, label="Against",
                                  info="The base model, or another run of the same base model.")
        source = gr.Radio(list(SOURCES), value=next(iter(SOURCES)), label="Questions")
        # No file_types here: accept_upload refuses other types in a sentence (Gradio's check logs a traceback).
        upload = gr.File(label="Upload (JSONL, CSV or Parquet)", height=90)
        mapping = gr.Textbox(label="Multiple-choice columns: question, options, answer (blank: detected)",
                             placeholder="question, options, answer_idx   (options blank = lettered columns A, B, ...)")
        with gr.Row():
            n = gr.Number(DEFAULTS.n, precision=0, label="Questions (N)")
            max_new_tokens = gr.Number(DEFAULTS.max_new_tokens, precision=0, label="Max new tokens")
            batch_size = gr.Number(DEFAULTS.batch_size, precision=0,
                                   label="Answers at once (0 = as many as GPU memory holds)")
            greedy = gr.Checkbox(DEFAULTS.greedy, label="Greedy decoding (reproducible)")
        method = gr.Radio(list(METHOD_LABELS), value=next(iter(METHOD_LABELS)), label="Multiple-choice scoring",
                          info="Log-likelihood scores each option's letter as lm-evaluation-harness does: no "
                               "generation, a whole benchmark in minutes.", elem_id="evaluate-method")
        exclude = gr.Checkbox(DEFAULTS.exclude_contaminated, label="Leave out questions the runs trained on",
                              info="Every evaluation is checked against the runs' training rows (64 characters or "
                                   "13 words in common); tick to evaluate only the clean questions.",
                              elem_id="evaluate-exclude")
        queue = gr.Button("Queue evaluation", variant="primary", elem_id="evaluate-queue")
        queue_status = gr.Markdown(elem_id="evaluate-queue-status")
    return dict(kind=kind, run=run, against=against, source=source, upload=upload, mapping=mapping, n=n,
                max_new_tokens=max_new_tokens, batch_size=batch_size, greedy=greedy, exclude=exclude, method=method, queue=queue,
                queue_status=queue_status)


def _progress() -> dict[str, Any]:
    with gr.Row(equal_height=True):
        evaluation = gr.Dropdown(choices=[], value=None, label="Evaluation", scale=4, elem_id="evaluate-pick")
        cancel = gr.Button("Cancel", scale=0, size="sm")
        resume_ = gr.Button("Resume", scale=0, size="sm")
    status = gr.Markdown(elem_id="evaluate-status")
    with gr.Accordion("This run's benchmarks: base and tuned side by side", open=False):
        benchmarks = gr.Markdown(elem_id="evaluate-benchmarks")
    return dict(evaluation=evaluation, cancel=cancel, resume=resume_, status=status, benchmarks=benchmarks,
                timer=gr.Timer(2.0))


def _rating() -> dict[str, Any]:
    with gr.Accordion("Blind rating (held-out A/B)", open=True):
        with gr.Row(equal_height=True):
            rater = gr.Textbox(label="Your name (the rater)", elem_id="evaluate-rater", scale=3)
            next_item = gr.Button("Next item to rate", scale=1, elem_id="evaluate-next")
        blind = gr.Markdown(elem_id="evaluate-blind")
        with gr.Row(equal_height=True):
            verdict = gr.Radio(list(VERDICTS), label="Which answer is better?", elem_id="evaluate-verdict", scale=2)
            note = gr.Textbox(label="Note (optional)", lines=1, scale=2)
            save = gr.Button("Save rating", variant="primary", elem_id="evaluate-save", scale=0)
        reveal = gr.Markdown(elem_id="evaluate-reveal")
    return dict(rater=rater, next_item=next_item, blind=blind, item=gr.State(None), verdict=verdict, note=note,
                save=save, reveal=reveal)


def _all_items() -> dict[str, Any]:
    with gr.Accordion("Every item (which model wrote what: shown once you have rated every item)", open=False):
        items = gr.Dataframe(headers=view.ITEM_HEADERS, value=[], interactive=False, wrap=True, max_height=400,
                             elem_id="evaluate-items")
        number = gr.Number(1, precision=0, label="Show item #")
        detail = gr.Markdown(elem_id="evaluate-detail")
        with gr.Row():
            download_csv = gr.Button("Download CSV", size="sm")
            download_jsonl = gr.Button("Download JSONL", size="sm")
            end_rating = gr.Button("End rating (show every rater which model wrote what)", size="sm")
        download = gr.File(label="Download", interactive=False, height=90, elem_id="evaluate-download")
    return dict(items=items, number=number, detail=detail, download_csv=download_csv, download_jsonl=download_jsonl,
                end_rating=end_rating, download=download)


def build(ctx: AppContext) -> EvaluateTab:
    gr.Markdown(INTRO)
    ui = EvaluateTab(**_new_evaluation(), **_progress(), **_rating(), **_all_items())
    _bind(ui)
    return ui


# ---- handlers ---------------------------------------------------------------------------------------------

def _refused(message: str, title: str = "Error") -> gr.Error:
    """A refusal the user reads; it is expected, so no traceback in the server log."""
    return gr.Error(message, title=title, print_exception=False)


def _evaluation_id(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _refused(f"Evaluation: pick one from the list ({value!r} is not one).") from None


def list_runs(ui: EvaluateTab, request: gr.Request) -> Updates:
    if not may(request, "view_runs"):
        return unchanged()
    runs = [(r.label, r.id) for r in comparable_runs()]
    return {ui.run: gr.update(choices=runs), ui.against: gr.update(choices=[("Its base model", BASE_MODEL), *runs])}


def list_evaluations(ui: EvaluateTab, current: Any, request: gr.Request) -> Updates:
    if not may(request, "view_runs"):
        return unchanged()
    choices = view.evaluation_choices()
    ids = [v for _, v in choices]
    return {ui.evaluation: gr.update(choices=choices, value=current if current in ids else (ids[0] if ids else None))}


def _mapping(text: str) -> dict[str, str]:
    if not (text or "").strip():
        return {}
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 3 or not parts[0] or not parts[2]:
        raise _refused("Multiple-choice columns: write three names, question, options, answer (options may be "
                       "blank for lettered columns A, B, ...).")
    return {"question": parts[0], "options": parts[1], "answer": parts[2]}


def _request(kind_label: str, run_id: Any, against: Any, source_label: str, upload: Any, mapping: str, n: Any,
             max_new_tokens: Any, batch_size: Any, greedy: bool, exclude: bool, method_label: str) -> EvalRequest:
    kind, source = KINDS.get(kind_label, HELD_OUT), SOURCES.get(source_label, "held_out")
    path = ""
    if upload:  # checked (and a bad file discarded) whatever else the form says
        try:
            path = str(accept_upload(upload).path)
        except UploadRejected as exc:
            raise _refused(f"Upload: {exc}") from None
    if run_id is None:
        raise _refused("Tuned run: pick a finished run first.")
    if (kind == HELD_OUT) != (source in ("held_out", "file")):
        raise _refused(f"Questions: '{source_label}' does not go with {kind_label.lower()}.")
    if source == "file" and not path:
        raise _refused("Upload: add the file of questions first.")
    named = BENCHMARKS[source.split(":", 1)[1]] if source.startswith("hub:") else None
    try:
        return EvalRequest(kind=kind, run_id=int(run_id), base_run_id=int(against) if against else None,
                           n=int(n or 0), source="hub" if named else source, file_path=path,
                           dataset_id=named.dataset_id if named else "", dataset_config=named.config if named else "",
                           split=named.split if named else DEFAULT_HUB_SPLIT,
                           mapping=_mapping(mapping) if kind == CHOICE else {}, max_new_tokens=int(max_new_tokens or 0),
                           batch_size=int(batch_size or 0), greedy=bool(greedy), exclude_contaminated=bool(exclude),
                           method=METHOD_LABELS.get(method_label, GENERATE) if kind == CHOICE else GENERATE)
    except (TypeError, ValueError) as exc:
        raise _refused(f"Settings: {exc}") from None


def queue_evaluation(ui: EvaluateTab, kind_label: str, run_id: Any, against: Any, source_label: str, upload: Any,
                     mapping: str, n: Any, max_new_tokens: Any, batch_size: Any, greedy: bool, exclude: bool,
                     method_label: str, request: gr.Request) -> Updates:
    guard(request, "train")  # it spends the GPU, like a training run
    req = _request(kind_label, run_id, against, source_label, upload, mapping, n, max_new_tokens, batch_size, greedy,
                   exclude, method_label)
    try:
        evaluation = create_evaluation(req)
    except EvaluationError as exc:
        raise _refused(str(exc), title="Evaluation not queued") from None
    return {ui.queue_status: f"Queued evaluation {evaluation.id}: {evaluation.n_items} questions from "
                             f"{evaluation.source}{fewer_note(req, evaluation)}. "
                             f"{contamination_line(evaluation)}",
            ui.evaluation: gr.update(choices=view.evaluation_choices(), value=evaluation.id)}


def show_evaluation(ui: EvaluateTab, evaluation_id: Any, rater_name: str, request: gr.Request) -> Updates:
    if evaluation_id is None or not may(request, "view_runs"):
        return {ui.status: "", ui.items: [], ui.detail: "", ui.blind: "", ui.item: None, ui.reveal: "",
                ui.benchmarks: ""}
    eid, rater = _evaluation_id(evaluation_id), _rater(rater_name, request)
    evaluation = get_evaluation(eid)
    table = benchmark_markdown(finished_evaluations(evaluation.run_id)) if evaluation else ""
    return {ui.status: view.status_markdown(eid), ui.items: view.items_table(eid, rater), ui.benchmarks: table,
            ui.detail: view.item_markdown(eid, 1, rater), ui.number: 1, ui.blind: "", ui.item: None, ui.reveal: ""}


def tick(ui: EvaluateTab, evaluation_id: Any, request: gr.Request) -> Updates:
    if evaluation_id is None or not may(request, "view_runs"):
        return unchanged()
    return {ui.status: view.status_markdown(_evaluation_id(evaluation_id))}


def _job_action(action: Any, verb: str, evaluation_id: Any, request: gr.Request) -> str:
    guard(request, verb)
    evaluation = get_evaluation(_evaluation_id(evaluation_id))
    if evaluation is None:
        raise _refused("Evaluation: it no longer exists.")
    try:
        action(evaluation.job_id)
    except QueueError as exc:
        raise _refused(str(exc).replace(f"run {evaluation.job_id}", f"evaluation {evaluation.id}")) from None
    return view.status_markdown(evaluation.id)


def cancel_evaluation(ui: EvaluateTab, evaluation_id: Any, request: gr.Request) -> Updates:
    return {ui.status: _job_action(request_cancel, "cancel", evaluation_id, request)}


def resume_evaluation(ui: EvaluateTab, evaluation_id: Any, request: gr.Request) -> Updates:
    return {ui.status: _job_action(resume, "resume", evaluation_id, request)}


def signed_in_rater(ui: EvaluateTab, request: gr.Request) -> Updates:
    """A signed-in rater rates under their account name (not editable); locally, a typed name."""
    name = caller_of(request).username
    return {ui.rater: gr.update(value=name, interactive=False)} if name else unchanged()


def _rater(typed: str, request: gr.Request) -> str:
    return caller_of(request).username or (typed or "").strip()


def next_item(ui: EvaluateTab, evaluation_id: Any, rater_name: str, request: gr.Request) -> Updates:
    guard(request, "compare")  # rating is judging the models' answers, as in Compare
    eid, rater = _evaluation_id(evaluation_id), _rater(rater_name, request)
    if not rater:
        raise _refused("Your name: type it (or sign in) before rating, so your ratings are counted as yours.")
    item = rating.next_unrated(eid, rater)
    cleared = {ui.verdict: None, ui.note: "", ui.reveal: ""}
    if item is None:
        return {**cleared, ui.item: None, ui.blind: f"*Nothing left for {rater} to rate in this evaluation.*"}
    return {**cleared, ui.item: item.id, ui.blind: view.blind_markdown(rating.blind(item), len(items_of(eid)))}


def compare_rating(ui: EvaluateTab, evaluation_id: Any, item_id: Any, rater_name: str, verdict_label: str | None,
                   note: str, request: gr.Request) -> Updates:
    guard(request, "compare")
    if item_id is None:
        raise _refused("Rating: press 'Next item to rate' first.")
    if verdict_label not in VERDICTS:
        raise _refused("Which answer is better: pick one before saving.")
    try:
        row = rating.rate(int(item_id), _rater(rater_name, request), VERDICTS[verdict_label], note)
    except rating.RatingError as exc:
        raise _refused(str(exc)) from None
    evaluation = get_evaluation(row.evaluation_id)
    item = next(it for it in items_of(evaluation.id) if it.id == row.item_id)
    base, tuned = side_labels(evaluation)
    rater = _rater(rater_name, request)  # the last rating opens the items table and details to this rater
    return {ui.reveal: f"Saved: **{verdict_label}**. {rating.reveal(item, base, tuned)}",
            ui.status: view.status_markdown(evaluation.id), ui.items: view.items_table(evaluation.id, rater),
            ui.detail: view.item_markdown(evaluation.id, 1, rater)}


def show_item(ui: EvaluateTab, evaluation_id: Any, number: Any, rater_name: str, request: gr.Request) -> Updates:
    if evaluation_id is None or not may(request, "view_runs"):
        return unchanged()
    return {ui.detail: view.item_markdown(_evaluation_id(evaluation_id), int(number or 1),
                                          _rater(rater_name, request))}


def _download(ui: EvaluateTab, export: Any, evaluation_id: Any, rater_name: str, request: gr.Request) -> Updates:
    guard(request, "view_runs")
    try:
        return {ui.download: str(export(_evaluation_id(evaluation_id), rater=_rater(rater_name, request)))}
    except StillBlind as exc:
        raise _refused(str(exc), title="Still rating blind") from None


def download_csv(ui: EvaluateTab, evaluation_id: Any, rater_name: str, request: gr.Request) -> Updates:
    return _download(ui, export_csv, evaluation_id, rater_name, request)


def download_jsonl(ui: EvaluateTab, evaluation_id: Any, rater_name: str, request: gr.Request) -> Updates:
    return _download(ui, export_jsonl, evaluation_id, rater_name, request)


def end_rating(ui: EvaluateTab, evaluation_id: Any, rater_name: str, request: gr.Request) -> Updates:
    guard(request, "train")  # the people who may run evaluations decide when rating is over
    eid, rater = _evaluation_id(evaluation_id), _rater(rater_name, request)
    try:
        said = blinding.end_rating(eid, caller_of(request).username or rater)
    except StillBlind as exc:
        raise _refused(str(exc)) from None
    return {ui.queue_status: said, ui.items: view.items_table(eid, rater), ui.detail: view.item_markdown(eid, 1, rater)}


def _bind(ui: EvaluateTab) -> None:
    shown = [ui.status, ui.items, ui.detail, ui.number, ui.blind, ui.item, ui.reveal, ui.benchmarks]
    ui.run.focus(bound(list_runs, ui), None, [ui.run, ui.against], api_name=False, queue=False)
    ui.evaluation.focus(bound(list_evaluations, ui), ui.evaluation, ui.evaluation, api_name=False, queue=False)
    ui.queue.click(bound(queue_evaluation, ui), [ui.kind, ui.run, ui.against, ui.source, ui.upload, ui.mapping, ui.n,
                                                 ui.max_new_tokens, ui.batch_size, ui.greedy, ui.exclude,
                                                 ui.method],
                   [ui.queue_status, ui.evaluation], api_name="enqueue_evaluation")
    ui.evaluation.change(bound(show_evaluation, ui), [ui.evaluation, ui.rater], shown, api_name=False)
    ui.timer.tick(bound(tick, ui), ui.evaluation, ui.status, api_name=False, show_progress="hidden",
                  queue=False)
    ui.cancel.click(bound(cancel_evaluation, ui), ui.evaluation, ui.status, api_name="cancel_evaluation")
    ui.resume.click(bound(resume_evaluation, ui), ui.evaluation, ui.status, api_name="resume_evaluation")
    ui.next_item.click(bound(next_item, ui), [ui.evaluation, ui.rater],
                       [ui.verdict, ui.note, ui.reveal, ui.item, ui.blind], api_name="compare_next_item")
    ui.save.click(bound(compare_rating, ui), [ui.evaluation, ui.item, ui.rater, ui.verdict, ui.note],
                  [ui.reveal, ui.status, ui.items, ui.detail], api_name="compare_rating")
    ui.number.submit(bound(show_item, ui), [ui.evaluation, ui.number, ui.rater], ui.detail, api_name=False)
    ui.download_csv.click(bound(download_csv, ui), [ui.evaluation, ui.rater], ui.download,
                          api_name="download_evaluation_csv")
    ui.download_jsonl.click(bound(download_jsonl, ui), [ui.evaluation, ui.rater], ui.download,
                            api_name="download_evaluation_jsonl")
    ui.end_rating.click(bound(end_rating, ui), [ui.evaluation, ui.rater], [ui.queue_status, ui.items, ui.detail],
                        api_name=False)  # the guard refuses callers who may not run evaluations


def wire(ui: EvaluateTab, demo: gr.Blocks) -> None:
    """Fill the menus and the rater's name when the page loads."""
    demo.load(bound(list_runs, ui), None, [ui.run, ui.against], api_name=False, queue=False)
    demo.load(bound(list_evaluations, ui), ui.evaluation, ui.evaluation, api_name=False, queue=False)
    demo.load(bound(signed_in_rater, ui), None, ui.rater, api_name=False, queue=False)
