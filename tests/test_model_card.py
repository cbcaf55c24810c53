"""The model card: every section, valid metadata, and only what the run recorded."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from huggingface_hub import ModelCard

from medcot_ui.publish import card as model_card
from medcot_ui.training.config import RECIPE_DATASET, RECIPE_MODEL, RunConfig
from medcot_ui.training.presets import recipe
from medcot_ui.store import Comparison, Metric, Run, get_run, run_metrics, write_session


def front_matter(text: str) -> dict:
    match = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    assert match, "the card must start with a YAML block"
    return yaml.safe_load(match.group(1))


def sections(text: str) -> list[str]:
    return re.findall(r"^## (.+)$", text, re.M)


def test_the_demo_runs_card_has_every_section_valid_metadata_and_the_runs_own_numbers(demo_run: int,
                                                                                       tmp_path: Path) -> None:
    written = model_card.write_card(model_card.gather(demo_run, "adapter", "alice/quick-demo"), tmp_path)
    assert sorted(p.name for p in written) == ["README.md", "loss_curve.png", "training_config.yaml"]
    text = (tmp_path / "README.md").read_text(encoding="utf-8")

    assert sections(text) == list(model_card.SECTIONS)
    meta = front_matter(text)
    assert meta["library_name"] == "peft"
    assert meta["license"] == "apache-2.0" and meta["language"] == ["en"]
    assert {"medical", "chain-of-thought", "lora", "demo", "not-for-clinical-use"} <= set(meta["tags"])
    assert "base_model" not in meta and "datasets" not in meta, "the demo model and data are not on the Hub"
    # huggingface_hub parses it back without complaint (what push_to_hub would send for validation).
    card = ModelCard.load(tmp_path / "README.md", ignore_metadata_errors=False)
    assert card.data.to_dict() == meta

    run, metrics = get_run(demo_run), run_metrics(demo_run)
    losses = [m for m in metrics if m.loss is not None]
    evals = [m for m in metrics if m.eval_loss is not None]
    assert evals, "the fixture's run evaluates every 10 steps"
    assert f"{losses[-1].loss:.4f}" in text and f"{evals[-1].eval_loss:.4f}" in text
    assert run.dataset_fingerprint and run.dataset_fingerprint in text
    assert run.device and run.device in text
    for package, version in json.loads(run.versions_json).items():
        assert f"| {package} | {version} |" in text
    # The full training config, exactly as trained, both in the card and beside it.
    block = re.search(r"```yaml\n(.*?)```", text, re.S).group(1)
    assert RunConfig.from_yaml(block) == run.run_config()
    assert RunConfig.from_yaml((tmp_path / "training_config.yaml").read_text()) == run.run_config()
    assert "![Training and eval loss against step](loss_curve.png)" in text
    assert (tmp_path / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Not for clinical decisions" in text and "made-up, illustrative rows" in text
    assert "No base-vs-tuned comparisons were saved for this run" in text


def _recipe_run(home: Path) -> int:
    """A stored run of the recipe config, as the worker would have recorded it on a GPU machine."""
    config = recipe()
    with write_session() as s:
        run = Run(name="recipe-run", status="succeeded", config_json=config.to_json(), started_at=1000.0,
                  finished_at=2260.0, attempt=1, output_dir=str(home / "runs" / "run-9"), last_step=60,
                  total_steps=60, last_loss=1.31, device="Tesla T4 (15 GiB)", dataset_fingerprint="abc123def456",
                  versions_json=json.dumps({"torch": "2.13.0", "unsloth": "2026.10.9"}))
        s.add(run)
        s.flush()
        for step, loss in ((10, 1.9), (20, 1.6), (60, 1.31)):
            s.add(Metric(run_id=run.id, step=step, loss=loss))
        s.add(Comparison(run_id=run.id, question="Unrated question?", base_answer="b1", tuned_answer="t1"))
        s.add(Comparison(run_id=run.id, question="Stopped question?", base_answer="b2", tuned_answer="t2",
                         stopped=True))
        s.add(Comparison(run_id=run.id, question="What would cystometry most likely reveal?",
                         base_answer="A long base answer. " * 100, tuned_answer="Normal residual volume.",
                         preferred="tuned"))
        return int(run.id)


def test_a_recipe_run_card_names_its_hub_base_model_dataset_licence_and_citation(home: Path) -> None:
    run_id = _recipe_run(home)
    text = str(model_card.build_card(model_card.gather(run_id, "adapter", "alice/recipe-run")))
    meta = front_matter(text)
    assert meta["base_model"] == RECIPE_MODEL and meta["base_model_relation"] == "adapter"
    assert meta["datasets"] == [RECIPE_DATASET]
    assert meta["license"] == "llama3.1" and meta["pipeline_tag"] == "text-generation"
    assert "demo" not in meta["tags"]
    assert f"[`{RECIPE_DATASET}`](https://huggingface.co/datasets/{RECIPE_DATASET}), config `en`, split " \
           "`train[0:500]`" in text
    assert "arxiv.org/abs/2412.18925" in text and "generated by GPT-4o" in text
    assert "Tesla T4 (15 GiB)" in text and "21 min 00 s" in text  # wall clock from start to finish
    assert "| unsloth | 2026.10.9 |" in text
    # Saved comparisons: the rated one first, stopped ones left out, long answers cut.
    examples = text.split("## Base vs tuned examples", 1)[1].split("## Hardware", 1)[0]
    assert examples.index("cystometry") < examples.index("Unrated question?")
    assert "Stopped question?" not in examples
    assert "The user preferred the tuned answer." in examples and "[…]" in examples
    assert 'AutoPeftModelForCausalLM.from_pretrained("alice/recipe-run")' in text


def test_merged_and_gguf_cards_declare_what_they_hold(home: Path) -> None:
    run_id = _recipe_run(home)
    merged = front_matter(str(model_card.build_card(model_card.gather(run_id, "merged", "a/m",
                                                                      merged_dtype="bfloat16"))))
    assert merged["library_name"] == "transformers" and merged["base_model_relation"] == "merge"
    files = ["recipe-run-Q4_K_M.gguf", "recipe-run-Q8_0.gguf"]
    card = str(model_card.build_card(model_card.gather(run_id, "gguf", "a/g", files=files)))
    gguf_meta = front_matter(card)
    assert gguf_meta["library_name"] == "gguf" and gguf_meta["base_model_relation"] == "quantized"
    assert {"gguf", "llama.cpp"} <= set(gguf_meta["tags"])
    assert all(f"llama-cli -m {f}" in card for f in files) and "ollama run hf.co/a/g:Q4_K_M" in card


def test_a_throwaway_evaluation_left_out_in_publish_is_not_in_the_card_and_the_preview_shows_the_card(
        demo_run: int) -> None:
    from medcot_ui.evaluate.create import EvalRequest, create_evaluation
    from medcot_ui.evaluate.in_card import card_choices, set_in_card
    from medcot_ui.publish.view import card_preview

    kept, throwaway = (create_evaluation(EvalRequest(run_id=demo_run, n=n)) for n in (8, 2))
    with write_session() as s:  # as the worker leaves a finished evaluation job
        for evaluation in (kept, throwaway):
            s.get(Run, evaluation.job_id).status = "succeeded"
    choices, chosen = card_choices(demo_run)
    assert [v for _, v in choices] == chosen == [kept.id, throwaway.id], "every finished one, until left out"
    preview = card_preview(demo_run, "adapter", None)
    assert preview.startswith("```yaml\n") and "## Evaluation" in preview
    assert "2 evaluations run in MedCoT Studio" in preview
    set_in_card(demo_run, [kept.id])
    assert card_choices(demo_run)[1] == [kept.id]
    card = str(model_card.build_card(model_card.gather(demo_run)))
    assert "1 evaluation run in MedCoT Studio" in card and "1 evaluation run in MedCoT Studio" in card_preview(
        demo_run, "adapter", None)
    set_in_card(demo_run, [])
    assert "No evaluation of this run was recorded in MedCoT Studio (2 left out of this card)." in card_preview(
        demo_run, "adapter", None)
    set_in_card(demo_run, [kept.id, throwaway.id])
    assert "2 evaluations run in MedCoT Studio" in str(model_card.build_card(model_card.gather(demo_run)))
