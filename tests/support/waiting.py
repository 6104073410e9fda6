"""Waiting for a condition instead of sleeping for a guessed time.

A test that must order itself after something another thread or process does (the emulator has started a tool,
a stream has been reopened, a counter reached a value) polls a cheap condition until a deadline. The deadline
only bounds a failure; a passing test waits exactly as long as the event takes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

POLL_INTERVAL = 0.02


async def wait_until(condition: Callable[[], object], timeout: float = 15.0, what: str = "condition") -> None:
    """Return as soon as ``condition()`` is true; AssertionError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(POLL_INTERVAL)


def wait_until_sync(condition: Callable[[], object], timeout: float = 15.0, what: str = "condition") -> None:
    """:func:`wait_until` for tests and threads without an event loop."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(POLL_INTERVAL)
