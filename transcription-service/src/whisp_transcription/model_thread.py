"""The worker's model thread: audio decoding, model loads and every transcription.

`asyncio.to_thread` hands each call to whichever default-pool thread is free; every thread
that allocates large numpy/CTranslate2 buffers gets its own glibc malloc arena, and those
arenas keep their peak. Measured on a worker: 354-404 MB RSS with thread hopping against a
350 MB target. A fixed pool (one thread per clip transcribed at once) keeps the heap in
as many arenas as there are clips in flight, while the event loop stays free for
heartbeats.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class ModelThread:
    def __init__(self, threads: int = 1) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="whisp-model")

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, partial(fn, *args, **kwargs))

    def shutdown(self) -> None:
        """Drop queued calls; one running finishes on its own (the event loop is not held
        up: the bus has already left its entry pending for a peer)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
