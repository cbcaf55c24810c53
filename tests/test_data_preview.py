"""The preview shows byte for byte what the trainer tokenises, and the statistics count exactly that."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.train import build_trainer
from medcot_ui.data.load import prepare
from medcot_ui.data.stats import _skeleton, histogram, tokenizer_for
from medcot_ui.data.report import analyse
from medcot_ui.training.models import load_for_training
from medcot_ui.training.presets import quick_demo
from medcot_ui.data.preview import decode, preview_row
from medcot_ui.settings import DEMO_MODEL_ID


@pytest.mark.parametrize("template", ["recipe", "chat_template"])
def test_the_preview_text_of_a_row_is_the_text_the_trainer_tokenises_for_that_row(home: Path, tmp_path: Path,
                                                                                   template: str) -> None:
    # 512 tokens: some demo rows fit and some are cut, so both cases are checked
    config = quick_demo().with_overrides({"data.template": template, "data.eval_size": 8, "model.max_seq_length": 512})
    max_len = config.model.max_seq_length
    # The training process's own path: jobs.train loads the model, prepares the data and builds SFTTrainer.
    loaded = load_for_training(config)
    trainer = build_trainer(config, loaded, prepare(config.data, loaded.tokenizer), tmp_path / "out", [])
    # The Dataset tab's path, separately: analyse the same settings and preview rows.
    report = analyse(config.data, DEMO_MODEL_ID, max_len)
    assert report.error is None and report.prepared is not None and report.tokenizer is not None
    prepared = report.prepared
    train_positions = [i for i in range(len(prepared.rows)) if i not in set(prepared.eval_indices)]
    totals = report.stats.counts["total"]
    short = next(i for i in train_positions if totals[i] <= max_len)
    long = next(i for i in train_positions if totals[i] > max_len)
    for index in (train_positions[0], short, long, train_positions[-1]):
        preview = preview_row(prepared, index, report.format, report.tokenizer.tokenizer, max_len)
        trained_ids = trainer.train_dataset[train_positions.index(index)]["input_ids"]
        assert preview.trained_text == decode(loaded.tokenizer, trained_ids)
        assert preview.training_text == prepared.train_texts[train_positions.index(index)]
        assert preview.tokens == totals[index] and preview.trained_tokens == len(trained_ids)
        if index == short:  # fits: the whole text, BOS in front and EOS at the end, nothing cut
            assert preview.trained_text == loaded.tokenizer.bos_token + preview.training_text
            assert preview.training_text.endswith(loaded.tokenizer.eos_token) and preview.cut_text == ""
        if index == long:  # cut at max_seq_length: the preview shows where, and what is lost
            assert preview.cut_text.endswith(loaded.tokenizer.eos_token)
            assert len(trained_ids) == max_len


def test_the_inference_prompt_is_the_training_text_up_to_the_opened_think(home: Path) -> None:
    config = quick_demo()
    report = analyse(config.data, DEMO_MODEL_ID, config.model.max_seq_length)
    tok = report.tokenizer.tokenizer
    preview = preview_row(report.prepared, 3, report.format, tok, 4096)
    assert preview.inference_prompt.endswith("### Response:\n<think>\n")
    assert preview.inference_prompt.startswith(tok.bos_token)
    assert preview.trained_text.startswith(preview.inference_prompt)


def test_token_statistics_count_what_the_trainer_tokenises_and_the_rows_it_truncates(home: Path) -> None:
    config = quick_demo().with_overrides({"data.eval_size": 10})
    max_len = 600
    report = analyse(config.data, DEMO_MODEL_ID, max_len)
    stats, prepared, tok = report.stats, report.prepared, report.tokenizer.tokenizer
    totals = [len(tok(text)["input_ids"]) for text in prepared.texts]
    assert stats.counts["total"] == totals
    # The parts are read off the full text's offsets (one tokenisation per row), not tokenised one by one: the
    # fast path must be in use, or the comparison below would compare the slow path with itself.
    assert _skeleton(report.format, tok) is not None
    for part in ("question", "reasoning", "answer"):  # read off the full text's offsets; equal to tokenising
        alone = [len(tok(getattr(r, part), add_special_tokens=False)["input_ids"]) for r in prepared.rows]
        assert all(abs(a - b) <= 1 for a, b in zip(stats.counts[part], alone)), part
    over = [i for i, t in enumerate(totals) if t > max_len]
    assert 0 < len(over) < len(totals) and stats.truncated == over
    held = set(prepared.eval_indices)
    assert stats.train_rows == 110
    assert stats.tokens_per_epoch == sum(min(t, max_len) for i, t in enumerate(totals) if i not in held)
    assert any(w.startswith(f"{len(over)} of 120 rows are longer than the max sequence length (600 tokens)")
               for w in report.warnings)


def test_the_histogram_puts_max_seq_length_on_a_bin_edge() -> None:
    totals = [100, 511, 512, 513, 900, 2000]
    bins = histogram(totals, 512)
    assert sum(b.rows for b in bins) == len(totals)
    assert sum(b.rows for b in bins if b.truncated) == 3  # 513, 900 and 2000 tokens
    assert any(b.end == 512 and not b.truncated for b in bins)
    assert bins[-1].end >= 2000


def test_a_model_whose_tokenizer_is_not_here_is_counted_with_the_demo_tokenizer_and_says_so(home: Path) -> None:
    choice = tokenizer_for("some-org/model-that-is-not-here")
    assert choice.used == DEMO_MODEL_ID
    assert "'some-org/model-that-is-not-here' could not be loaded" in choice.note
    assert "demo model's tokenizer (demo:tiny-llama)" in choice.note
    local = tokenizer_for(str(home / "models" / "demo-tiny-llama"))
    assert local.note == "" and local.used.endswith("demo-tiny-llama")


def test_a_custom_template_is_validated_and_previewed_with_its_own_text(home: Path) -> None:
    from medcot_ui.training.config import ConfigError
    from medcot_ui.data.report import form_settings

    base = {"source": "demo", "split": "train", "template": "custom"}
    with pytest.raises(ConfigError) as exc:
        form_settings({**base, "custom_template": "Q: {question}\nA: {answer}"}, 2048)
    assert exc.value.errors == ["data.custom_template: template: {reasoning} must appear exactly once (found 0)"]
    data, max_len = form_settings({**base, "custom_template": "Q: {question}\n<think>{reasoning}</think>\nA: {answer}"},
                                  2048)
    report = analyse(data, DEMO_MODEL_ID, max_len)
    row = report.prepared.rows[0]
    preview = preview_row(report.prepared, 0, report.format, report.tokenizer.tokenizer, max_len)
    eos = report.tokenizer.tokenizer.eos_token
    assert preview.training_text == f"Q: {row.question}\n<think>{row.reasoning}</think>\nA: {row.answer}{eos}"
    assert preview.inference_prompt == f"{report.tokenizer.tokenizer.bos_token}Q: {row.question}\n<think>"
