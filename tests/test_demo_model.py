"""The demo model: built here with no network, it answers in the recipe's shape, so the demo's accuracy view shows
real numbers (a random-initialised model left every multiple-choice answer unparsed), while knowing no medicine.
"""

from __future__ import annotations

import json
from pathlib import Path

from medcot_ui.evaluate.choice_data import question_with_options
from medcot_ui.evaluate.choices import choice_of
from medcot_ui.settings import PROJECT_DIR

DEMO_CHOICES = PROJECT_DIR / "data" / "demo" / "medical_choice_demo.jsonl"


def test_the_demo_model_answers_most_demo_questions_with_a_letter_evaluate_can_read(built_demo_model: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from medcot_ui.evaluate.generate import answer_batch
    from medcot_ui.training.prompts import PromptFormat

    items = [json.loads(line) for line in DEMO_CHOICES.read_text(encoding="utf-8").splitlines()]
    model = AutoModelForCausalLM.from_pretrained(built_demo_model)
    tokenizer = AutoTokenizer.from_pretrained(built_demo_model)
    answers = answer_batch(model, tokenizer, PromptFormat(), [question_with_options(i["question"], i["options"])
                                                              for i in items], max_new_tokens=48)
    letters = [choice_of(a.completion, i["options"]) for a, i in zip(answers, items)]
    parsed = [letter for letter in letters if letter is not None]
    assert len(parsed) >= 0.6 * len(items), [a.text for a in answers]
    right = sum(letter == i["answer_idx"] for letter, i in zip(letters, items))
    assert right <= 0.6 * len(items), "the demo model was taught the format, not the demo answers"
