"""The one thread that runs every ``generate`` of the process (CUDA-graph bookkeeping is per thread)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


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
