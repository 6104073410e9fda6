"""The event loop of the PostgreSQL doors (`emulate dsql`, `pg`)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

EVENT_LOOP_ENV = "SIGV4_PROXY_EVENT_LOOP"
_T = TypeVar("_T")


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """uvloop when installed (its socket and TLS paths are compiled: bench/dsql.py and bench/pg.py measure the
    difference), else asyncio's own loop; ``SIGV4_PROXY_EVENT_LOOP=asyncio`` forces asyncio's."""
    if os.environ.get(EVENT_LOOP_ENV, "auto") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            uvloop.run(main)
            return
    asyncio.run(main)


class LoopThread:
    """An event loop on a thread of its own, for a server used from synchronous code (the library, the tests,
    the CLI's signal handling): ``setup`` runs first on the loop (start serving), ``teardown`` when stopped."""

    def __init__(
        self, name: str, setup: Callable[[], Awaitable[None]], teardown: Callable[[], Awaitable[None]]
    ) -> None:
        self._setup = setup
        self._teardown = teardown
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self, timeout: float) -> None:
        """Run the loop and ``setup``; raises RuntimeError when that fails or takes longer than ``timeout``."""
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"did not start within {timeout:g} seconds")
        if self._error is not None:
            raise RuntimeError(f"failed to start: {self._error!r}") from self._error

    def submit(self, coroutine: Coroutine[Any, Any, _T]) -> concurrent.futures.Future[_T]:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def call(self, coroutine: Coroutine[Any, Any, _T], timeout: float | None = None) -> _T:
        return self.submit(coroutine).result(timeout)

    def call_soon(self, callback: Callable[[], object]) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(callback)

    def stop(self, timeout: float = 15.0) -> None:
        """Run ``teardown`` and end the loop (idempotent)."""
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            run_loop(self._main())
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        await self._setup()
        self._ready.set()
        await self._stop.wait()
        await self._teardown()
