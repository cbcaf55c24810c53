"""What the Dataset tab shows about a data source, computed without Gradio: load, recognise the columns,
validate, format with the training code (``data.prepare``), count tokens and scan for identifiers."""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from medcot_ui.data.columns import ROLES, detect_mapping
from medcot_ui.training.config import DataSettings, parse_config
from medcot_ui.data.hub import HubUnreachable
from medcot_ui.data.load import Loaded, Prepared, load, prepare, source_key
from medcot_ui.errors import DataError
from medcot_ui.data.stats import Progress, TokenizerChoice, TokenStats, count_tokens, tokenizer_for, truncation_warning
from medcot_ui.data.phi import PHI_LIMIT, Finding, scan_rows
from medcot_ui.data.preview import preview_row
from medcot_ui.training.prompts import PromptFormat, TemplateError


@dataclass
class DatasetReport:
    data: DataSettings  # the settings in effect, with any recognised column mapping applied
    model_id: str
    max_seq_length: int
    loaded: Loaded | None = None
    error: str | None = None
    problems: list[str] = field(default_factory=list)  # every problem behind ``error``
    hub_unreachable: bool = False
    mapping_note: str = ""
    tokenizer: TokenizerChoice | None = None
    prepared: Prepared | None = None
    stats: TokenStats | None = None
    phi: list[Finding] = field(default_factory=list)
    phi_rows: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        return self.loaded.columns if self.loaded else []

    @property
    def format(self) -> PromptFormat:
        return PromptFormat.from_data_settings(self.data)


def form_settings(data: dict[str, Any], max_seq_length: Any) -> tuple[DataSettings, int]:
    """Validate the tab's form values with the run config's own rules (raises ConfigError naming the field)."""
    config = parse_config({"data": data, "model": {"max_seq_length": max_seq_length}})
    return config.data, config.model.max_seq_length


def apply_detected_mapping(data: DataSettings, columns: list[str]) -> tuple[DataSettings, str]:
    """Replace mapped columns the data does not have with recognised ones; says what changed."""
    detected = detect_mapping(columns)
    changes, update = [], {}
    for role in ROLES:
        setting = f"{role}_column"
        guess = getattr(detected, role)
        if getattr(data, setting) not in columns and guess is not None:
            update[setting] = guess
            changes.append(f"{role} = '{guess}'")
    if not update:
        return data, ""
    return data.model_copy(update=update), "Recognised columns: " + ", ".join(changes) + "."


def analyse(data: DataSettings, model_id: str, max_seq_length: int, *, loaded: Loaded | None = None,
            detect: bool = True, progress: Progress | None = None) -> DatasetReport:
    """Everything the Dataset tab shows; a problem ends up in ``error`` with whatever was learnt before it."""
    def step(fraction: float, what: str) -> None:
        if progress is not None:
            progress(fraction, what)

    report = DatasetReport(data, model_id, max_seq_length)
    try:
        if loaded is None or loaded.key != source_key(data):
            step(0.0, "Loading the data")
            loaded = load(data)
        report.loaded = loaded
        if detect:
            report.data, report.mapping_note = apply_detected_mapping(data, loaded.columns)
        step(0.1, "Loading the tokenizer")
        report.tokenizer = tokenizer_for(model_id)
        step(0.15, "Checking and formatting rows")
        report.prepared = prepare(report.data, report.tokenizer.tokenizer, loaded=loaded)
        report.stats = count_tokens(report.prepared, report.format, report.tokenizer, max_seq_length,
                                    progress=lambda f, what: step(0.2 + 0.7 * f, what))
        step(0.9, "Scanning for identifiers")
        columns = (report.data.question_column, report.data.reasoning_column, report.data.answer_column)
        report.phi, report.phi_rows = scan_rows(
            [(r.question, r.reasoning, r.answer) for r in report.prepared.rows], columns)
    except (DataError, TemplateError) as exc:
        report.error = str(exc)
        report.problems = getattr(exc, "problems", [str(exc)])
        report.hub_unreachable = isinstance(exc, HubUnreachable)
        return report
    report.warnings = list(report.prepared.warnings)
    cut = truncation_warning(report.stats)
    if cut:
        report.warnings.append(cut)
    if report.phi_rows:
        report.warnings.append(f"{report.phi_rows} row{'s' * (report.phi_rows > 1)} may contain personal "
                               "identifiers (see the identifier scan below)")
    step(1.0, "Done")
    return report


class CheckedReports:
    """The last few checked datasets, kept on the server and shared by every browser session.

    A session keeps only its report's key, so an open tab holds no copy of the rows (a 20,000-row dataset is
    ~500 MB in Python), memory stays bounded however many people check data, and records one session read are
    re-mapped by another without reading them again. Past ``capacity`` the least recently used report is dropped;
    a session whose report was dropped is asked to check again.
    """

    def __init__(self, capacity: int = 4):
        self.capacity = max(1, capacity)
        self._reports: OrderedDict[str, DatasetReport] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, report: DatasetReport) -> str:
        key = uuid.uuid4().hex
        with self._lock:
            self._reports[key] = report
            while len(self._reports) > self.capacity:
                self._reports.popitem(last=False)
        return key

    def get(self, key: str | None) -> DatasetReport | None:
        with self._lock:
            report = self._reports.get(key) if key else None
            if report is not None:
                self._reports.move_to_end(key)
            return report

    def loaded_for(self, data: DataSettings) -> Loaded | None:
        """Records already read for this source (by any session), or None."""
        wanted = source_key(data)
        with self._lock:
            for report in reversed(self._reports.values()):
                if report.loaded is not None and report.loaded.key == wanted:
                    return report.loaded
        return None

    def __len__(self) -> int:
        return len(self._reports)


def row_preview_texts(report: DatasetReport | None, number: Any) -> tuple[str, str, str]:
    """(what the row is, its training text with the cut marked, its inference prompt) for row ``number``
    (1-based; a number out of range shows the nearest row and says so)."""
    if report is None or report.prepared is None or report.tokenizer is None:
        return "", "", ""
    n = len(report.prepared.rows)
    asked = int(number) if number is not None else 1
    index = min(max(asked, 1), n) - 1
    p = preview_row(report.prepared, index, report.format, report.tokenizer.tokenizer, report.max_seq_length)
    info = ("" if asked == index + 1 else f"There is no row {asked}; showing the nearest. ")
    info += (f"Row {index + 1} of {n} ({'held out' if p.held_out else 'training'}): {p.tokens} tokens"
             + (f", of which the last {p.tokens - p.trained_tokens} are cut off by the max sequence length "
                f"({report.max_seq_length}) and never trained on." if p.cut_text else "."))
    cut = f"\n\n✂ ---- cut here: {p.tokens - p.trained_tokens} more tokens are not trained on ----\n"
    return info, p.trained_text + (cut + p.cut_text if p.cut_text else ""), p.inference_prompt


# ---- what the tab displays (plain text and tables, so they are tested without a browser) ----------------

TABLE_ROWS = 200  # rows sent to the browser's table; the statistics cover every row
CELL_CHARS = 240


def status_markdown(report: DatasetReport) -> str:
    if report.error:
        lines = ["### ❌ This data cannot be used yet"]
        if len(report.problems) > 1:
            lines += [f"- {p}" for p in report.problems[:20]]
            if len(report.problems) > 20:
                lines.append(f"- … and {len(report.problems) - 20} more")
        else:
            lines.append(report.error)
        if report.hub_unreachable:
            lines.append("\n**No network?** Press **Load the demo data**, or upload a file (JSON, JSONL, CSV or "
                         "Parquet).")
        elif report.columns:
            lines.append(f"\nColumns in the data: {', '.join(f'`{c}`' for c in report.columns)}. Fix the settings "
                         "below and press **Load and check** again.")
        return "\n".join(lines)
    prepared = report.prepared
    assert prepared is not None
    lines = [f"### ✅ {len(prepared.rows):,} rows ready to train on"]
    if report.mapping_note:
        lines.append(report.mapping_note)
    lines += [f"- ⚠️ {w}" for w in report.warnings]
    return "\n".join(lines)


def summary_markdown(report: DatasetReport) -> str:
    if report.error or report.prepared is None or report.stats is None:
        return ""
    p, s, d = report.prepared, report.stats, report.data
    fmt = {"recipe": "the reference recipe's format", "chat_template": "the model's chat template",
           "custom": "your custom template"}[d.template]
    lines = [
        f"- **Source:** {p.source}",
        f"- **Rows:** {len(p.rows):,}: {len(p.train_rows):,} for training, {len(p.eval_rows):,} held out "
        f"(seed {d.split_seed})",
        f"- **Columns:** question `{d.question_column}`, reasoning `{d.reasoning_column}`, "
        f"answer `{d.answer_column}`",
        f"- **Format:** {fmt}",
        f"- **Tokenizer:** {s.tokenizer}",
        f"- **Truncated at {s.max_seq_length} tokens:** {len(s.truncated):,} rows",
        f"- **Tokens per epoch** (training rows, after truncation): ≈ {s.tokens_per_epoch:,}",
        f"- **Dataset fingerprint:** `{p.fingerprint}`",
    ]
    text = "\n".join(lines)
    return text + (f"\n\n⚠️ {s.note}" if s.note else "")


def rows_table(report: DatasetReport, limit: int = TABLE_ROWS) -> list[list[Any]]:
    """First rows for the table: number, split, cells cut for display, total tokens."""
    if report.prepared is None or report.stats is None:
        return []
    held = set(report.prepared.eval_indices)
    totals = report.stats.counts["total"]

    def cut(text: str) -> str:
        return text if len(text) <= CELL_CHARS else text[:CELL_CHARS] + "…"

    return [[i + 1, "held out" if i in held else "train", cut(r.question), cut(r.reasoning), cut(r.answer),
             totals[i]] for i, r in enumerate(report.prepared.rows[:limit])]


ROWS_HEADERS = ["row", "split", "question", "reasoning", "answer", "tokens"]


def histogram_rows(stats: TokenStats) -> list[dict[str, Any]]:
    """One record per bin for a bar chart: label, rows, and whether the bin is cut by max_seq_length."""
    return [{"tokens per row": b.label, "rows": b.rows,
             "length": f"over {stats.max_seq_length} (truncated)" if b.truncated else f"fits in {stats.max_seq_length}"}
            for b in stats.bins]


PHI_HEADERS = ["row", "column", "looks like", "text"]


def phi_markdown(report: DatasetReport) -> str:
    if report.prepared is None:
        return ""
    if not report.phi_rows:
        return ("No obvious identifiers found (emails, phone numbers, dates of birth, record numbers). This simple "
                "scan finds the obvious only: it is not a de-identification check.")
    shown = f" (the first {len(report.phi)} findings are listed)" if len(report.phi) >= PHI_LIMIT else ""
    return (f"**{report.phi_rows} row{'s' * (report.phi_rows > 1)} may hold personal identifiers**{shown}. Check "
            "them before training, and remove or mask real patient data.")


def phi_table(report: DatasetReport) -> list[list[Any]]:
    return [[f.row, f.column, f.kind, f.match] for f in report.phi]
