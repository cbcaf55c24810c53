"""Fast decoding for Compare: a static KV cache reused across comparisons and a compiled, CUDA-graph decode step.

An eager decode step of an 8B model is host-bound (hundreds of small kernel launches per token). With a static
KV cache transformers' ``generate`` compiles the decode step (``torch.compile`` mode "reduce-overhead": CUDA
graphs). Compiling takes about a minute, so it is done once per loaded model and length bucket, on the model
thread before the first answer that needs it (``warm_up``), while the tab shows ``status``. The cache is kept per
length bucket (powers of two), so later comparisons reuse the same shapes and addresses and replay the captured
graphs.

Nothing falls back to the eager path silently: when compiling is not possible (CPU, 4-bit weights) or fails,
the status and the log say so and comparisons run eager.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Literal

from medcot_ui.inference.decode_attention import use_grouped_decode_attention

log = logging.getLogger(__name__)

MIN_BUCKET = 1024


@dataclass(frozen=True)
class DecodeStatus:
    """What the Compare tab says about decoding speed."""

    state: Literal["eager", "compiling", "ready", "failed"]
    message: str


def bucket(tokens: int) -> int:
    """The static cache length for ``tokens`` (prompt + new tokens): the next power of two, at least 1024."""
    size = MIN_BUCKET
    while size < tokens:
        size *= 2
    return size


class Decoder:
    """Static caches and the compile switch for one loaded model with ``rows`` batch rows.

    ``static``: use the static caches even when not compiled (tests check that path on the CPU); by default only
    a compiled decoder does, since an eager step over a static cache attends to every empty slot and is slower.
    A compiled decoder also switches the model to grouped decode attention (``decode_attention``; measured:
    0.94x against 0.78x of plain single-stream speed per pane with SDPA's); ``grouped_attention=False`` keeps
    SDPA (the bench's comparison). Eager paths keep SDPA, which launches fewer kernels.
    """

    def __init__(self, model: Any, rows: int = 2, compiled: bool = True, why_eager: str = "",
                 static: bool | None = None, grouped_attention: bool = True):
        self.model = model
        if compiled and grouped_attention:
            use_grouped_decode_attention(model)
        self.rows = rows
        self.compiled = compiled
        self.static = compiled if static is None else static
        self._caches: dict[int, Any] = {}
        self._warm: set[int] = set()
        self._lock = threading.Lock()
        if compiled:
            self._status = DecodeStatus("compiling", "Preparing fast decoding…")
        else:
            self._status = DecodeStatus("eager", f"eager decoding: {why_eager}")
            log.info("Compare decodes eagerly: %s", why_eager)

    @property
    def status(self) -> DecodeStatus:
        return self._status

    def is_warm(self, tokens: int) -> bool:
        return not self.compiled or bucket(tokens) in self._warm

    def generate_kwargs(self, tokens: int) -> dict[str, Any]:
        """Extra ``generate`` arguments for a call of ``tokens`` (prompt + max new tokens) in total."""
        import torch
        from transformers import CompileConfig, StaticCache

        if not (self.static or self.compiled):
            return {}  # a dynamic cache: transformers compiles nothing for it
        size = bucket(tokens)
        with self._lock:
            cache = self._caches.get(size)
            if cache is None:
                cache = self._caches[size] = StaticCache(config=self.model.config, max_cache_len=size)
            with torch.inference_mode():  # generate made the cache's tensors in inference mode
                cache.reset()  # same tensors (addresses) as the graphs captured on it, emptied
        kwargs: dict[str, Any] = {"past_key_values": cache}
        if self.compiled:
            kwargs["compile_config"] = CompileConfig(fullgraph=False, dynamic=False, mode="reduce-overhead")
        else:
            kwargs["disable_compile"] = True  # a static cache alone would make transformers compile on CUDA
        return kwargs

    def after_generate(self, tokens: int) -> None:
        """Record that the bucket of ``tokens`` was compiled; fail loudly if transformers did not compile."""
        if not self.compiled:
            return
        if not hasattr(self.model, "_compiled_call"):
            self._fail("Fast decoding is off: transformers did not compile the decode step for this model, so "
                       "answers stream on the slower eager path.")
            log.error("Compare: the decode step was not compiled; decoding eagerly")
            return
        self._warm.add(bucket(tokens))

    def _fail(self, message: str) -> None:
        self.compiled = self.static = False  # eager over a dynamic cache from now on
        self._status = DecodeStatus("failed", message)

    def warm_up(self, submit: Callable[[Callable[[], Any]], Future], token_id: int, tokens: int) -> Future:
        """Compile the decode step for the bucket of ``tokens`` on the model thread (``submit``), in the
        background; the returned future ends when it is ready (or failed, which the status then says)."""
        if not self.compiled:
            done: Future = Future()
            done.set_result(None)
            return done
        return submit(lambda: self._warm_up(token_id, tokens))

    def _warm_up(self, token_id: int, tokens: int) -> None:
        import torch

        self._status = DecodeStatus("compiling", "Compiling the fast decoding step (once per loaded model, about a "
                                                 "minute on a GPU)…")
        start = time.perf_counter()
        ids = torch.full((self.rows, 8), token_id, dtype=torch.long, device=self.model.device)
        try:
            with torch.inference_mode():
                # Three decode steps: CUDA-graph trees warm up, record, then replay.
                self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=4,
                                    min_new_tokens=4, do_sample=False, pad_token_id=token_id,
                                    **self.generate_kwargs(tokens))
        except Exception as exc:  # noqa: BLE001 - reported in the status and the log, then eager
            first = str(exc).splitlines()[0] if str(exc) else ""
            self._fail(f"Fast decoding failed to compile ({type(exc).__name__}: {first[:200]}); answers stream on "
                       "the slower eager path.")
            log.exception("Compare: compiling the decode step failed; decoding eagerly")
            return
        self.after_generate(tokens)
        if self.compiled:
            seconds = time.perf_counter() - start
            self._status = DecodeStatus("ready", f"Fast decoding ready (compiled in {seconds:.0f} s).")
            log.info("Compare: decode step compiled in %.1f s", seconds)
