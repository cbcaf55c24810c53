"""Column mapping: recognise which columns hold question, reasoning and answer, and unpack chat rows.

Chat rows (a ``messages`` / ``conversations`` column holding ``[{"role": "user", "content": ...}, ...]``, or the
ShareGPT ``{"from": "human", "value": ...}`` spelling) are unpacked into three derived columns,
``<column>.question``, ``<column>.reasoning`` and ``<column>.answer``, so a chat dataset is mapped like any other
and the mapping stays three plain column names in the run config.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from medcot_ui.training.prompts import THINK_CLOSE, split_completion

# Spellings per role, most specific first; compared case-insensitively and ignoring '_', '-' and spaces.
QUESTION_NAMES = ("question", "instruction", "input", "prompt", "query", "problem")
REASONING_NAMES = ("complexcot", "cot", "reasoning", "thinking", "chainofthought", "thoughts", "thought",
                   "rationale", "reasoningcontent", "explanation")
ANSWER_NAMES = ("response", "answer", "output", "completion", "solution", "finalanswer", "target")
ROLES = ("question", "reasoning", "answer")

_USER_ROLES = {"user", "human", "prompter"}
_ASSISTANT_ROLES = {"assistant", "gpt", "model", "bot"}
# Where chat datasets keep the reasoning when it is not inside <think> in the assistant's content.
_REASONING_KEYS = ("reasoning_content", "reasoning", "thinking", "thought")


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


@dataclass(frozen=True)
class Mapping:
    question: str | None
    reasoning: str | None
    answer: str | None

    @property
    def missing(self) -> list[str]:
        """Roles no column was found for (the user must pick them)."""
        return [role for role in ROLES if getattr(self, role) is None]


def columns_of(records: list[dict[str, Any]]) -> list[str]:
    """All column names, in first-seen order."""
    seen: dict[str, None] = {}
    for rec in records:
        if isinstance(rec, dict):
            for key in rec:
                if key not in seen:
                    seen[key] = None
    return list(seen)


def detect_mapping(columns: list[str]) -> Mapping:
    """The best guess for each role: a recognised plain column first, else a chat column's derived one."""
    used: set[str] = set()

    def pick(role: str, names: tuple[str, ...]) -> str | None:
        normalised = {_norm(c): c for c in reversed(columns)}  # first spelling wins on a clash
        for name in names:
            column = normalised.get(name)
            if column is not None and column not in used:
                used.add(column)
                return column
        for column in columns:
            if column.endswith(f".{role}") and column not in used:
                used.add(column)
                return column
        return None

    return Mapping(pick("question", QUESTION_NAMES), pick("reasoning", REASONING_NAMES),
                   pick("answer", ANSWER_NAMES))


# ---- chat rows ------------------------------------------------------------------------------------------

def _is_message(value: Any) -> bool:
    return isinstance(value, dict) and ("role" in value or "from" in value)


def chat_columns(records: list[dict[str, Any]], sample: int = 20) -> list[str]:
    """Columns whose cells are lists of chat messages (judged on the first rows that have a value)."""
    found = []
    for column in columns_of(records[:sample]):
        values = [r.get(column) for r in records[:sample] if isinstance(r, dict) and r.get(column) is not None]
        if values and all(isinstance(v, list) and v and all(_is_message(m) for m in v) for v in values):
            found.append(column)
    return found


def _text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multimodal spelling: [{"type": "text", "text": ...}, ...]
        parts = [p.get("text") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
        return "".join(parts) if parts else None
    return None


def split_conversation(messages: Any) -> tuple[str | None, str | None, str | None]:
    """(question, reasoning, answer) from the first user turn and the assistant turn that answers it."""
    if not isinstance(messages, list):
        return None, None, None
    question = assistant = None
    for message in messages:
        if not _is_message(message):
            continue
        role = str(message.get("role", message.get("from", ""))).lower()
        if role in _USER_ROLES and question is None:
            question = _text(message.get("content", message.get("value")))
        elif role in _ASSISTANT_ROLES and question is not None:
            assistant = message
            break
    if assistant is None:
        return question, None, None
    content = _text(assistant.get("content", assistant.get("value"))) or ""
    for key in _REASONING_KEYS:
        if isinstance(assistant.get(key), str):
            return question, assistant[key], content
    if THINK_CLOSE in content:
        parts = split_completion(content, prompt_opened_think=False)
        return question, parts.reasoning, parts.answer
    return question, None, content


def expand_chat(records: list[dict[str, Any]]) -> list[str]:
    """Add the derived ``<column>.question/.reasoning/.answer`` cells to chat rows in place; returns the chat
    columns found."""
    found = chat_columns(records)
    for column in found:
        for rec in records:
            if isinstance(rec, dict):
                parts = split_conversation(rec.get(column))
                for role, value in zip(ROLES, parts):
                    rec.setdefault(f"{column}.{role}", value)
    return found
