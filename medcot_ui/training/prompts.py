"""Training and inference text for one row, and splitting a completion into reasoning and answer.

The Dataset preview, the training process and the Compare tab all call these functions, so the text a user
previews is byte for byte the text the trainer tokenises, and the prompt Compare sends is the one trained on.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any, Literal

from medcot_ui.errors import MedcotError

# The reference walk-through's format. {reasoning} sits right after the opened <think> so the inference
# prompt (everything before {reasoning}) ends with "<think>\n", exactly as the walk-through prompts.
RECIPE_TEMPLATE = """Below is an instruction that describes a task, paired with an input that provides further context.
Write a response that appropriately completes the request.
Before answering, think carefully about the question and create a step-by-step chain of thoughts to ensure a logical and accurate response.

### Instruction:
You are a medical expert with advanced knowledge in clinical reasoning, diagnostics, and treatment planning.
Please answer the following medical question.

### Question:
{question}

### Response:
<think>
{reasoning}
</think>
{answer}"""

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
PLACEHOLDERS = ("question", "reasoning", "answer")


class TemplateError(MedcotError, ValueError):
    """A template that cannot place question, reasoning and answer."""


def validate_template(template: str) -> None:
    """Raise TemplateError unless the template holds {question}, {reasoning}, {answer} once each, in order."""
    try:
        names = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:  # unbalanced braces
        raise TemplateError(f"template: {exc} (write a literal brace as {{{{ or }}}})") from None
    unknown = [n for n in names if n not in PLACEHOLDERS]
    if unknown:
        raise TemplateError(f"template: unknown placeholder {{{unknown[0]}}}; use only {{question}}, "
                            "{reasoning} and {answer}")
    for name in PLACEHOLDERS:
        if names.count(name) != 1:
            raise TemplateError(f"template: {{{name}}} must appear exactly once (found {names.count(name)})")
    if names != list(PLACEHOLDERS):
        raise TemplateError("template: the placeholders must come in the order {question}, {reasoning}, {answer}")


def _bos(tokenizer: Any) -> str:
    return getattr(tokenizer, "bos_token", None) or ""


def _eos(tokenizer: Any) -> str:
    eos = getattr(tokenizer, "eos_token", None)
    if not eos:
        raise TemplateError("the tokenizer has no EOS token; without it the model never learns to stop")
    return eos


@dataclass(frozen=True)
class PromptFormat:
    """How rows become text: 'recipe' / 'custom' use a text template, 'chat_template' the tokenizer's own."""

    kind: Literal["recipe", "chat_template", "custom"] = "recipe"
    template: str = RECIPE_TEMPLATE

    @classmethod
    def from_data_settings(cls, data: Any) -> "PromptFormat":
        if data.template == "custom":
            return cls("custom", data.custom_template)
        return cls(data.template, RECIPE_TEMPLATE)

    def inference_prompt(self, question: str, tokenizer: Any) -> str:
        """What the model is given at inference: everything up to and including the opened <think>."""
        if self.kind == "chat_template":
            text = tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                                 add_generation_prompt=True)
            # The tokenizer adds BOS itself when the text is tokenised; keeping it here would double it.
            bos = _bos(tokenizer)
            if bos and text.startswith(bos):
                text = text[len(bos):]
            if not text.rstrip().endswith(THINK_OPEN):
                text += THINK_OPEN + "\n"
            return text
        prefix = self.template[: self.template.index("{reasoning}")]
        return prefix.format(question=question)

    def training_text(self, question: str, reasoning: str, answer: str, tokenizer: Any) -> str:
        """The full training text of one row, ending with EOS (without it the model never stops)."""
        if self.kind == "chat_template":
            # The R1-distill chat template drops reasoning from assistant turns; we keep it in the target.
            return f"{self.inference_prompt(question, tokenizer)}{reasoning}\n{THINK_CLOSE}\n{answer}{_eos(tokenizer)}"
        return self.template.format(question=question, reasoning=reasoning, answer=answer) + _eos(tokenizer)


@dataclass(frozen=True)
class Completion:
    reasoning: str
    answer: str
    state: Literal["closed", "unclosed", "none"]  # was </think> reached, still open, or never thought


def split_completion(text: str, prompt_opened_think: bool = True) -> Completion:
    """Split generated text into reasoning and answer.

    ``prompt_opened_think``: the prompt ended with <think>, so the completion starts inside the reasoning.
    A completion that never closes </think> is unfinished reasoning, never an answer.
    """
    body = text.lstrip()
    opened = prompt_opened_think
    if body.startswith(THINK_OPEN):
        body, opened = body[len(THINK_OPEN):], True
    if THINK_CLOSE in body:
        reasoning, _, answer = body.partition(THINK_CLOSE)
        return Completion(reasoning.strip(), answer.strip(), "closed")
    if opened:
        return Completion(body.strip(), "", "unclosed")
    return Completion("", body.strip(), "none")
