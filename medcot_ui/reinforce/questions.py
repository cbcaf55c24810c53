"""The questions a GRPO run reinforces on: a multiple-choice file in any layout Evaluate reads (MedQA, MedMCQA,
PubMedQA, ours), split into the part trained on and a held-out part, each question put in the run's prompt
format (the recipe's, so the model keeps its ``<think>`` habit)."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from medcot_ui.evaluate.choice_data import ChoiceItem, benchmark_items, question_with_options, read_records
from medcot_ui.training.config import RunConfig
from medcot_ui.training.prompts import PromptFormat


@dataclass(frozen=True)
class Questions:
    train: list[ChoiceItem]
    held_out: list[ChoiceItem]
    source: str  # how the file is named in the run's log


def load_questions(config: RunConfig) -> Questions:
    """Read, validate (every bad row named) and split the run's questions; the split is seeded by the data
    section's split seed, so a resumed run trains on the same part."""
    g = config.grpo
    records, label = read_records(g.questions, g.questions_file)
    items, note = benchmark_items(records)
    order = list(range(len(items)))
    random.Random(config.data.split_seed).shuffle(order)
    held = set(order[: g.held_out_questions])
    train = [item for i, item in enumerate(items) if i not in held]
    if not train:
        raise ValueError(f"grpo.held_out_questions: {g.held_out_questions} leaves none of the {len(items)} "
                         "questions to train on")
    return Questions(train, [items[i] for i in sorted(held)], label + (f" ({note})" if note else ""))


def prompt_rows(items: list[ChoiceItem], fmt: PromptFormat, tokenizer: Any) -> dict[str, list[Any]]:
    """Columns of the GRPO dataset: the prompt (up to the opened ``<think>``), the options and the key."""
    return {"prompt": [fmt.inference_prompt(question_with_options(i.question, i.options), tokenizer) for i in items],
            # JSON text: a column of dicts would take every letter any row has (A-E beside A-D)
            "options": [json.dumps(i.options) for i in items], "key": [i.answer for i in items]}
