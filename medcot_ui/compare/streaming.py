"""The generation step: base and tuned answers from one batched ``generate``, each step's tokens streamed out.

Both panes come from ONE batched ``generate`` call: the same prompt twice, row 0 with the adapter scaled to 0
and row 1 with it on (``row_lora``), so two streams cost about one (decoding is memory-bound: the weights are
read once per step for both rows), with the static cache and compiled step of ``fast_decode``.
:func:`generate_pair` is the one place that decides how; the engine only reads its streamer.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

from medcot_ui.compare.errors import CompareError
from medcot_ui.inference.fast_decode import Decoder
from medcot_ui.compare.generation import GenerationSettings
from medcot_ui.inference.eos import eos_ids
from medcot_ui.inference.row_lora import RowLoRA

END = object()  # what the streamer's queue holds once generation has stopped


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
        self.queue.put(END)


def _stop_criteria(stop: threading.Event) -> Any:
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class StopOnEvent(StoppingCriteria):
        """Ends every row at the next step once Stop was pressed."""

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full((input_ids.shape[0],), stop.is_set(), dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([StopOnEvent()])


def generate_pair(model: Any, tokenizer: Any, prompt_ids: Any, lora: RowLoRA, decoder: Decoder,
                  settings: GenerationSettings, streamer: PaneStreamer, stop: threading.Event) -> None:
    """Generate the base answer (row 0, adapter off) and the tuned one (row 1, ``lora`` on) at once.

    Runs on the model thread. ``prompt_ids`` is one row (shape 1 x n) on the model's device; every decoding
    step's pair of tokens goes to ``streamer``, which ends when both rows have stopped.
    """
    import torch

    eos = eos_ids(model, tokenizer)
    tokens = prompt_ids.shape[1] + settings.max_new_tokens
    lora.set_rows([False, True])
    kwargs: dict[str, Any] = dict(
        input_ids=prompt_ids.repeat(2, 1), attention_mask=torch.ones_like(prompt_ids).repeat(2, 1),
        max_new_tokens=settings.max_new_tokens, streamer=streamer, stopping_criteria=_stop_criteria(stop),
        eos_token_id=eos, use_cache=True, pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None
        else eos[0], **settings.generate_kwargs(), **decoder.generate_kwargs(tokens))
    if not settings.greedy:
        torch.manual_seed(settings.seed)
    with torch.inference_mode():
        model.generate(**kwargs)
    decoder.after_generate(tokens)


def explain_generation_failure(exc: BaseException) -> CompareError:
    """What a failed generation tells the user (out of memory says what to change)."""
    text = str(exc)
    if "out of memory" in text.lower():
        return CompareError("The GPU ran out of memory while generating. Lower 'Max new tokens', or wait until "
                            "the training run has finished.")
    return CompareError(f"Generation failed: {type(exc).__name__}: {text.splitlines()[0] if text else ''}")
