"""Training text and inference prompt of one row, and reading reasoning and answer back out of a completion."""

from __future__ import annotations

import pytest

from medcot_ui.training.prompts import RECIPE_TEMPLATE, PromptFormat, TemplateError, split_completion, validate_template


@pytest.fixture(scope="module")
def tokenizer(built_demo_model):  # noqa: ANN001
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(built_demo_model)


def test_the_recipe_text_is_header_question_think_reasoning_answer_then_eos(tokenizer) -> None:  # noqa: ANN001
    text = PromptFormat().training_text("Q?", "because", "A.", tokenizer)
    assert text.endswith("### Response:\n<think>\nbecause\n</think>\nA." + tokenizer.eos_token)
    assert "### Question:\nQ?\n" in text and text.startswith("Below is an instruction")


def test_the_inference_prompt_is_the_training_text_up_to_the_opened_think(tokenizer) -> None:  # noqa: ANN001
    for fmt in (PromptFormat(), PromptFormat("chat_template")):
        prompt = fmt.inference_prompt("Q?", tokenizer)
        assert prompt.endswith("<think>\n")
        assert fmt.training_text("Q?", "because", "A.", tokenizer).startswith(prompt)


def test_the_chat_template_format_keeps_the_reasoning_in_the_target(tokenizer) -> None:  # noqa: ANN001
    text = PromptFormat("chat_template").training_text("Q?", "because", "A.", tokenizer)
    assert text == "<｜User｜>Q?<｜Assistant｜><think>\nbecause\n</think>\nA.<｜end▁of▁sentence｜>"
    # BOS is added once, by the tokenizer, not twice
    ids = tokenizer(text)["input_ids"]
    assert ids.count(tokenizer.bos_token_id) == 1 and ids[-1] == tokenizer.eos_token_id


@pytest.mark.parametrize("template, message", [
    ("{question} {answer}", "{reasoning} must appear exactly once"),
    ("{question} {answer} {reasoning}", "in the order"),
    ("{question} {reasoning} {answer} {extra}", "unknown placeholder {extra}"),
    ("{question {reasoning} {answer}", "template:"),
])
def test_a_template_that_cannot_place_all_three_parts_is_refused(template: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message.replace("{", r"\{").replace("}", r"\}")):
        validate_template(template)
    validate_template(RECIPE_TEMPLATE)


def test_a_closed_completion_splits_into_reasoning_and_answer() -> None:
    c = split_completion("First, the history.\n</think>\nThe answer is B.")
    assert (c.reasoning, c.answer, c.state) == ("First, the history.", "The answer is B.", "closed")


def test_a_completion_that_never_closes_think_is_unfinished_reasoning_not_an_answer() -> None:
    c = split_completion("First, the history. Then")
    assert (c.reasoning, c.answer, c.state) == ("First, the history. Then", "", "unclosed")


def test_a_completion_with_no_thinking_at_all_is_all_answer() -> None:
    c = split_completion("The answer is B.", prompt_opened_think=False)
    assert (c.reasoning, c.answer, c.state) == ("", "The answer is B.", "none")
    c = split_completion("<think>hmm</think>B", prompt_opened_think=False)
    assert (c.reasoning, c.answer, c.state) == ("hmm", "B", "closed")
