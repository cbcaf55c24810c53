"""The held-out split is stored when a run trains (row indices and the dataset fingerprint): Compare and Evaluate
ask exactly the questions training left out, and warn when the dataset changed since."""
from __future__ import annotations

import json
from pathlib import Path

from medcot_ui.compare.comparable import held_out
from medcot_ui.data.held_out import SPLIT_FILE, read_split
from medcot_ui.data.load import prepare
from medcot_ui.evaluate.create import EvalRequest, create_evaluation
from medcot_ui.store import get_run
from medcot_ui.training.models import load_tokenizer


def _split_file(run_id: int) -> Path:
    return Path(get_run(run_id).output_dir) / SPLIT_FILE


def test_training_stores_the_split_and_compare_asks_exactly_those_questions(demo_run: int) -> None:
    run = get_run(demo_run)
    config = run.run_config()
    prepared = prepare(config.data, load_tokenizer(config.model.base_model))
    stored = read_split(Path(run.output_dir))
    assert stored.indices == tuple(prepared.eval_indices) and len(stored.indices) == config.data.eval_size
    assert stored.fingerprint == run.dataset_fingerprint == prepared.fingerprint
    split = held_out(demo_run)
    assert split.warning is None and split.rows == prepared.eval_rows


def test_a_changed_dataset_keeps_the_stored_rows_and_compare_and_evaluate_warn(demo_run: int) -> None:
    path = _split_file(demo_run)
    # As if the data had changed since training: another fingerprint, and the rows training held out were 0-2.
    path.write_text(json.dumps({**json.loads(path.read_text()), "indices": [0, 1, 2], "fingerprint": "0123abcd"}))
    config = get_run(demo_run).run_config()
    rows = prepare(config.data, load_tokenizer(config.model.base_model)).rows
    split = held_out(demo_run)
    assert split.rows == rows[:3], "the stored indices, not a new split"
    assert split.warning.startswith("the dataset changed since this run trained (fingerprint 0123abcd")
    evaluation = create_evaluation(EvalRequest(run_id=demo_run, n=2))
    assert "warning: the dataset changed since this run trained" in evaluation.source


def test_a_run_from_before_stored_splits_splits_again_from_its_seed_and_says_so(demo_run: int) -> None:
    _split_file(demo_run).unlink()
    split = held_out(demo_run)
    assert len(split.rows) == get_run(demo_run).run_config().data.eval_size
    assert "stored no held-out split" in split.warning
