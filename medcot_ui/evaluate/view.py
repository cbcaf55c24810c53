"""What the Evaluate tab shows, as text and tables (no Gradio): the list, progress with ETA, the summary, one item
in full, and the blind pair a rater sees."""

from __future__ import annotations

import html
from typing import Any

from medcot_ui.evaluate.blinding import blind_reason
from medcot_ui.evaluate.rating import BlindItem
from medcot_ui.evaluate.records import get_evaluation, items_of, list_evaluations, progress
from medcot_ui.evaluate.results import RESEARCH_ONLY, headline, side_labels, summary_lines
from medcot_ui.evaluate.tables import CHOICE, EvalItem
from medcot_ui.store import get_run
from medcot_ui.units import shorten

ITEM_HEADERS = ["#", "Question", "Reference", "Base answer", "Tuned answer", "Base choice", "Tuned choice",
                "Correct"]


def evaluation_choices(run_id: int | None = None) -> list[tuple[str, int]]:
    kinds = {CHOICE: "multiple choice"}
    return [(f"evaluation {e.id} · run {e.run_id} · {kinds.get(e.kind, 'held-out A/B')} · {e.n_items} questions · "
             f"{get_run(e.job_id).status}", e.id) for e in list_evaluations(run_id)]


def status_markdown(evaluation_id: int) -> str:
    """Headline, job state, progress with ETA, and the summary so far."""
    evaluation = get_evaluation(evaluation_id)
    if evaluation is None:
        return f"*Evaluation {evaluation_id} does not exist.*"
    job, p = get_run(evaluation.job_id), progress(evaluation_id)
    state = f"**{job.status}** · {p.line(job.status == 'running')}"
    if job.error:
        state += f" · {job.error}"
    lines = "\n".join(f"- {line}" for line in summary_lines(evaluation))
    return f"{headline(evaluation)}\n\n{state}\n\n{lines}\n\n<sub>{RESEARCH_ONLY}</sub>"


def items_table(evaluation_id: int, rater: str | None) -> list[list[Any]]:
    """Every item with both answers named: empty for a rater still rating blind (see item_markdown)."""
    if blind_reason(evaluation_id, rater) is not None:
        return []
    return [[it.position + 1, shorten(it.question, 90), shorten(it.reference_answer or "", 60),
             shorten(it.base_answer or "", 60), shorten(it.tuned_answer or "", 60), _choice(it, "base"),
             _choice(it, "tuned"), it.correct or ""] for it in items_of(evaluation_id)]


def _choice(item: EvalItem, side: str) -> str:
    if not item.options or not item.generated(side):
        return ""
    return getattr(item, f"{side}_choice") or "unparsed"


def _details(title: str, body: str) -> str:
    """A collapsible block (reasoning is long; the answer is what a reader looks at first)."""
    return f"<details><summary>{html.escape(title)}</summary>\n\n{html.escape(body or '(none)')}\n\n</details>"


def _answer(title: str, reasoning: str | None, answer: str | None, extra: str = "") -> str:
    if reasoning is None and answer is None:
        return f"**{title}**: *not generated yet*"
    return (f"**{title}**{extra}\n\n{_details('Reasoning', reasoning or '')}\n\n"
            f"{html.escape(answer or '') or '*(no answer after the reasoning)*'}")


def _question(question: str, options: dict[str, str]) -> str:
    listed = "\n".join(f"- **{k}.** {html.escape(v)}" for k, v in options.items())
    return f"**Question**\n\n{html.escape(question)}" + (f"\n\n{listed}" if listed else "")


def item_markdown(evaluation_id: int, number: int, rater: str | None) -> str:
    """Item ``number`` (1-based) with both answers named, the reference, and the parsed choices; to a rater still
    rating blind, why it is hidden."""
    if (reason := blind_reason(evaluation_id, rater)) is not None:
        return f"*{reason}*"
    evaluation = get_evaluation(evaluation_id)
    items = items_of(evaluation_id)
    if evaluation is None or not 1 <= number <= len(items):
        return f"*Pick an item from 1 to {len(items)}.*"
    item = items[number - 1]
    base, tuned = side_labels(evaluation)
    parts = [_question(item.question, item.options)]
    if item.correct:
        parts.append(f"**Correct**: {item.correct}")
    else:
        parts.append("**Reference**\n\n" + _details("Reference reasoning", item.reference_reasoning or "")
                     + f"\n\n{html.escape(item.reference_answer or '')}")
    for side, label in (("base", base), ("tuned", tuned)):
        choice = f" · choice: {_choice(item, side)}" if item.options and item.generated(side) else ""
        parts.append(_answer(label.capitalize(), getattr(item, f"{side}_reasoning"), getattr(item, f"{side}_answer"),
                             choice))
    return "\n\n---\n\n".join(parts)


def blind_markdown(blind: BlindItem, total: int) -> str:
    """The pair as a rater sees it: A and B, never which model wrote which."""
    reference = ("**Reference (from the data)**\n\n" + _details("Reference reasoning", blind.reference_reasoning)
                 + f"\n\n{html.escape(blind.reference_answer)}")
    return "\n\n---\n\n".join([f"Item {blind.position + 1} of {total}", _question(blind.question, {}), reference,
                               _answer("Answer A", blind.a.reasoning, blind.a.answer),
                               _answer("Answer B", blind.b.reasoning, blind.b.answer)])
