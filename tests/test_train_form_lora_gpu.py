"""On a CUDA GPU with Unsloth: a LoRA rank and alpha set in the Train form are those of the saved adapter
(the transformers backend is covered on the CPU by test_train_form_lora.py). Skipped without CUDA."""

from __future__ import annotations

from pathlib import Path

import pytest

from test_train_form_lora import ALPHA, RANK, train_with_rank_and_alpha_from_the_form

pytestmark = [pytest.mark.gpu, pytest.mark.timeout(240)]  # fails a hung GPU test inside one device call


def test_with_unsloth_the_lora_rank_and_alpha_set_in_the_train_form_are_those_of_the_saved_adapter(
        home: Path, processes) -> None:  # noqa: ANN001
    pytest.importorskip("unsloth")
    saved = train_with_rank_and_alpha_from_the_form(home, processes, "unsloth")
    assert (saved["r"], saved["lora_alpha"]) == (RANK, ALPHA)
