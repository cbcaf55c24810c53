"""Load a base model and tokenizer for training (Unsloth or transformers + PEFT), and build the demo model.

The demo model is a tiny Llama-architecture network with a byte-level BPE tokenizer trained on the bundled
demo data and an R1-distill style chat template. It is built on this machine in about half a minute (taught the
answer format, ``demo_format``), needs no network, and lets the whole loop (train, compare, evaluate, publish) run
on a CPU. Its answers are meaningless by design.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medcot_ui.errors import MedcotError
from medcot_ui.settings import DEMO_DATA_FILE, DEMO_MODEL_ID, get_settings
from medcot_ui.training.config import LoraSettings, RunConfig
from medcot_ui.training.demo_format import teach_answer_format

BOS, EOS, PAD = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜▁pad▁｜>"
USER, ASSISTANT = "<｜User｜>", "<｜Assistant｜>"
# The R1-distill chat format: reasoning is dropped from earlier assistant turns; the generation prompt opens
# <think>. (Training with the 'chat_template' format builds the target itself so reasoning is kept.)
R1_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}"
    "{% elif message['role'] == 'user' %}{{ '<｜User｜>' + message['content'] }}"
    "{% elif message['role'] == 'assistant' %}{% set content = message['content'] %}"
    "{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}"
    "{{ '<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<｜Assistant｜><think>\\n' }}{% endif %}"
)


class ModelLoadError(MedcotError, RuntimeError):
    """The model could not be loaded; the message says why and what to do."""


def is_demo(model_id: str) -> bool:
    return model_id == DEMO_MODEL_ID


def resolve_model(model_id: str) -> str:
    """A path or Hub id that ``from_pretrained`` accepts; builds the demo model on first use."""
    if is_demo(model_id):
        return str(ensure_demo_model())
    return model_id


def ensure_demo_model(target: Path | None = None, data_file: Path = DEMO_DATA_FILE) -> Path:
    """Build the demo model once: one process builds (about half a minute) while the others wait for it, and the
    folder appears whole (renamed into place), so no process ever sees half a model."""
    from filelock import FileLock

    target = Path(target or get_settings().demo_model_dir)
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.parent / f".{target.name}.lock")):
        if (target / "config.json").exists():  # built by the process we waited for
            return target
        tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=target.parent))
        try:
            build_demo_model(tmp, data_file)
            os.rename(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def _demo_texts(data_file: Path) -> list[str]:
    from medcot_ui.training.prompts import RECIPE_TEMPLATE

    texts = [RECIPE_TEMPLATE]
    with open(data_file, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                texts.extend(str(v) for v in row.values())
    return texts


def build_tokenizer(data_file: Path = DEMO_DATA_FILE, vocab_size: int = 2048) -> Any:
    """A byte-level BPE tokenizer trained on the demo data, with R1-distill special tokens and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = [BOS, EOS, PAD, USER, ASSISTANT]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_demo_texts(data_file), trainer=trainer)
    # <think> and </think> are ordinary text tokens in R1-distill; keep them single tokens here too.
    tok.add_tokens(["<think>", "</think>"])
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B",
                                                       special_tokens=[(BOS, bos_id)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD,
                                   model_max_length=4096, padding_side="right")
    fast.chat_template = R1_CHAT_TEMPLATE
    return fast


def build_demo_model(target: Path, data_file: Path = DEMO_DATA_FILE) -> Path:
    """Write a tiny Llama (about 0.4 M parameters), taught the answer format from random weights
    (``demo_format``), and its tokenizer to ``target``."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer(data_file)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         rope_theta=500000.0, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         tie_word_embeddings=False)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    teach_answer_format(model, tokenizer, data_file)
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id,
                                               eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id)
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    (target / "README.md").write_text(
        "# MedCoT Studio demo model\n\nA tiny Llama-architecture model with a tokenizer trained on the bundled "
        "demo data, taught only the shape of an answer (reasoning in <think>, then an answer; 'The answer is X.' "
        "for multiple choice, X drawn at random). It exists so the app and its tests run offline on a CPU; it "
        "knows nothing about medicine and its outputs are meaningless. Not for any clinical use.\n",
        encoding="utf-8")
    return target


# ---- loading for training -----------------------------------------------------------------------------

@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    backend: str  # "unsloth" or "transformers"
    device: str


def cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def choose_backend(requested: str) -> str:
    """'auto' means Unsloth when CUDA and unsloth are present, else transformers + PEFT."""
    has_unsloth = importlib.util.find_spec("unsloth") is not None
    if requested == "unsloth":
        if not (cuda_available() and has_unsloth):
            raise ModelLoadError("backend 'unsloth' needs a CUDA GPU and the unsloth package "
                                 "(requirements-gpu.txt); choose 'auto' or 'transformers'")
        return "unsloth"
    if requested == "transformers":
        return "transformers"
    return "unsloth" if cuda_available() and has_unsloth else "transformers"


def installed_versions(names: list[str]) -> dict[str, str]:
    """Versions of the named packages that are installed (missing ones left out), for run and card records."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def device_description() -> str:
    import torch

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return f"{props.name} ({props.total_memory / 2**30:.0f} GiB)"
    return f"CPU ({os.cpu_count()} cores)"


def _explain_load_failure(model_id: str, exc: Exception) -> ModelLoadError:
    local = Path(model_id).exists()
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if local:
        return ModelLoadError(f"Could not load the model folder '{model_id}': {reason}")
    return ModelLoadError(
        f"Could not load '{model_id}' from the Hugging Face Hub: the Hub is unreachable from this machine or "
        f"the model is not available to you ({reason}). Without a network, choose the demo model "
        f"'{DEMO_MODEL_ID}', or put a downloaded model folder in the Base model field.")


def load_tokenizer(model_id: str) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(resolve_model(model_id))
    except (OSError, ValueError) as exc:
        raise _explain_load_failure(model_id, exc) from None


def torch_dtype(precision: str) -> Any:
    import torch

    if precision == "fp32" or not torch.cuda.is_available():
        return torch.float32
    if precision == "fp16":
        return torch.float16
    if precision == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def this_process_gpu() -> dict[str, int]:
    """Where this process keeps the whole model: under torchrun each process has its own GPU (data parallel), never
    a share of several (Unsloth's multi-GPU guide: one full copy per process)."""
    return {"": int(os.environ.get("LOCAL_RANK", "0"))}


def load_for_training(config: RunConfig) -> LoadedModel:
    """Base model + tokenizer with LoRA applied, on the backend the config and machine allow."""
    backend = choose_backend(config.model.backend)
    try:
        if backend == "unsloth":
            return _load_unsloth(config)
        return _load_transformers(config)
    except ModelLoadError:
        raise
    except OSError as exc:
        raise _explain_load_failure(config.model.base_model, exc) from None


def peft_kwargs(lora: LoraSettings) -> dict[str, Any]:
    """The LoRA settings as PEFT's ``LoraConfig`` names them; Unsloth's ``get_peft_model`` takes the same."""
    return {"r": lora.r, "lora_alpha": lora.alpha, "lora_dropout": lora.dropout, "bias": "none",
            "target_modules": lora.target_modules, "use_rslora": lora.use_rslora}


def _load_unsloth(config: RunConfig) -> LoadedModel:
    from unsloth import FastLanguageModel  # noqa: I001 - unsloth must be imported before transformers

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=resolve_model(config.model.base_model), max_seq_length=config.model.max_seq_length,
        dtype=None, load_in_4bit=config.model.load_in_4bit, device_map=this_process_gpu())
    gc = {"unsloth": "unsloth", "true": True, "false": False}[config.lora.gradient_checkpointing]
    model = FastLanguageModel.get_peft_model(model, **peft_kwargs(config.lora), use_gradient_checkpointing=gc,
                                             random_state=config.lora.random_state, loftq_config=None)
    return LoadedModel(model, tokenizer, "unsloth", device_description())


def _load_transformers(config: RunConfig) -> LoadedModel:
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    path = resolve_model(config.model.base_model)
    tokenizer = load_tokenizer(config.model.base_model)
    kwargs: dict[str, Any] = {"dtype": torch_dtype(config.training.precision)}
    quantised = config.model.load_in_4bit and torch.cuda.is_available()
    # Under FSDP (Accelerate's launcher sets this) the 4-bit weights are sharded: stored in the compute dtype so
    # FSDP can flatten them with the rest, and placed by FSDP rather than by a device_map (PEFT's FSDP-QLoRA guide).
    fsdp = os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true"
    if quantised:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=kwargs["dtype"], bnb_4bit_quant_storage=kwargs["dtype"] if fsdp else torch.uint8)
        if not fsdp:
            kwargs["device_map"] = this_process_gpu()
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    # No KV cache while training: with a cache, transformers skips the per-row mask that keeps packed rows
    # from attending to each other.
    model.config.use_cache = False
    checkpointing = config.lora.gradient_checkpointing != "false"
    if quantised:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing)
    elif checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    torch.manual_seed(config.lora.random_state)
    model = get_peft_model(model, LoraConfig(**peft_kwargs(config.lora), task_type="CAUSAL_LM"))
    return LoadedModel(model, tokenizer, "transformers", device_description())
