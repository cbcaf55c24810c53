"""Teach the freshly initialised demo model the recipe's answer shape, so the demo shows real numbers.

A random-initialised model never closes ``<think>`` or names an option, so in the demo every multiple-choice
answer was "no answer found", the accuracy view stayed empty and GRPO had no reward to learn from. Before the
demo model is saved it is trained (all weights, a few hundred small steps, seeded) on texts in the recipe's
template built from the bundled demo rows: a short reasoning then an answer for each open question, and for a
multiple-choice version of each question (options drawn from other rows' answers, the letter drawn at random) a
fixed reasoning line then "The answer is X.". The letters carry no medicine, so the demo model's choices stay
chance-level: it knows the format, not the answers.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

MC_REASONING = "Let me weigh each option against the findings."
STEPS, BATCH, LEARNING_RATE, MAX_TOKENS = 600, 4, 4e-3, 512


def _first_sentences(text: str, count: int) -> str:
    return ". ".join(text.split(". ")[:count]).rstrip(".") + "."


def _short_option(text: str) -> str:
    return " ".join(text.split()[:5]).rstrip(".,;:")


def format_texts(data_file: Path, tokenizer: Any, seed: int = 0) -> list[str]:
    """Training texts, two per demo row: the open question shortened, and a multiple-choice version of it."""
    from medcot_ui.evaluate.choice_data import question_with_options
    from medcot_ui.training.prompts import PromptFormat

    rows = [json.loads(line) for line in data_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    fmt, rng = PromptFormat(), random.Random(seed)
    answers = [_short_option(row["Response"]) for row in rows]
    texts = []
    for row in rows:
        texts.append(fmt.training_text(row["Question"], _first_sentences(row["Complex_CoT"], 2),
                                       _first_sentences(row["Response"], 1), tokenizer))
        options = {letter: rng.choice(answers) for letter in "ABCD"}
        texts.append(fmt.training_text(question_with_options(row["Question"], options), MC_REASONING,
                                       f"The answer is {rng.choice('ABCD')}.", tokenizer))
    return texts


def teach_answer_format(model: Any, tokenizer: Any, data_file: Path, steps: int = STEPS, seed: int = 0) -> float:
    """Train ``model`` in place on :func:`format_texts`; returns the last batch's loss."""
    import torch

    encoded = [tokenizer(text, add_special_tokens=False)["input_ids"][:MAX_TOKENS]
               for text in format_texts(data_file, tokenizer, seed)]
    rng = random.Random(seed)
    torch.manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matmuls: one thread is fastest, and a busy machine is not slowed further
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
    model.train()
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        batch = rng.sample(encoded, BATCH)
        width = max(map(len, batch))
        ids = torch.full((BATCH, width), tokenizer.pad_token_id)
        labels = torch.full((BATCH, width), -100)
        mask = torch.zeros((BATCH, width), dtype=torch.long)
        for i, row in enumerate(batch):
            ids[i, :len(row)] = labels[i, :len(row)] = torch.tensor(row)
            mask[i, :len(row)] = 1
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    torch.set_num_threads(threads)
    return loss.item()
