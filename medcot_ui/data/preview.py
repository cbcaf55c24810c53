"""One row as the model sees it: the training text exactly as tokenised (special tokens visible, the cut at
max_seq_length marked) and the inference prompt the Compare tab sends for its question."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medcot_ui.data.load import Prepared
from medcot_ui.training.prompts import PromptFormat


@dataclass(frozen=True)
class RowPreview:
    index: int  # 0-based row of the dataset
    held_out: bool
    training_text: str  # the string handed to the trainer (prepared.texts[index])
    trained_text: str  # decode of the token ids the trainer keeps: special tokens (BOS, EOS) visible
    cut_text: str  # decode of the tokens beyond max_seq_length ('' when the row fits)
    tokens: int
    trained_tokens: int
    inference_prompt: str  # decode of the tokenised prompt Compare sends (BOS visible)


def decode(tokenizer: Any, ids: list[int]) -> str:
    # No clean-up: some tokenizers' defaults rewrite spaces before punctuation, which is not what is trained.
    return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def preview_row(prepared: Prepared, index: int, fmt: PromptFormat, tokenizer: Any,
                max_seq_length: int) -> RowPreview:
    """The preview of row ``index``; its token ids are exactly ``tokenizer(text)`` cut at ``max_seq_length``,
    which is what the trainer does with the same text."""
    if not 0 <= index < len(prepared.texts):
        raise IndexError(f"row {index + 1}: there are {len(prepared.texts)} rows")
    text = prepared.texts[index]
    ids = tokenizer(text)["input_ids"]
    row = prepared.rows[index]
    prompt_ids = tokenizer(fmt.inference_prompt(row.question, tokenizer))["input_ids"]
    return RowPreview(
        index=index, held_out=index in set(prepared.eval_indices), training_text=text,
        trained_text=decode(tokenizer, ids[:max_seq_length]), cut_text=decode(tokenizer, ids[max_seq_length:]),
        tokens=len(ids), trained_tokens=min(len(ids), max_seq_length),
        inference_prompt=decode(tokenizer, prompt_ids))
