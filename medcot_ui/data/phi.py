"""A simple scan for obvious personal identifiers in training rows (emails, phone numbers, dates of birth,
record numbers). It finds the obvious, not everything: it is a prompt to look, never a de-identification."""

from __future__ import annotations

import re
from dataclasses import dataclass

_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_DATE = (rf"(?:\d{{1,2}}[/.-]\d{{1,2}}[/.-]\d{{2,4}}|\d{{4}}-\d{{2}}-\d{{2}}"
         rf"|\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTH},?\s+\d{{4}}"
         rf"|{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}})")

# A cheap first look: only text with a phone- or SSN-shaped digit group goes through those patterns, and only
# text holding a keyword through the keyword-led ones. Most rows of a clinical dataset pass neither.
_DIGIT_GROUP = re.compile(r"\d{3}[\s.-]\d|\(\d{3}\)|\+\d")

# (kind, pattern, gate): the gate is the digit-group regex, or keywords of which one must be in the lowered text.
PATTERNS: tuple[tuple[str, re.Pattern[str], re.Pattern[str] | tuple[str, ...]], ...] = (
    ("email", re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[a-z]{2,}", re.I), ("@",)),
    # Separators are required so lab values and doses ("120/80", "5000 units") are not taken for numbers.
    ("phone number", re.compile(r"(?<![\w/+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?![\w/])"
                                r"|(?<![\w/+])\+\d{1,3}(?:[\s.-]\d{2,5}){2,4}(?![\w/])"), _DIGIT_GROUP),
    ("date of birth", re.compile(rf"\b(?:DOB|D\.O\.B\.?|date\s+of\s+birth|born(?:\s+on)?)\s*[:\-]?\s*{_DATE}", re.I),
     ("dob", "d.o.b", "birth", "born")),
    ("record number", re.compile(r"\b(?:MRN|medical\s+record\s+(?:number|no\.?|#)|record\s+(?:number|no\.?|#)|"
                                 r"patient\s+(?:id|number|no\.?)|hospital\s+(?:number|no\.?))\s*[:#]?\s*"
                                 r"[A-Z0-9-]*\d[A-Z0-9-]{3,}", re.I),
     ("mrn", "record", "patient id", "patient n", "hospital n")),
    ("SSN-like number", re.compile(r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])"), _DIGIT_GROUP),
)


PHI_LIMIT = 200  # findings kept for display; rows with findings are always all counted


@dataclass(frozen=True)
class Finding:
    row: int  # 1-based, as in validation messages
    column: str
    kind: str
    match: str


def scan_text(text: str) -> list[tuple[str, str]]:
    """(kind, matched text) for every identifier-like span in ``text``."""
    lowered = text.lower()
    has_digit_group = _DIGIT_GROUP.search(text) is not None
    found = []
    for kind, pattern, gate in PATTERNS:
        if not (has_digit_group if isinstance(gate, re.Pattern) else any(k in lowered for k in gate)):
            continue
        found += [(kind, m.group(0)) for m in pattern.finditer(text)]
    return found


def scan_rows(rows: list[tuple[str, ...]], columns: tuple[str, ...],
              limit: int = PHI_LIMIT) -> tuple[list[Finding], int]:
    """Findings over the rows' cells (at most ``limit`` kept) and the number of rows with any finding."""
    findings: list[Finding] = []
    flagged = 0
    for i, row in enumerate(rows, start=1):
        hit = False
        for column, text in zip(columns, row):
            for kind, match in scan_text(text):
                hit = True
                if len(findings) < limit:
                    findings.append(Finding(i, column, kind, match))
        flagged += hit
    return findings, flagged
