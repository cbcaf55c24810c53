"""GPU bench for the GRPO job: seconds per step, generation vs training share and peak memory, for each of TRL's
generation options, on the random-init 8B in 4-bit (the "GRPO recipe" preset: 8 questions x 8 completions of up
to 512 tokens a step).

The app's own trainer is built (``jobs.grpo.build_grpo_trainer``, the model loaded by ``load_for_training``
exactly as a run loads it) once per option over one loaded model, so the options differ only in how completions
are sampled. A random model never ends a completion, so every completion runs to the full 512 tokens: the worst
case a user can meet at this length. A result line is printed after each step, so a cut-short call keeps what ran.

    python bench/grpo_gpu.py --work /tmp/medcot-gpu --options auto:generate,auto:continuous_batching --steps 2
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORDS = ("patient fever cough dyspnea chest pain troponin lactate renal hepatic anemia sepsis insulin glucose "
         "biopsy lesion murmur edema rash vomiting headache seizure platelet creatinine sodium potassium").split()


def write_questions(path: Path, count: int, seed: int = 0) -> Path:
    """MedQA-layout questions of about 120 words (a vignette's length), keys spread over A-D."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as f:
        for i in range(count):
            options = {k: " ".join(rng.choices(WORDS, k=4)) for k in "ABCD"}
            f.write(json.dumps({"question": f"Case {i}: " + " ".join(rng.choices(WORDS, k=120)) + "?",
                                "options": options, "answer_idx": "ABCD"[i % 4]}) + "\n")
    return path


def _sync() -> None:
    """Wait for the GPU, so a timer measures its work (a no-op on a CPU smoke run)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _peak_gb(reserved: bool = False) -> float:
    import torch

    if not torch.cuda.is_available():
        return 0.0
    return (torch.cuda.max_memory_reserved() if reserved else torch.cuda.max_memory_allocated()) / 1e9


class Timed:
    """Wall time spent inside one bound method of the trainer (GPU synchronised, so the time is the GPU's)."""

    def __init__(self, trainer: Any, name: str):
        self.total, inner = 0.0, getattr(trainer, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            _sync()
            t0 = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                _sync()
                self.total += time.perf_counter() - t0

        setattr(trainer, name, timed)


def step_results(option: str, trainer: Any, steps: int) -> list[dict[str, Any]]:
    """Run ``steps`` optimizer steps; one row per step: wall, generation, rewards, the rest (training), memory."""
    from transformers import TrainerCallback

    generation, rewards = Timed(trainer, "_generate_single_turn"), Timed(trainer, "_calculate_rewards")
    rows: list[dict[str, Any]] = []

    class PerStep(TrainerCallback):
        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            _sync()
            self.t0, self.g0, self.r0 = time.perf_counter(), generation.total, rewards.total

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            _sync()
            wall = time.perf_counter() - self.t0
            gen, rew = generation.total - self.g0, rewards.total - self.r0
            row = {"option": option, "step": state.global_step, "s_per_step": wall, "generation_s": gen,
                   "rewards_s": rew, "training_s": wall - gen - rew,
                   "peak_allocated_gb": _peak_gb(), "peak_reserved_gb": _peak_gb(reserved=True)}
            rows.append(row)
            print("RESULT " + json.dumps(row), flush=True)

    trainer.add_callback(PerStep())
    trainer.train()
    return rows


def bench(work: Path, options: list[str], steps: int) -> list[dict[str, Any]]:
    """``options``: BACKEND:GENERATION pairs (backend auto|unsloth|transformers, as the form's). When an option fails
    on Unsloth, the same generation option is tried once on transformers, so a backend problem still leaves numbers."""
    import gc

    import torch

    from jobs.grpo import build_grpo_trainer
    from medcot_ui.reinforce.questions import load_questions
    from medcot_ui.reinforce.rewards import RewardLog
    from medcot_ui.training.models import load_for_training
    from medcot_ui.training.presets import grpo_recipe

    questions_file = write_questions(work / "grpo_questions.jsonl", 72)
    base = grpo_recipe().with_overrides({
        "model.base_model": str(work / "model"), "grpo.questions": "file", "grpo.questions_file": str(questions_file),
        "grpo.held_out_questions": 8, "training.max_steps": steps, "training.save_steps": 10_000,
        "tracking.report_to": "none"})
    questions = load_questions(base)
    queue = [tuple(option.split(":")) for option in options]
    loaded, loaded_for, results = None, None, []
    while queue:
        backend, generation = queue.pop(0)
        config = base.with_overrides({"model.backend": backend, "grpo.generation": generation})
        if loaded_for != backend:
            loaded = None
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            t0 = time.perf_counter()
            loaded, loaded_for = load_for_training(config), backend
            print(f"loaded with {loaded.backend} on {loaded.device} in {time.perf_counter() - t0:.1f} s", flush=True)
        option = f"{loaded.backend}:{generation}"
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        try:
            trainer = build_grpo_trainer(config, loaded, questions, work / f"grpo-{generation}", [], RewardLog([]))
            results += step_results(option, trainer, steps)
        except Exception as exc:  # one option failing must not hide the others' numbers
            traceback.print_exc()
            results.append({"option": option, "error": f"{type(exc).__name__}: {exc}"[:300]})
            print("RESULT " + json.dumps(results[-1]), flush=True)
            if loaded.backend == "unsloth":
                queue.append(("transformers", generation))
        finally:
            trainer = None  # the trainer holds the model: drop it so a backend switch frees the GPU
    return results


def table(results: list[dict[str, Any]]) -> str:
    """One line per option: the first step (warm-up included) and the median of the later ones."""
    lines = ["| generation option | step 1 s | steady s/step | generation | rewards | training | peak allocated GB "
             "| peak reserved GB |", "|---|---|---|---|---|---|---|---|"]
    steady_by_option: dict[str, float] = {}
    for option in dict.fromkeys(r["option"] for r in results):
        rows = [r for r in results if r["option"] == option and "error" not in r]
        if not rows:
            error = next(r["error"] for r in results if r["option"] == option)
            lines.append(f"| {option} | failed: {error} | | | | | | |")
            continue
        later = rows[1:] or rows
        med = {k: statistics.median(r[k] for r in later) for k in ("s_per_step", "generation_s", "rewards_s",
                                                                   "training_s")}
        steady_by_option[option] = med["s_per_step"]
        share = {k: med[k] / med["s_per_step"] for k in ("generation_s", "rewards_s", "training_s")}
        lines.append(f"| {option} | {rows[0]['s_per_step']:.1f} | {med['s_per_step']:.1f} | "
                     f"{med['generation_s']:.1f} s ({share['generation_s']:.0%}) | {med['rewards_s']:.2f} s | "
                     f"{med['training_s']:.1f} s ({share['training_s']:.0%}) | "
                     f"{max(r['peak_allocated_gb'] for r in rows):.1f} | {max(r['peak_reserved_gb'] for r in rows):.1f} |")
    if len(steady_by_option) == 2:
        (a, ta), (b, tb) = steady_by_option.items()
        lines.append(f"\n{b} / {a} steady s/step: {tb / ta:.2f}x")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/medcot-gpu"))
    parser.add_argument("--options", default="auto:generate,auto:continuous_batching")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--report", type=Path, nargs="*", help="print the table from saved RESULT lines instead")
    args = parser.parse_args()
    if args.report:
        results = [json.loads(line[len("RESULT "):]) for path in args.report
                   for line in path.read_text().splitlines() if line.startswith("RESULT ")]
    else:
        results = bench(args.work, args.options.split(","), args.steps)
    print(table(results))


if __name__ == "__main__":
    main()
