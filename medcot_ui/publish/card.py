"""The model card a published run carries: what was trained on what, how, how well, and what it must not be used for.

Built with huggingface_hub's ``ModelCard`` / ``ModelCardData`` from what the store and the run folder recorded
(config, dataset fingerprint, metrics, saved base-vs-tuned comparisons, device, package versions), never from
what the form says now. Sections the card always has are listed in :data:`SECTIONS` (tests check every one).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medcot_ui.evaluate.in_card import card_section as evaluation_section
from medcot_ui.publish.provenance import caveats, dataset_facts, license_of
from medcot_ui.training.config import RunConfig
from medcot_ui.training.models import is_demo
from medcot_ui.store import Comparison, Metric, Run, get_run, read_session, run_metrics
from medcot_ui.units import duration

SECTIONS = ("Model details", "Training data", "Training procedure", "Results", "Evaluation", "Base vs tuned examples",
            "Hardware and duration", "Software versions", "Intended use", "Limitations", "How to use", "Licence",
            "Citation")
LOSS_CURVE = "loss_curve.png"
TRAINING_CONFIG = "training_config.yaml"
MAX_EXAMPLES = 3
EXAMPLE_CHARS = 1200  # long answers are cut in the card (the full text stays in the app's database)

LIBRARY = {"adapter": "peft", "merged": "transformers", "gguf": "gguf"}
RELATION = {"adapter": "adapter", "merged": "merge", "gguf": "quantized"}
WHAT = {"adapter": "a LoRA adapter (with tokenizer)", "merged": "the base model with the LoRA adapter merged in, "
        "saved in 16-bit", "gguf": "GGUF files (q4_k_m and q8_0) of the merged model, for llama.cpp and Ollama"}


@dataclass
class CardInputs:
    """Everything a card says, gathered from the store and the run folder."""

    run: Run
    config: RunConfig
    metrics: list[Metric]
    comparisons: list[Comparison]
    summary: dict[str, Any]
    kind: str = "adapter"
    repo_id: str | None = None
    publish_versions: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)  # the weight files the card describes (GGUF names)
    merged_dtype: str | None = None


def gather(run_id: int, kind: str = "adapter", repo_id: str | None = None, files: list[str] | None = None,
           merged_dtype: str | None = None) -> CardInputs:
    from sqlmodel import select

    run = get_run(run_id)
    if run is None:
        raise ValueError(f"run {run_id} does not exist")
    with read_session() as s:
        rows = list(s.exec(select(Comparison).where(Comparison.run_id == run_id).order_by(Comparison.id.desc())))
    summary_file = Path(run.output_dir) / "summary.json"
    summary = json.loads(summary_file.read_text(encoding="utf-8")) if summary_file.exists() else {}
    return CardInputs(run=run, config=run.run_config(), metrics=run_metrics(run_id),
                      comparisons=pick_examples(rows), summary=summary, kind=kind, repo_id=repo_id,
                      publish_versions=publish_versions(kind), files=list(files or []), merged_dtype=merged_dtype)


def pick_examples(rows: list[Comparison], n: int = MAX_EXAMPLES) -> list[Comparison]:
    """Up to ``n`` finished comparisons, ones the user rated first, newest first within each group."""
    done = [c for c in rows if (c.base_answer or c.tuned_answer) and not c.stopped]
    rated = [c for c in done if c.preferred]
    return (rated + [c for c in done if not c.preferred])[:n]


def publish_versions(kind: str) -> dict[str, str]:
    from medcot_ui.training.models import installed_versions

    names = ["peft", "transformers", "huggingface_hub", "medcot-studio"]
    return installed_versions(names + (["llama_cpp_python"] if kind == "gguf" else []))


# ---- pieces ---------------------------------------------------------------------------------------------

def hub_base_model(config: RunConfig) -> str | None:
    """The base model's Hub id, or None when it is the demo model or a local folder (not on the Hub)."""
    base = config.model.base_model
    if is_demo(base) or base.startswith(("/", ".", "~")) or Path(base).exists() or base.count("/") != 1:
        return None
    return base


def hub_dataset(config: RunConfig) -> str | None:
    return config.data.dataset_id if config.data.source == "hub" else None


def languages(config: RunConfig) -> list[str]:
    if config.data.source == "hub" and config.data.dataset_config.startswith("zh"):
        return ["zh", "en"] if "mix" in config.data.dataset_config else ["zh"]
    if config.data.source == "hub" and "mix" in config.data.dataset_config:
        return ["en", "zh"]
    return ["en"]


def build_metadata(inputs: CardInputs) -> Any:
    from huggingface_hub import ModelCardData

    config = inputs.config
    lic, _ = license_of(config)
    tags = ["medical", "chain-of-thought", "reasoning", "sft", "trl", "lora", "medcot-studio"]
    tags += {"adapter": ["peft"], "merged": ["merged"], "gguf": ["gguf", "llama.cpp"]}[inputs.kind]
    if inputs.summary.get("backend") == "unsloth":
        tags.append("unsloth")
    if is_demo(config.model.base_model) or config.data.source == "demo":
        tags += ["demo", "not-for-clinical-use"]
    base = hub_base_model(config)
    dataset = hub_dataset(config)
    extra: dict[str, Any] = {}
    if base:
        extra["base_model_relation"] = RELATION[inputs.kind]
    return ModelCardData(base_model=base, datasets=[dataset] if dataset else None, library_name=LIBRARY[inputs.kind],
                         license=lic, language=languages(config), pipeline_tag="text-generation", tags=tags,
                         model_name=config.name or f"run-{inputs.run.id}", **extra)


def loss_curve_png(metrics: list[Metric], path: Path, title: str = "") -> Path | None:
    """Training (and eval) loss against step, as a PNG; None when no loss was logged."""
    steps = [(m.step, m.loss) for m in metrics if m.loss is not None]
    evals = [(m.step, m.eval_loss) for m in metrics if m.eval_loss is not None]
    if not steps and not evals:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.6), dpi=100)
    ax = fig.add_subplot()
    if steps:
        ax.plot(*zip(*steps, strict=True), label="training loss", color="#1f77b4")
    if evals:
        ax.plot(*zip(*evals, strict=True), "o-", label="eval loss", color="#d62728")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title or "Loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def _fmt(value: float | None, digits: int = 4) -> str:
    return "not measured" if value is None else f"{value:.{digits}f}"


def _quote(text: str) -> str:
    text = (text or "").strip() or "(empty)"
    if len(text) > EXAMPLE_CHARS:
        text = text[:EXAMPLE_CHARS].rstrip() + " […]"
    return "\n".join("> " + line if line.strip() else ">" for line in text.splitlines())


# ---- the card -------------------------------------------------------------------------------------------

def _data_section(config: RunConfig, run: Run) -> str:
    d = config.data
    if d.source == "hub":
        what = (f"[`{d.dataset_id}`](https://huggingface.co/datasets/{d.dataset_id}), config `{d.dataset_config}`, "
                f"split `{d.split}`")
    elif d.source == "demo":
        what = f"MedCoT Studio's bundled demo data (`data/demo/medical_demo.jsonl`), split `{d.split}`"
    else:
        what = f"an uploaded file (`{d.file_label()}`, not published), split `{d.split}`"
    return "\n".join([
        f"- Dataset: {what}",
        f"- Fingerprint: `{run.dataset_fingerprint or 'not recorded'}` (identifies the exact rows, column mapping "
        "and prompt format trained on)",
        f"- Columns: question `{d.question_column}`, reasoning `{d.reasoning_column}`, answer `{d.answer_column}`",
        f"- Prompt format: `{d.template}`; {d.eval_size} rows held out (split seed {d.split_seed})",
    ])


def _results_section(inputs: CardInputs) -> str:
    losses = [m for m in inputs.metrics if m.loss is not None]
    evals = [m for m in inputs.metrics if m.eval_loss is not None]
    final = losses[-1] if losses else None
    eval_text = (f"{_fmt(evals[-1].eval_loss)} (step {evals[-1].step})" if evals
                 else "not measured (evaluation was off for this run)")
    lines = [
        "| metric | value |", "|---|---|",
        f"| steps trained | {inputs.run.last_step or inputs.summary.get('steps') or 0}"
        f"{f' of {inputs.run.total_steps}' if inputs.run.total_steps else ''} |",
        f"| first training loss | {_fmt(losses[0].loss) if losses else 'not measured'} |",
        f"| final training loss (step {final.step if final else '-'}) | {_fmt(final.loss if final else None)} |",
        f"| final eval loss | {eval_text} |",
        f"| run status | {inputs.run.status} |",
    ]
    image = (f"\n\n![Training and eval loss against step]({LOSS_CURVE})" if (losses or evals)
             else "\n\nNo loss was logged, so there is no loss curve.")
    return "\n".join(lines) + image + ("\n\nLoss on this small, generated data set measures fit to its style, not "
                                       "medical correctness.")


def _examples_section(inputs: CardInputs) -> str:
    if not inputs.comparisons:
        return ("No base-vs-tuned comparisons were saved for this run, so none are shown. (They are recorded from "
                "MedCoT Studio's Compare tab.)")
    parts = [f"{len(inputs.comparisons)} side-by-side answers saved in MedCoT Studio's Compare tab, shown as "
             "generated (long answers cut). They are anecdotes, not an evaluation."]
    for i, c in enumerate(inputs.comparisons, start=1):
        rated = {"tuned": "the tuned answer", "base": "the base answer", "tie": "neither (a tie)"}.get(
            c.preferred or "", "")
        parts.append(f"### Example {i}\n\n**Question**\n\n{_quote(c.question)}\n\n**Base model**\n\n"
                     f"{_quote(c.base_answer)}\n\n**Tuned model**\n\n{_quote(c.tuned_answer)}"
                     + (f"\n\nThe user preferred {rated}." if rated else ""))
    return "\n\n".join(parts)


def _how_to_section(inputs: CardInputs) -> str:
    repo = inputs.repo_id or "<this-repo>"
    base = hub_base_model(inputs.config)
    if inputs.kind == "adapter":
        code = ("```python\nfrom peft import AutoPeftModelForCausalLM\nfrom transformers import AutoTokenizer\n\n"
                f'model = AutoPeftModelForCausalLM.from_pretrained("{repo}")\n'
                f'tokenizer = AutoTokenizer.from_pretrained("{repo}")\n```')
        if not base:
            code += ("\n\nThe base model is not on the Hub (it is MedCoT Studio's demo model, or a local folder): "
                     "load it first and apply this adapter with `PeftModel.from_pretrained(base, path)`.")
    elif inputs.kind == "merged":
        code = ("```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
                f'model = AutoModelForCausalLM.from_pretrained("{repo}")\n'
                f'tokenizer = AutoTokenizer.from_pretrained("{repo}")\n```')
    else:
        names = inputs.files or ["<file>.gguf"]
        code = ("```bash\n" + "\n".join(f"llama-cli -m {n} -p \"...\"" for n in names)
                + f"\nollama run hf.co/{repo}:Q4_K_M\n```")
    prompt = ("Prompt it the way it was trained: the model was trained with the "
              f"`{inputs.config.data.template}` prompt format, and answers after writing its reasoning inside "
              "`<think>…</think>`.")
    return prompt + "\n\n" + code


def _method(config: Any) -> str:
    if config.training.method != "grpo":
        return "supervised fine-tuning (TRL `SFTTrainer`)"
    g = config.grpo
    start = f", continuing run {g.start_from_run}'s adapter" if g.start_from_run else ""
    return (f"reinforcement with a verifiable reward (TRL `GRPOTrainer`: {g.num_generations} completions per "
            f"multiple-choice question, rewards: right answer x{g.correctness_weight}, format x{g.format_weight}, "
            f"length penalty x{g.length_weight}; KL weight {g.beta}{start})")


def _model_details_section(inputs: CardInputs) -> str:
    config, run, lt = inputs.config, inputs.run, inputs.config.lora
    base_label = ("MedCoT Studio's tiny demo model (`demo:tiny-llama`, built locally, not on the Hub)"
                  if is_demo(config.model.base_model) else f"`{config.model.base_model}`")
    return "\n".join([
        f"This repository holds {WHAT[inputs.kind]}, fine-tuned with LoRA by MedCoT Studio (run {run.id}, "
        f"\"{_title(inputs)}\").",
        "",
        f"- Base model: {base_label}",
        f"- Method: {_method(config)} of a LoRA adapter, r={lt.r}, alpha={lt.alpha}, "
        f"dropout={lt.dropout}, on {', '.join(lt.target_modules)}",
        f"- Backend: {inputs.summary.get('backend', 'unknown')}"
        + (f"; merged weights saved as {inputs.merged_dtype}" if inputs.merged_dtype else ""),
    ] + ([f"- Files: {', '.join(f'`{n}`' for n in inputs.files)}"] if inputs.files else []))


def _hardware_section(inputs: CardInputs) -> str:
    run = inputs.run
    seconds = inputs.summary.get("seconds_this_attempt")
    wall = (run.finished_at - run.started_at) if run.finished_at and run.started_at else None
    return "\n".join([
        f"- Device: {run.device or 'not recorded'}",
        f"- Training time (last attempt): {duration(seconds, missing='unknown')}; wall clock from start to finish: "
        f"{duration(wall, missing='unknown')}; attempts: {run.attempt or 1}",
        f"- Mean throughput: {_fmt(inputs.summary.get('mean_tokens_per_s'), 1)} tokens/s"
        + (f"; peak GPU memory {inputs.summary['peak_gpu_mem_gb']:.1f} GB"
           if inputs.summary.get("peak_gpu_mem_gb") else ""),
    ])


def _versions_section(inputs: CardInputs) -> str:
    """Package versions the run trained with beside those publishing it."""
    trained = json.loads(inputs.run.versions_json) if inputs.run.versions_json else {}
    return "\n".join(["| package | training | publishing |", "|---|---|---|"]
                     + [f"| {name} | {trained.get(name, '-')} | {inputs.publish_versions.get(name, '-')} |"
                        for name in sorted(set(trained) | set(inputs.publish_versions))])


def _limitations_section(config: RunConfig) -> str:
    return "\n\n".join([
        "The model can state wrong medical facts fluently and with confidence, and its visible reasoning can "
        "look sound while being wrong. It was trained briefly on a small slice of data and has not been "
        "evaluated for accuracy, safety or bias on any clinical benchmark.",
        *caveats(config),
    ])


def _title(inputs: CardInputs) -> str:
    return inputs.config.name or f"run-{inputs.run.id}"


def build_card(inputs: CardInputs) -> Any:
    """The ModelCard (YAML metadata + markdown body) for ``inputs``."""
    from huggingface_hub import ModelCard

    config = inputs.config
    data_facts = dataset_facts(config)
    _, licence_text = license_of(config)
    sections = {
        "Model details": _model_details_section(inputs),
        "Training data": _data_section(config, inputs.run),
        "Training procedure": ("The complete run configuration, exactly as trained (also in "
                               f"[`{TRAINING_CONFIG}`]({TRAINING_CONFIG})):\n\n```yaml\n{config.to_yaml()}```"),
        "Results": _results_section(inputs),
        "Evaluation": evaluation_section(inputs.run.id),
        "Base vs tuned examples": _examples_section(inputs),
        "Hardware and duration": _hardware_section(inputs),
        "Software versions": _versions_section(inputs),
        "Intended use": ("Research and education only: studying how fine-tuning on medical chain-of-thought data "
                         "changes a reasoning model's answers. **Not for clinical decisions**: it must not be used "
                         "to diagnose, treat or advise patients, or in place of a clinician's judgement."),
        "Limitations": _limitations_section(config),
        "How to use": _how_to_section(inputs),
        "Licence": f"`{build_metadata(inputs).license}`. {licence_text}",
        "Citation": (f"Training data:\n\n```bibtex\n{data_facts.citation}\n```" if data_facts
                     else "No published dataset to cite (the training data is not on the Hub)."),
    }
    assert tuple(sections) == SECTIONS
    body = f"# {_title(inputs)}\n\n" + "\n\n".join(f"## {name}\n\n{text}" for name, text in sections.items()) + "\n"
    return ModelCard(f"---\n{build_metadata(inputs).to_yaml()}\n---\n\n{body}")


def write_card(inputs: CardInputs, folder: Path) -> list[Path]:
    """README.md, the loss curve and the training config into ``folder``; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    png = loss_curve_png(inputs.metrics, folder / LOSS_CURVE, title=inputs.config.name or f"run {inputs.run.id}")
    if png is not None:
        written.append(png)
    (folder / TRAINING_CONFIG).write_text(inputs.config.to_yaml(), encoding="utf-8")
    written.append(folder / TRAINING_CONFIG)
    build_card(inputs).save(folder / "README.md")
    written.append(folder / "README.md")
    return written
