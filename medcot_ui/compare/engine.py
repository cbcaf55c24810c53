"""The Compare engine: the base model and a run's tuned model answer one question side by side, streaming.

One copy of the base weights is loaded once per process. Each run's LoRA adapter is attached to those weights
with PEFT under the name ``run-<id>`` (a second run's adapter loads beside the first; the base is never
reloaded). Both panes come from ONE batched ``generate`` call: the same prompt twice, with PEFT's mixed-adapter
batch ``adapter_names=["__base__", "run-7"]``, so row 0 runs with every adapter off and row 1 with the run's
adapter on, and two streams cost about one (decoding is memory-bound: the weights are read once per step for
both rows). A streamer splits each decoding step into the two panes' token streams.

Why not Unsloth's inference mode here: its fused LoRA decode kernels (``unsloth.kernels.utils.
fast_linear_forward``) read the *active* adapter's matrices for every row of a batch and never see PEFT's
``adapter_names``, so a mixed batch would put the adapter on the base pane too. Correctness of the base pane
comes first; on CUDA the same job (no host-bound per-token launches) is done by a static KV cache with
CUDA-graph capture (``fast_decode``), measured in ``bench/compare_gpu.py``.

The GPU is shared with training: before a comparison starts on CUDA it checks the free memory against what the
comparison needs plus a safety margin, and while a training run is running it waits (saying why) rather than
risk running the training process out of memory. Generations run one at a time on the shared model (PEFT's
mixed-batch hooks are per call); a bounded number may wait their turn.
"""

from __future__ import annotations

import gc
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from medcot_ui.training.config import RunConfig
from medcot_ui.training.prompts import THINK_CLOSE, THINK_OPEN, Completion, PromptFormat, split_completion

BASE_ADAPTER = "__base__"  # PEFT's name for "no adapter" in a mixed-adapter batch
GiB = 2**30


class CompareError(RuntimeError):
    """A comparison that cannot run; the message says why and what to do."""


# ---- settings ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GenerationSettings:
    """How both panes generate. Greedy ignores temperature / top-p / seed and reproduces exactly."""

    max_new_tokens: int = 1200
    temperature: float = 0.6  # DeepSeek-R1's recommended sampling for its distills
    top_p: float = 0.95
    seed: int = 3407
    greedy: bool = False

    LIMITS = {"max_new_tokens": (1, 8192), "temperature": (0.01, 2.0), "top_p": (0.01, 1.0), "seed": (0, 2**31 - 1)}

    def validate(self) -> "GenerationSettings":
        """Raise CompareError naming the first setting outside its range."""
        for name, (lo, hi) in self.LIMITS.items():
            value = getattr(self, name)
            if value is None or not lo <= value <= hi:
                raise CompareError(f"{name}: {value} is outside the allowed range (allowed: >= {lo} and <= {hi})")
        return self

    @classmethod
    def from_values(cls, max_new_tokens: Any, temperature: Any, top_p: Any, seed: Any, greedy: Any
                    ) -> "GenerationSettings":
        """From form values (numbers may arrive as floats or None); validated."""
        try:
            settings = cls(int(max_new_tokens), float(temperature), float(top_p), int(seed), bool(greedy))
        except (TypeError, ValueError):
            raise CompareError("settings: max new tokens, temperature, top-p and seed must all be numbers") from None
        return settings.validate()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def generate_kwargs(self) -> dict[str, Any]:
        if self.greedy:
            return {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        return {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p, "top_k": None}


# ---- what the UI shows -------------------------------------------------------------------------------------

@dataclass
class Pane:
    """One pane's stream: token ids so far, the decoded text, and its timings (seconds from the start)."""

    label: str
    prompt_opened_think: bool = True
    token_ids: list[int] = field(default_factory=list)
    text: str = ""
    first_token_s: float | None = None
    think_tokens: int | None = None  # tokens up to and including </think>
    think_seconds: float | None = None  # seconds until </think>
    seconds: float | None = None  # when this pane's last token arrived
    finish_reason: Literal["eos", "length", "stopped"] | None = None
    token_times: list[float] = field(default_factory=list, repr=False)

    tokens: int = 0  # generated tokens, EOS excluded (kept as a count so a stored comparison can be shown)

    def add(self, token: int, seconds: float) -> None:
        self.token_ids.append(token)
        self.tokens += 1
        self.token_times.append(seconds)
        self.seconds = seconds
        if self.first_token_s is None:
            self.first_token_s = seconds

    def snapshot(self) -> "Pane":
        """A copy that later tokens do not change (each update the engine yields holds its own)."""
        return replace(self, token_ids=list(self.token_ids), token_times=list(self.token_times))

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    @property
    def completion(self) -> Completion:
        return split_completion(self.text, self.prompt_opened_think)

    @property
    def tokens_per_s(self) -> float | None:
        """Decoding rate after the first token (the prefill is time to first token)."""
        if self.first_token_s is None or self.seconds is None or self.tokens < 2:
            return None
        span = self.seconds - self.first_token_s
        return (self.tokens - 1) / span if span > 0 else None


@dataclass
class CompareUpdate:
    """One snapshot of a comparison; the last one of a stream has ``phase == "done"``."""

    phase: Literal["waiting", "loading", "generating", "done"]
    message: str
    run_id: int
    question: str
    settings: GenerationSettings
    base: Pane | None = None
    tuned: Pane | None = None
    prompt: str = ""
    base_model: str = ""
    device: str = ""
    stopped: bool = False
    created_at: float = field(default_factory=time.time)


def pane_messages(question: str, pane: Pane | None) -> list[dict[str, Any]]:
    """A pane as Gradio Chatbot messages: the question, a collapsible "Thinking" block, then the answer.

    The thinking block uses the Chatbot's own metadata support: ``status`` "pending" (open, spinner) while the
    model is still reasoning, "done" (closed) once the answer starts; ``duration`` shows the seconds spent
    thinking and ``log`` the token count. A completion that never closed ``</think>`` stays labelled unfinished
    and is never passed off as an answer.
    """
    messages: list[dict[str, Any]] = [{"role": "user", "content": question}]
    if pane is None:
        return messages
    done = pane.finished
    comp = pane.completion
    if comp.state == "none":  # the prompt did not open a reasoning block and the model wrote none
        if comp.answer or done:
            messages.append({"role": "assistant", "content": comp.answer or _empty_note(pane)})
        return messages
    thinking_open = comp.state == "unclosed" and not done
    seconds = pane.think_seconds if pane.think_seconds is not None else (pane.seconds or 0.0)
    think_tokens = pane.think_tokens if pane.think_tokens is not None else pane.tokens
    title = ("Thinking" if comp.state == "closed" or not done
             else "Thinking (unfinished: the reasoning never closed with </think>)")
    messages.append({"role": "assistant", "content": comp.reasoning or "…",
                     "metadata": {"title": title, "status": "pending" if thinking_open else "done",
                                  "duration": round(seconds, 1), "log": f"{think_tokens} tokens"}})
    if comp.state == "closed":
        answer = comp.answer
        if done:
            answer = (answer or "*(the model closed its reasoning but wrote no answer)*") + _finish_note(pane)
        if answer:
            messages.append({"role": "assistant", "content": answer})
    elif done:
        why = {"length": f"it reached the limit of {pane.tokens} new tokens",
               "stopped": "it was stopped", "eos": "the model ended without closing it"}[pane.finish_reason or "eos"]
        messages.append({"role": "assistant", "content": f"*No answer: the reasoning was never closed with "
                                                         f"`{THINK_CLOSE}` ({why}).*"})
    return messages


def _finish_note(pane: Pane) -> str:
    rate = pane.tokens_per_s
    stats = f"{pane.tokens} tokens in {pane.seconds or 0:.1f} s" + (f", {rate:.0f} tokens/s" if rate else "")
    reason = {"eos": "", "length": " · cut at the max new tokens limit", "stopped": " · stopped"}[
        pane.finish_reason or "eos"]
    return f"\n\n<sub>{stats}{reason}</sub>"


def _empty_note(pane: Pane) -> str:
    return "*(no output)*" + _finish_note(pane)


# ---- streaming one batched generate into two panes --------------------------------------------------------

_END = object()


class PaneStreamer:
    """A ``generate`` streamer that hands each decoding step's tokens (one per batch row) to a queue.

    transformers calls ``put`` first with the prompt ids (skipped here), then once per step with a tensor of
    shape (batch,), and ``end`` once when generation stops.
    """

    def __init__(self) -> None:
        self.queue: queue.Queue[Any] = queue.Queue()
        self._prompt_seen = False

    def put(self, value: Any) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self.queue.put((time.perf_counter(), value.reshape(-1).tolist()))

    def end(self) -> None:
        self.queue.put(_END)


def _stop_criteria(stop: threading.Event) -> Any:
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class StopOnEvent(StoppingCriteria):
        """Ends every row at the next step once Stop was pressed."""

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full((input_ids.shape[0],), stop.is_set(), dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([StopOnEvent()])


class ModelThread:
    """The one thread that runs every generate in the process.

    Compiled decoding records CUDA graphs, and PyTorch keeps their bookkeeping per thread (set up in the thread
    that first imports ``torch._inductor.cudagraph_trees``): a recompilation (another run's adapter, a longer
    answer) in a fresh thread fails. One long-lived thread keeps all of it in one place.
    """

    _shared: "ModelThread | None" = None
    _shared_lock = threading.Lock()

    def __init__(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="compare-model",
                                        initializer=_prepare_model_thread)

    @classmethod
    def shared(cls) -> "ModelThread":
        """The process's one model thread (graphs compiled by one engine stay valid for the next)."""
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def submit(self, fn: Callable[[], Any]) -> Any:
        return self._pool.submit(fn)

    def run(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the model thread and return its result (benchmarks time plain generate this way)."""
        return self.submit(fn).result()


def _prepare_model_thread() -> None:
    try:
        import torch

        if not torch.cuda.is_available():
            return
        from torch._inductor import cudagraph_trees

        if not hasattr(cudagraph_trees.local, "tree_manager_containers"):
            cudagraph_trees._initialize_tls(cudagraph_trees.local)  # this thread's CUDA-graph bookkeeping
    except (ImportError, AttributeError):
        pass  # an older or newer PyTorch: it sets the state up itself on first use


# ---- GPU sharing -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GpuMemory:
    free: int
    total: int


def cuda_memory() -> GpuMemory | None:
    """Free and total memory of GPU 0 as the driver sees it (all processes), or None without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return None
    free, total = torch.cuda.mem_get_info(0)
    return GpuMemory(free, total)


def running_training_runs() -> list[Any]:
    """Runs whose status is running (from the database: training lives in other processes)."""
    from medcot_ui.store import RunStatus, list_runs

    return [r for r in list_runs() if r.status == RunStatus.running.value]


def _on_gpu(run: Any) -> bool:
    # A run records its device once its model is loaded; before that, assume it will take the GPU.
    return not (run.device or "").startswith("CPU")


def estimate_bytes(model_config: Any, tokens: int, rows: int = 2, bytes_per_value: int = 2,
                   weights_4bit: bool = False, include_weights: bool = True) -> int:
    """GPU bytes a comparison needs: KV cache for ``rows`` x ``tokens``, workspace, and the weights if not loaded."""
    c = model_config
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    kv_heads = getattr(c, "num_key_value_heads", None) or c.num_attention_heads
    kv = 2 * c.num_hidden_layers * kv_heads * head_dim * bytes_per_value * rows * tokens
    # logits of the last position in fp32 and the activations of one step, with room for the allocator
    workspace = rows * c.vocab_size * 4 * 4 + 512 * 2**20
    need = kv + workspace
    if include_weights:
        h, inter = c.hidden_size, c.intermediate_size
        linear = c.num_hidden_layers * (2 * h * h + 2 * h * kv_heads * head_dim + 3 * h * inter)
        embed = c.vocab_size * h * (1 if getattr(c, "tie_word_embeddings", False) else 2)
        need += int(linear * (0.53 if weights_4bit else bytes_per_value)) + embed * bytes_per_value
    return need


def safety_margin(total: int) -> int:
    """Memory left untouched while training runs: its usage moves between steps (eval, checkpoints, long rows)."""
    return max(2 * GiB, total // 10)


# ---- the engine --------------------------------------------------------------------------------------------

@dataclass
class _Loaded:
    key: tuple[str, bool]
    model_id: str
    model: Any  # a PeftModel once an adapter is attached, else the plain base model
    tokenizer: Any
    device: str
    quantised: bool
    adapters: list[str] = field(default_factory=list)  # least recently used first
    compiled_for: str | None = None  # the adapter the compiled decode step was captured with


class CompareEngine:
    """Holds the one base model and its adapters; runs comparisons one at a time."""

    def __init__(self, max_waiting: int = 4, max_adapters: int = 4, wait_for_memory_s: float = 180.0,
                 memory_probe: Callable[[], GpuMemory | None] = cuda_memory,
                 training_probe: Callable[[], list[Any]] = running_training_runs,
                 fast_decode: bool | None = None, update_interval_s: float = 0.05, memory_poll_s: float = 2.0,
                 precision: Literal["auto", "4bit", "16bit"] = "auto"):
        self.max_waiting = max_waiting
        self.max_adapters = max_adapters
        self.wait_for_memory_s = wait_for_memory_s
        self.memory_probe = memory_probe
        self.training_probe = training_probe
        # None: a static KV cache with CUDA-graph capture on CUDA, eager elsewhere.
        self.fast_decode = fast_decode
        self.update_interval_s = update_interval_s
        self.memory_poll_s = memory_poll_s
        self.precision = precision  # of a QLoRA run's base: see _serve_4bit
        self._loaded: _Loaded | None = None
        self._lock = threading.Lock()  # one generation (and one load) at a time on the shared model
        self._waiting = 0
        self._waiting_lock = threading.Lock()
        self._stops: dict[str, threading.Event] = {}
        self.model_thread = ModelThread.shared()

    # -- stop --------------------------------------------------------------------------------------------
    def stop(self, session: str) -> bool:
        """Stop the comparison of ``session`` (both panes at once); False when none is running."""
        event = self._stops.get(session)
        if event is None:
            return False
        event.set()
        return True

    # -- loading -----------------------------------------------------------------------------------------
    @property
    def loaded_model_id(self) -> str | None:
        return self._loaded.model_id if self._loaded else None

    @property
    def loaded_adapters(self) -> list[str]:
        return list(self._loaded.adapters) if self._loaded else []

    def load_base(self, config: RunConfig) -> _Loaded:
        """Load (or reuse) the base model of ``config``: one copy per process, replaced when the base changes."""
        import torch
        from transformers import AutoModelForCausalLM

        from medcot_ui.training.models import ModelLoadError, device_description, load_tokenizer, resolve_model, torch_dtype

        cuda = torch.cuda.is_available()
        if (self._loaded is not None and self._loaded.model_id == config.model.base_model
                and (self.precision == "auto" or self._loaded.quantised == (self.precision == "4bit"))):
            return self._loaded
        quantised = cuda and self._serve_4bit(config)
        key = (config.model.base_model, quantised)
        self.unload()
        path = resolve_model(config.model.base_model)
        kwargs: dict[str, Any] = {"dtype": torch_dtype("auto")}
        if cuda:
            kwargs["device_map"] = {"": 0}
        if quantised:
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=kwargs["dtype"])
        try:
            model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
        except OSError as exc:
            raise ModelLoadError(f"Could not load the base model '{config.model.base_model}': "
                                 f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        model.eval()
        tokenizer = load_tokenizer(config.model.base_model)
        weights = "4-bit" if quantised else str(kwargs["dtype"]).removeprefix("torch.")
        self._loaded = _Loaded(key, config.model.base_model, model, tokenizer,
                               f"{device_description()}, {weights} weights", quantised)
        return self._loaded

    def _serve_4bit(self, config: RunConfig) -> bool:
        """Whether to hold the base in 4-bit. A run trained on 16-bit weights is compared on them.

        For a QLoRA run ("auto"): 16-bit weights when the GPU has room for them (and no training run needs the
        memory), because transformers compiles the decode step of a 16-bit model and not of a bitsandbytes 4-bit
        one, which decodes several times slower; 4-bit otherwise. The adapter is the same either way: serving a
        QLoRA adapter on 16-bit weights is what the recipe's merged 16-bit export does.
        """
        if not config.model.load_in_4bit or self.precision == "16bit":
            return False
        if self.precision == "4bit":
            return True
        memory = self.memory_probe()
        if memory is None or any(_on_gpu(r) for r in self.training_probe()):
            return True
        from transformers import AutoConfig

        from medcot_ui.training.models import resolve_model

        model_config = AutoConfig.from_pretrained(resolve_model(config.model.base_model)).get_text_config()
        need = estimate_bytes(model_config, 8192, weights_4bit=False)
        return memory.free < need + safety_margin(memory.total)

    def _attach_adapter(self, loaded: _Loaded, name: str, adapter_dir: Path) -> None:
        from peft import PeftModel

        if name in loaded.adapters:
            loaded.adapters.remove(name)
            loaded.adapters.append(name)
            return
        run_prefix = name.rsplit("-", 1)[0] + "-"
        stale = [a for a in loaded.adapters if a.startswith(run_prefix)]  # older saves of this run
        if not loaded.adapters:
            loaded.model = PeftModel.from_pretrained(loaded.model, str(adapter_dir), adapter_name=name,
                                                     is_trainable=False)
        else:
            loaded.model.load_adapter(str(adapter_dir), adapter_name=name, is_trainable=False)
        loaded.model.eval()
        loaded.adapters.append(name)
        for old in stale:
            loaded.model.delete_adapter(old)
            loaded.adapters.remove(old)
        while len(loaded.adapters) > self.max_adapters:
            loaded.model.delete_adapter(loaded.adapters.pop(0))

    def unload(self) -> None:
        """Free the base model and its adapters (e.g. before loading a different base)."""
        if self._loaded is None:
            return
        if self._loaded.compiled_for is not None:
            import torch

            self.model_thread.run(torch._dynamo.reset)  # compiled graphs hold the weights and CUDA-graph memory
        self._loaded = None
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass

    # -- comparing ---------------------------------------------------------------------------------------
    def compare(self, run_id: int, question: str, settings: GenerationSettings | None = None,
                session: str = "default") -> Iterator[CompareUpdate]:
        """Stream a comparison: waiting / loading updates, then both panes growing together, then ``done``."""
        settings = (settings or GenerationSettings()).validate()
        question = (question or "").strip()
        if not question:
            raise CompareError("question: empty; type a question or pick a held-out sample")
        run, config, adapter_dir = comparable_run(run_id)
        stop = threading.Event()
        previous = self._stops.get(session)
        if previous is not None:
            previous.set()  # a new comparison from the same page replaces the one still running
        self._stops[session] = stop

        def update(phase: str, message: str, base: Pane | None = None, tuned: Pane | None = None,
                   **kw: Any) -> CompareUpdate:
            return CompareUpdate(phase, message, run_id, question, settings,  # type: ignore[arg-type]
                                 base=base.snapshot() if base else None, tuned=tuned.snapshot() if tuned else None,
                                 base_model=config.model.base_model, **kw)

        try:
            with self._waiting_lock:
                if self._waiting >= self.max_waiting:
                    raise CompareError(f"{self._waiting} comparisons are already waiting for the model; "
                                       "try again in a minute")
                self._waiting += 1
            try:
                while not self._lock.acquire(timeout=0.5):
                    if stop.is_set():
                        yield update("done", "Stopped before it started.", stopped=True)
                        return
                    yield update("waiting", f"Waiting for the comparison ahead of this one "
                                            f"({self._waiting - 1} waiting before you)…")
            finally:
                with self._waiting_lock:
                    self._waiting -= 1
            try:
                yield from self._compare_locked(run_id, question, settings, config, adapter_dir, stop, update)
            finally:
                self._lock.release()
        finally:
            if self._stops.get(session) is stop:
                del self._stops[session]

    def _compare_locked(self, run_id: int, question: str, settings: GenerationSettings, config: RunConfig,
                        adapter_dir: Path, stop: threading.Event, update: Callable[..., CompareUpdate]
                        ) -> Iterator[CompareUpdate]:
        import torch

        for message in self._wait_for_memory(config, settings, stop):
            yield update("waiting", message)
        if stop.is_set():
            yield update("done", "Stopped before it started.", stopped=True)
            return
        if self._loaded is None or self._loaded.key[0] != config.model.base_model:
            yield update("loading", f"Loading the base model {config.model.base_model} (once; later comparisons "
                                    "reuse it)…")
        loaded = self.load_base(config)
        # The adapter file's mtime is part of the name: a resumed and retrained run gets its new weights.
        name = f"run-{run_id}-{(adapter_dir / 'adapter_model.safetensors').stat().st_mtime_ns}"
        if name not in loaded.adapters:
            yield update("loading", f"Attaching the LoRA adapter of run {run_id} to the loaded base…")
        self._attach_adapter(loaded, name, adapter_dir)

        tokenizer = loaded.tokenizer
        prompt = PromptFormat.from_data_settings(config.data).inference_prompt(question, tokenizer)
        opened = prompt.rstrip().endswith(THINK_OPEN)
        enc = tokenizer(prompt, return_tensors="pt")
        device = next(loaded.model.parameters()).device
        input_ids = enc["input_ids"].to(device).repeat(2, 1)
        attention = enc["attention_mask"].to(device).repeat(2, 1)
        base, tuned = Pane("Base model", opened), Pane(f"Tuned (run {run_id})", opened)
        eos = _eos_ids(loaded.model, tokenizer)
        streamer = PaneStreamer()
        failure: list[BaseException] = []
        gen_kwargs: dict[str, Any] = dict(
            input_ids=input_ids, attention_mask=attention, max_new_tokens=settings.max_new_tokens,
            streamer=streamer, stopping_criteria=_stop_criteria(stop), adapter_names=[BASE_ADAPTER, name],
            pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0],
            eos_token_id=eos, use_cache=True, **settings.generate_kwargs())
        working = "Generating both answers…"
        if self._use_fast_decode(loaded, device):
            # A static KV cache makes transformers compile the decode step with CUDA graphs (mode
            # "reduce-overhead"): an eager step is host-bound, hundreds of small launches per token.
            gen_kwargs["cache_implementation"] = "static"
            if loaded.compiled_for != name:
                working = ("Generating both answers… (the first comparison with this run compiles the decoding "
                           "step for fast streaming: expect a pause of up to a minute after the first token)")
            self._guard_compiled_graph(loaded, name)

        def generate() -> None:
            try:
                if not settings.greedy:
                    torch.manual_seed(settings.seed)
                with torch.inference_mode():
                    loaded.model.generate(**gen_kwargs)
            except BaseException as exc:  # noqa: BLE001 - reported to the consumer below
                failure.append(exc)
                streamer.end()

        start = time.perf_counter()
        job = self.model_thread.submit(generate)
        common = dict(prompt=prompt, device=loaded.device)
        yield update("generating", working, base=base, tuned=tuned, **common)
        last_yield = 0.0
        completed = False
        try:
            while True:
                try:
                    item = streamer.queue.get(timeout=0.25)
                except queue.Empty:
                    continue
                if item is _END:
                    break
                stamp, ids = item
                changed = False
                for pane, token in ((base, ids[0]), (tuned, ids[1])):
                    if pane.finished:
                        continue
                    changed = True
                    if token in eos:
                        pane.finish_reason, pane.seconds = "eos", stamp - start
                        continue
                    pane.add(token, stamp - start)
                now = time.perf_counter()
                if changed and now - last_yield >= self.update_interval_s:
                    _refresh_text(tokenizer, (base, tuned))
                    last_yield = now
                    yield update("generating", working, base=base, tuned=tuned, **common)
            completed = True
        finally:
            if not completed:  # the page went away mid-stream: end the generation too
                stop.set()
                job.result()
        job.result()
        if failure:
            raise _explain_generation_failure(failure[0])
        stopped = stop.is_set()
        for pane in (base, tuned):
            if not pane.finished:
                pane.finish_reason = "stopped" if stopped else "length"
        _refresh_text(tokenizer, (base, tuned))
        message = "Stopped: both answers end where they were." if stopped else "Done."
        yield update("done", message, base=base, tuned=tuned, stopped=stopped, **common)

    def _use_fast_decode(self, loaded: _Loaded, device: Any) -> bool:
        if self.fast_decode is not None:
            return self.fast_decode
        # transformers compiles only unquantised models (bitsandbytes 4-bit is not compileable there); a static
        # cache without compilation would only be slower.
        return device.type == "cuda" and not loaded.quantised

    def _guard_compiled_graph(self, loaded: _Loaded, adapter: str) -> None:
        """Recompile when the tuned adapter changes.

        PEFT passes the mixed batch's adapter names through forward hooks, and torch.compile does not guard on
        module hooks (``torch._dynamo.config.skip_nnmodule_hook_guards``): a graph captured for run 7 would
        silently keep applying run 7's adapter to run 8's pane.
        """
        if loaded.compiled_for not in (None, adapter):
            import torch

            self.model_thread.run(torch._dynamo.reset)  # on the thread that owns the CUDA graphs
        loaded.compiled_for = adapter

    def _wait_for_memory(self, config: RunConfig, settings: GenerationSettings, stop: threading.Event
                         ) -> Iterator[str]:
        """Yield 'why we wait' messages until the GPU has room for this comparison (or raise after a while)."""
        memory = self.memory_probe()
        if memory is None:
            return  # CPU: nothing to protect (a CPU training run only makes both slower)
        deadline = time.monotonic() + self.wait_for_memory_s
        need = self._estimate_need(config, settings)  # fixed while we wait: the loaded model cannot change meanwhile
        while not stop.is_set():
            training = [r for r in self.training_probe() if _on_gpu(r)]
            memory = self.memory_probe()
            if memory is None:
                return
            margin = safety_margin(memory.total) if training else 0
            if memory.free >= need + margin:
                return
            who = (f"training run {', '.join(str(r.id) for r in training)} is using the GPU"
                   if training else "the GPU is busy")
            reason = (f"{who}: {memory.free / GiB:.1f} GiB free of {memory.total / GiB:.0f} GiB, and this comparison "
                      f"needs about {need / GiB:.1f} GiB" +
                      (f" plus {margin / GiB:.0f} GiB left for the training run so it never runs out of memory"
                       if training else ""))
            if time.monotonic() >= deadline:
                raise CompareError(f"Not started: {reason}. Try again when the training run has finished, lower "
                                   "'Max new tokens', or train in 4-bit.")
            yield f"Waiting: {reason}. It starts by itself as soon as memory allows (Stop cancels)."
            stop.wait(self.memory_poll_s)

    def _estimate_need(self, config: RunConfig, settings: GenerationSettings) -> int:
        from transformers import AutoConfig

        from medcot_ui.training.models import resolve_model

        loaded = self._loaded is not None and self._loaded.key[0] == config.model.base_model
        model_config = (self._loaded.model.config if loaded else  # type: ignore[union-attr]
                        AutoConfig.from_pretrained(resolve_model(config.model.base_model)))
        model_config = getattr(model_config, "get_text_config", lambda: model_config)()
        tokens = settings.max_new_tokens + config.model.max_seq_length // 2  # prompt: well under a training row
        return estimate_bytes(model_config, tokens, weights_4bit=config.model.load_in_4bit,
                              include_weights=not loaded)


def _refresh_text(tokenizer: Any, panes: tuple[Pane, ...]) -> None:
    for pane in panes:
        pane.text = tokenizer.decode(pane.token_ids, skip_special_tokens=True)
        if pane.think_tokens is None and THINK_CLOSE in pane.text:
            # Seen at this refresh; find the exact token so the count does not depend on refresh timing.
            pane.think_tokens = _tokens_until(tokenizer, pane.token_ids, THINK_CLOSE)
            pane.think_seconds = pane.token_times[pane.think_tokens - 1]


def _tokens_until(tokenizer: Any, ids: list[int], marker: str) -> int:
    lo, hi = 1, len(ids)
    while lo < hi:  # the shortest prefix whose text holds the marker
        mid = (lo + hi) // 2
        if marker in tokenizer.decode(ids[:mid], skip_special_tokens=True):
            hi = mid
        else:
            lo = mid + 1
    return lo


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = configured if isinstance(configured, list) else [configured] if configured is not None else []
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def _explain_generation_failure(exc: BaseException) -> CompareError:
    text = str(exc)
    if "out of memory" in text.lower():
        return CompareError("The GPU ran out of memory while generating. Lower 'Max new tokens', or wait until "
                            "the training run has finished.")
    return CompareError(f"Generation failed: {type(exc).__name__}: {text.splitlines()[0] if text else ''}")


# ---- which runs can be compared, and their held-out questions ---------------------------------------------

def comparable_run(run_id: int) -> tuple[Any, RunConfig, Path]:
    """The run, its config and its adapter folder; CompareError when it has no adapter to compare."""
    from medcot_ui.store import RunStatus, get_run

    run = get_run(int(run_id))
    if run is None or run.deleted:
        raise CompareError(f"run {run_id} does not exist" + (" (it was deleted)" if run is not None else ""))
    adapter = run.adapter_dir
    if run.status not in (RunStatus.succeeded.value, RunStatus.cancelled.value):
        raise CompareError(f"run {run_id} is {run.status}: only a finished run (or a cancelled one that saved its "
                           "adapter) can be compared")
    if not run.has_adapter:
        raise CompareError(f"run {run_id} saved no adapter (expected {adapter}); it cannot be compared")
    return run, RunConfig.from_json(run.config_json), adapter


def comparable_runs() -> list[Any]:
    """Finished runs with a saved adapter, newest first."""
    from medcot_ui.store import RunStatus, list_runs

    return [r for r in list_runs() if r.status in (RunStatus.succeeded.value, RunStatus.cancelled.value)
            and r.has_adapter]


_HELD_OUT: dict[tuple[int, str], list[Any]] = {}


def held_out_rows(run_id: int) -> list[Any]:
    """The run's held-out rows (question, reasoning, answer): the same split its training made (same seed)."""
    from medcot_ui.data.load import prepare
    from medcot_ui.training.models import load_tokenizer

    run, config, _ = comparable_run(run_id)
    key = (run.id, config.to_json())
    if key not in _HELD_OUT:
        _HELD_OUT[key] = list(prepare(config.data, load_tokenizer(config.model.base_model)).eval_rows)
    return _HELD_OUT[key]
