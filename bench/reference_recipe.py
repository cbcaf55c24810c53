"""The reference walk-through as a plain script (the baseline the app's training job is measured against).

Unsloth 4-bit load, LoRA r=16 on all projections, TRL SFTTrainer with the recipe's settings, the recipe's
prompt format, on the same JSONL rows the app's job reads. Prints one JSON line with its measurements:

    python bench/reference_recipe.py --model DIR --data rows.jsonl [--max-steps 60] [--packing]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from unsloth import FastLanguageModel  # noqa: I001 - must come before transformers / trl

import torch
from datasets import load_dataset
from transformers import TrainerCallback
from trl import SFTConfig, SFTTrainer

from jobs.callbacks import TokenCounter  # measurement only: counts real tokens the same way as the app

TRAIN_PROMPT = """Below is an instruction that describes a task, paired with an input that provides further context.
Write a response that appropriately completes the request.
Before answering, think carefully about the question and create a step-by-step chain of thoughts to ensure a logical and accurate response.

### Instruction:
You are a medical expert with advanced knowledge in clinical reasoning, diagnostics, and treatment planning.
Please answer the following medical question.

### Question:
{}

### Response:
<think>
{}
</think>
{}"""


class StepClock(TrainerCallback):
    """Wall time per optimizer step and the trainer's count of real (non-padding) tokens."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.tokens: list[tuple[int, float]] = []
        self.counter: TokenCounter | None = None

    def on_step_begin(self, args, state, control, **kw):  # noqa: ANN001, ANN003, ANN201
        torch.cuda.synchronize()
        self._t = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):  # noqa: ANN001, ANN003, ANN201
        torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self._t)

    def on_log(self, args, state, control, logs=None, **kw):  # noqa: ANN001, ANN003, ANN201
        if logs and "loss" in logs and self.counter is not None:
            self.tokens.append((state.global_step, self.counter.total))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--max-steps", type=int, default=60)
    p.add_argument("--logging-steps", type=int, default=10)
    p.add_argument("--packing", action="store_true")
    # Knobs for the search of a faster preset (defaults = the recipe)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--grad-accum", type=int, default=4)
    p.add_argument("--checkpointing", choices=["unsloth", "true", "false"], default="unsloth")
    p.add_argument("--max-length", type=int, default=2048)
    p.add_argument("--output-dir", default="outputs")
    args = p.parse_args()

    t_load = time.perf_counter()
    model, tokenizer = FastLanguageModel.from_pretrained(model_name=args.model, max_seq_length=2048, dtype=None,
                                                         load_in_4bit=True)
    model = FastLanguageModel.get_peft_model(
        model, r=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        lora_alpha=16, lora_dropout=0, bias="none",
        use_gradient_checkpointing={"unsloth": "unsloth", "true": True, "false": False}[args.checkpointing],
        random_state=3407,
        use_rslora=False, loftq_config=None)
    load_s = time.perf_counter() - t_load
    eos = tokenizer.eos_token

    def fmt(batch):  # noqa: ANN001, ANN202
        return {"text": [TRAIN_PROMPT.format(q, c, r) + eos
                         for q, c, r in zip(batch["Question"], batch["Complex_CoT"], batch["Response"])]}

    dataset = load_dataset("json", data_files=args.data, split="train").map(fmt, batched=True)
    clock = StepClock()
    trainer = SFTTrainer(
        model=model, processing_class=tokenizer, train_dataset=dataset, callbacks=[clock],
        args=SFTConfig(dataset_text_field="text", max_length=args.max_length, packing=args.packing,
                       per_device_train_batch_size=args.batch, gradient_accumulation_steps=args.grad_accum,
                       warmup_steps=5,
                       max_steps=args.max_steps, learning_rate=2e-4, fp16=not torch.cuda.is_bf16_supported(),
                       bf16=torch.cuda.is_bf16_supported(), logging_steps=args.logging_steps, optim="adamw_8bit",
                       weight_decay=0.01, lr_scheduler_type="linear", seed=3407, output_dir=args.output_dir,
                       report_to=[], save_strategy="no", disable_tqdm=True))
    clock.counter = trainer.data_collator = TokenCounter(trainer.data_collator)
    torch.cuda.reset_peak_memory_stats()
    trainer.train()
    print("RESULT " + json.dumps({
        "step_times": clock.times, "tokens": clock.tokens, "load_s": load_s,
        "peak_mem_gb": torch.cuda.max_memory_allocated() / 2**30,
        "peak_reserved_gb": torch.cuda.max_memory_reserved() / 2**30}), flush=True)


if __name__ == "__main__":
    main()
