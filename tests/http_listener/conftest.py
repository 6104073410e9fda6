"""Fixtures: a listener per test in front of the shared `emulate mcp` endpoint (tests/conftest.py's ``emulator``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import pytest

from sigv4_proxy.clock import SkewedClock
from sigv4_proxy.config import ProxyConfig
from sigv4_proxy.credentials import CredentialSource, StaticCredentialProvider
from sigv4_proxy.emulate import McpEmulator
from sigv4_proxy.http_listener import HttpListener, ListenerOptions
from sigv4_proxy.retry import RetryPolicy

# Small backoff so retry tests stay fast; Retry-After values are recorded, not slept (see `delays`).
FAST_POLICY = RetryPolicy(
    retries=2, base_delay=0.01, max_delay=0.05, cold_start_base_delay=0.02, cold_start_max_delay=0.1
)


def proxy_config(emulator: McpEmulator, **changes: Any) -> ProxyConfig:
    base = ProxyConfig(target_url=emulator.url, service=emulator.service, region=emulator.region)
    return replace(base, **changes)


class Delays:
    """Records the waits the retry policy asked for, and yields to the loop instead of sleeping."""

    def __init__(self) -> None:
        self.values: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.values.append(round(seconds, 3))
        await asyncio.sleep(0)


@pytest.fixture
def delays() -> Delays:
    return Delays()


StartListener = Callable[..., Awaitable[HttpListener]]


@asynccontextmanager
async def running_listener(
    config: ProxyConfig,
    provider: CredentialSource,
    *,
    policy: RetryPolicy = FAST_POLICY,
    clock: SkewedClock | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    **options: Any,
) -> AsyncIterator[HttpListener]:
    listener = HttpListener(
        config,
        provider,
        ListenerOptions(host="127.0.0.1", port=0, policy=policy, **options),
        clock=clock,
        random_source=lambda: 0.5,
        sleep=sleep,
    )
    await listener.start()
    try:
        yield listener
    finally:
        await listener.aclose(grace=1)


@pytest.fixture
async def listener(emulator: McpEmulator, delays: Delays) -> AsyncIterator[HttpListener]:
    """A listener in front of the emulator, signing with the emulator's credentials."""
    provider = StaticCredentialProvider(emulator.credentials)
    async with running_listener(proxy_config(emulator), provider, sleep=delays) as running:
        yield running


class LogLines(logging.Handler):
    """Every line the listener (and asyncio) logs, formatted with tracebacks, whatever the logging setup.

    `setup_logging` turns propagation off on the ``sigv4_proxy`` logger, so pytest's caplog may see nothing:
    this handler sits on the loggers themselves.
    """

    LOGGERS = ("sigv4_proxy", "asyncio")

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.extend(self.format(record).splitlines())

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
def log_lines() -> Iterator[LogLines]:
    handler = LogLines()
    loggers = [logging.getLogger(name) for name in LogLines.LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)
