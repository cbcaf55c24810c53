"""The Compare engine: the base model and a run's tuned model answer one question side by side, streaming.

One copy of the base weights is loaded once per process. Each run's LoRA adapter is kept under the name
``run-<id>-<mtime>`` and put on those weights with a scale per batch row (``row_lora``; the base is never
reloaded). Both panes come from one generation step (``streaming.generate_pair``): base row and adapter row in
one batch, so two streams cost about one; this module turns the step's tokens into the two panes' updates.

On CUDA the decode step is compiled with CUDA graphs over a static KV cache (``fast_decode``), once per loaded
model and answer-length bucket; the compile runs on the model thread before the first answer while the tab says
so, and a model that is not compiled says why. Measured in ``bench/compare_gpu.py``.

The GPU is shared with training: before a comparison starts on CUDA it waits (saying why) until the GPU has room
for it (``gpu_budget``). Generations run one at a time on the shared model (the row scales and the KV caches are
shared); a bounded number may wait their turn.
"""

from __future__ import annotations

import gc
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from medcot_ui.compare.comparable import comparable_run
from medcot_ui.compare.streaming import END, PaneStreamer, explain_generation_failure, generate_pair
from medcot_ui.inference.eos import eos_ids
from medcot_ui.compare.errors import CompareError
from medcot_ui.inference.fast_decode import DecodeStatus, Decoder
from medcot_ui.compare.generation import GenerationSettings
from medcot_ui.compare.gpu_budget import GpuBudget, GpuMemory, comparison_need, cuda_memory, running_training_runs
from medcot_ui.inference.loading import LoadedModel, adapter_name, attach_adapter, load_model
from medcot_ui.inference.model_thread import ModelThread
from medcot_ui.compare.panes import CompareUpdate, Pane, refresh_text
from medcot_ui.training.config import RunConfig
from medcot_ui.training.prompts import THINK_OPEN, PromptFormat


@dataclass
class _Request:
    """One comparison asked for; every update it yields carries these."""

    run_id: int
    question: str
    settings: GenerationSettings
    config: RunConfig
    adapter_dir: Path
    stop: threading.Event

    def update(self, phase: str, message: str, base: Pane | None = None, tuned: Pane | None = None,
               **kw: Any) -> CompareUpdate:
        return CompareUpdate(phase, message, self.run_id, self.question, self.settings,  # type: ignore[arg-type]
                             base=base.snapshot() if base else None, tuned=tuned.snapshot() if tuned else None,
                             base_model=self.config.model.base_model, **kw)

    def stopped_early(self, why: str = "") -> CompareUpdate:
        """The last update of a comparison stopped before any answer was generated."""
        return self.update("done", "Stopped before it started." + (f" {why}" if why else ""), stopped=True)


class CompareEngine:
    """Holds the one base model and its adapters; runs comparisons one at a time."""

    def __init__(self, max_waiting: int = 4, max_adapters: int = 4, wait_for_memory_s: float = 180.0,
                 memory_probe: Callable[[], GpuMemory | None] = cuda_memory,
                 training_probe: Callable[[], list[Any]] = running_training_runs,
                 fast_decode: bool | None = None, update_interval_s: float = 0.05, memory_poll_s: float = 2.0,
                 precision: Literal["auto", "4bit", "16bit"] = "auto"):
        self.max_waiting = max_waiting
        self.max_adapters = max_adapters
        self.gpu = GpuBudget(memory_probe, training_probe, wait_for_memory_s, memory_poll_s)
        # None: the decode step compiled with CUDA graphs on CUDA (unquantised weights), eager elsewhere.
        self.fast_decode = fast_decode
        self.update_interval_s = update_interval_s
        self.precision = precision  # of a QLoRA run's base: see _serve_4bit
        self._loaded: LoadedModel | None = None
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

    # -- the base model and its adapters -----------------------------------------------------------------
    @property
    def loaded_model_id(self) -> str | None:
        return self._loaded.model_id if self._loaded else None

    @property
    def loaded_adapters(self) -> list[str]:
        return list(self._loaded.adapters) if self._loaded else []

    def load_base(self, config: RunConfig) -> LoadedModel:
        """Load (or reuse) the base model of ``config``: one copy per process, replaced when the base changes."""
        import torch

        if (self._loaded is not None and self._loaded.model_id == config.model.base_model
                and (self.precision == "auto" or self._loaded.quantised == (self.precision == "4bit"))):
            return self._loaded
        quantised = torch.cuda.is_available() and self._serve_4bit(config)
        self.unload()
        self._loaded = load_model(config.model.base_model, quantised)
        self._loaded.decoder = self._new_decoder(self._loaded)
        return self._loaded

    def _new_decoder(self, loaded: LoadedModel) -> Decoder:
        cuda = next(loaded.model.parameters()).device.type == "cuda"
        why = ("turned off" if self.fast_decode is False else "no CUDA GPU" if not cuda else
               "4-bit weights: transformers does not compile bitsandbytes models" if loaded.quantised else "")
        compiled = self.fast_decode if self.fast_decode is not None else not why
        return Decoder(loaded.model, rows=2, compiled=compiled, why_eager=why or "turned off")

    @property
    def decode_status(self) -> DecodeStatus | None:
        """How the loaded model decodes (compiling / ready / eager and why), for the Compare tab."""
        return self._loaded.decoder.status if self._loaded and self._loaded.decoder else None

    def _serve_4bit(self, config: RunConfig) -> bool:
        """Whether to hold the base in 4-bit. A run trained on 16-bit weights is compared on them.

        For a QLoRA run ("auto"): 16-bit weights when the GPU has room for them (and no training run needs the
        memory), because transformers compiles the decode step of a 16-bit model and not of a bitsandbytes 4-bit
        one, which decodes several times slower; 4-bit otherwise. The adapter is the same either way: serving a
        QLoRA adapter on 16-bit weights is what the recipe's merged 16-bit export does.
        """
        if not config.model.load_in_4bit or self.precision == "16bit":
            return False
        return self.precision == "4bit" or not self.gpu.room_for_16bit(config.model.base_model)

    def unload(self) -> None:
        """Free the base model and its adapters (e.g. before loading a different base)."""
        if self._loaded is None:
            return
        if self._loaded.decoder is not None and self._loaded.decoder.status.state != "eager":
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
        question = (question or "").strip()
        if not question:
            raise CompareError("question: empty; type a question or pick a held-out sample")
        _, config, adapter_dir = comparable_run(run_id)
        request = _Request(run_id, question, settings or GenerationSettings(), config, adapter_dir,
                           threading.Event())
        previous = self._stops.get(session)
        if previous is not None:
            previous.set()  # a new comparison from the same page replaces the one still running
        self._stops[session] = request.stop
        try:
            if (yield from self._take_turn(request)):
                try:
                    adapter = yield from self._prepare(request)
                    if adapter is not None:
                        yield from self._stream(request, adapter)
                finally:
                    self._lock.release()
        finally:
            if self._stops.get(session) is request.stop:
                del self._stops[session]

    def _take_turn(self, request: _Request) -> Generator[CompareUpdate, None, bool]:
        """Wait for the model (saying how many are ahead); returns True holding it, False when stopped first."""
        with self._waiting_lock:
            if self._waiting >= self.max_waiting:
                raise CompareError(f"{self._waiting} comparisons are already waiting for the model; "
                                   "try again in a minute")
            self._waiting += 1
        try:
            while not self._lock.acquire(timeout=0.5):
                if request.stop.is_set():
                    yield request.stopped_early()
                    return False
                yield request.update("waiting", f"Waiting for the comparison ahead of this one "
                                                f"({self._waiting - 1} waiting before you)…")
        finally:
            with self._waiting_lock:
                self._waiting -= 1
        return True

    def _prepare(self, request: _Request) -> Generator[CompareUpdate, None, str | None]:
        """Wait for GPU room, load the base, attach the run's adapter (each step said); returns the adapter's
        name, or None when stopped first."""
        config = request.config
        loaded = self._loaded if self.loaded_model_id == config.model.base_model else None

        def need() -> int:
            return comparison_need(config, request.settings, loaded.model.config if loaded else None)

        for message in self.gpu.wait_for_room(need, request.stop):
            yield request.update("waiting", message)
        if request.stop.is_set():
            yield request.stopped_early()
            return None
        if loaded is None:
            yield request.update("loading", f"Loading the base model {config.model.base_model} (once; later "
                                            "comparisons reuse it)…")
        loaded = self.load_base(config)
        name = adapter_name(request.run_id, request.adapter_dir)
        if name not in loaded.adapters:
            yield request.update("loading", f"Attaching the LoRA adapter of run {request.run_id} to the loaded "
                                            "base…")
        if attach_adapter(loaded, name, request.adapter_dir, self.max_adapters):
            import torch

            # New layers (another rank or modules): graphs captured for the old ones must go.
            self.model_thread.run(torch._dynamo.reset)
            loaded.decoder = self._new_decoder(loaded)
        return name

    def _stream(self, request: _Request, name: str) -> Iterator[CompareUpdate]:
        """Run the generation step on the model thread and turn its tokens into both panes' updates."""
        loaded = self._loaded
        assert loaded is not None  # _prepare loaded it
        tokenizer = loaded.tokenizer
        prompt = PromptFormat.from_data_settings(request.config.data).inference_prompt(request.question, tokenizer)
        opened = prompt.rstrip().endswith(THINK_OPEN)
        base, tuned = Pane("Base model", opened), Pane(f"Tuned (run {request.run_id})", opened)
        prompt_ids = tokenizer(prompt, return_tensors="pt")["input_ids"].to(next(loaded.model.parameters()).device)
        decoder, lora = loaded.decoder, loaded.lora
        assert decoder is not None and lora is not None  # load_base and _prepare set them
        tokens = prompt_ids.shape[1] + request.settings.max_new_tokens
        compiling = yield from self._warm_up(request, decoder, prompt_ids, tokens)
        if request.stop.is_set():  # pressed while the model loaded or the decode step was being prepared
            yield request.stopped_early("The fast decoding step goes on compiling in the background, for the next "
                                        "question." if compiling else "")
            return
        working = "Generating both answers…" + ("" if decoder.status.state == "ready" else
                                                f" ({decoder.status.message})")
        streamer, failure = PaneStreamer(), []

        def generate() -> None:
            try:
                generate_pair(loaded.model, tokenizer, prompt_ids, lora, decoder, request.settings, streamer,
                              request.stop)
            except BaseException as exc:  # noqa: BLE001 - reported to the consumer below
                failure.append(exc)
                streamer.end()

        start = time.perf_counter()
        job = self.model_thread.submit(generate)
        common = dict(prompt=prompt, device=loaded.device)
        yield request.update("generating", working, base=base, tuned=tuned, **common)
        completed = False
        try:
            for _ in self._fill_panes(streamer, start, (base, tuned), eos_ids(loaded.model, tokenizer)):
                refresh_text(tokenizer, (base, tuned))
                yield request.update("generating", working, base=base, tuned=tuned, **common)
            completed = True
        finally:
            if not completed:  # the page went away mid-stream: end the generation too
                request.stop.set()
            job.result()
        if failure:
            raise explain_generation_failure(failure[0])
        stopped = request.stop.is_set()
        for pane in (base, tuned):
            if not pane.finished:
                pane.finish_reason = "stopped" if stopped else "length"
        refresh_text(tokenizer, (base, tuned))
        message = "Stopped: both answers end where they were." if stopped else "Done."
        yield request.update("done", message, base=base, tuned=tuned, stopped=stopped, **common)

    def _fill_panes(self, streamer: PaneStreamer, start: float, panes: tuple[Pane, Pane], eos: list[int]
                    ) -> Iterator[None]:
        """Add each step's tokens to the panes until the step ends; yields when an update is due."""
        last_yield = 0.0
        while True:
            try:
                item = streamer.queue.get(timeout=0.25)
            except queue.Empty:
                continue
            if item is END:
                return
            stamp, ids = item
            changed = False
            for pane, token in zip(panes, ids):
                if pane.finished:
                    continue
                changed = True
                if token in eos:
                    pane.finish_reason, pane.seconds = "eos", stamp - start
                    continue
                pane.add(token, stamp - start)
            now = time.perf_counter()
            if changed and now - last_yield >= self.update_interval_s:
                last_yield = now
                yield

    def _warm_up(self, request: _Request, decoder: Decoder, prompt_ids: Any, tokens: int
                 ) -> Generator[CompareUpdate, None, bool]:
        """Compile the decode step for this answer length on the model thread, saying so while it runs; returns
        True when Stop cut the wait short (a compile cannot be interrupted: it goes on, for the next question)."""
        if decoder.is_warm(tokens):
            return False
        job = decoder.warm_up(self.model_thread.submit, int(prompt_ids[0, -1]), tokens)
        start = time.perf_counter()
        while not job.done():
            if request.stop.is_set():
                return True
            yield request.update("loading", f"{decoder.status.message} {time.perf_counter() - start:.0f} s so far.")
            time.sleep(0.5)
        job.result()
        return False
