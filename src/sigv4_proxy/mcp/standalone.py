"""``--sse``: keep the standalone GET event stream open for as long as the session lives.

Servers send messages that belong to no request (``notifications/tools/list_changed``, a ``roots/list``
outside any call) on this stream. It breaks when servers restart, load balancers cut idle connections or
laptops sleep; servers that poll close it on purpose after setting a ``retry`` time. So it is reopened:

* after the server closed it: after the server's ``retry`` time (1 s when it set none), with the
  ``Last-Event-ID`` of the last event seen, so a server that keeps events can replay what was missed;
* after a broken connection or a transient refusal (429, 5xx, 424): the same, backing off exponentially
  (up to a minute, with jitter) while attempts keep failing without delivering anything;
* after an expired token or a clock-skew refusal: once the credentials are refreshed / the clock corrected;
* after the proxy closed it because a message outgrew ``--max-message-bytes``: with a warning naming the flag,
  backing off as for failures even when the stream had delivered (a server may replay the same message).

It stops, quietly, on 405 (the server has no such stream), on 404 (the server forgot the session: the
bridge re-opens the stream once it has re-established the session), and with a warning on any other
refusal, which says what is wrong and how to fix it.

:class:`StandaloneStream` is given its collaborators (the transport, the session state, the stop event, the
signing context and the bridge's ``recover_signing``) rather than the bridge itself, so this module does not
depend on :mod:`~sigv4_proxy.mcp.bridge` and can be driven on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import random as _random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from sigv4_proxy.logs import get_logger
from sigv4_proxy.mcp.transport import RESPONSE_TOO_LARGE

if TYPE_CHECKING:
    from sigv4_proxy.diagnose import Diagnosis, SigningContext
    from sigv4_proxy.mcp.session import SessionState
    from sigv4_proxy.mcp.transport import PostResult, Transport

__all__ = ["StandaloneStream"]

log = get_logger("mcp")

DEFAULT_RECONNECT_SECONDS = 1.0  # the MCP SDKs' default when the server sets no retry time
MAX_RECONNECT_SECONDS = 60.0


class Explained(Protocol):
    """A failure as the client would read it (the bridge's ``Failure``)."""

    message: str


class RecoverSigning(Protocol):
    """Refresh the credentials or correct the clock before a re-signed retry (``Bridge.recover_signing``):
    None when it worked, else why not."""

    async def __call__(self, diagnosis: Diagnosis, result: PostResult, /) -> Explained | None: ...


class StandaloneStream:
    """The task that holds the standalone stream of one proxy run."""

    def __init__(
        self,
        transport: Transport,
        session: SessionState,
        *,
        stopping: asyncio.Event,
        signing_context: Callable[[], SigningContext],
        recover_signing: RecoverSigning,
        max_message_bytes: int,
        random: Callable[[], float] = _random.random,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """`stopping` is set when the proxy shuts down; `random` is the jitter source and `sleep` the wait before
        a reconnection (tests make both deterministic)."""
        self.transport = transport
        self.session = session
        self.stopping = stopping
        self.signing_context = signing_context
        self.recover_signing = recover_signing
        self.max_message_bytes = max_message_bytes
        self._random = random
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if not self.running:
            self._task = asyncio.create_task(self._run(), name="standalone-stream")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def restart(self) -> None:
        await self.stop()
        self.start()

    async def _run(self) -> None:
        transport = self.transport
        if not transport.standalone_stream:
            log.debug(
                "the %s transport has no standalone event stream: server messages use its one stream", transport.name
            )
            return
        failures = 0
        while not self.stopping.is_set():
            if not self.session.session_id:
                log.debug("no session id: the standalone event stream is not opened")
                return
            result = await transport.listen()
            verdict = await self._judge(result)
            if verdict is None:
                return
            if result.delivered and result.problem_kind != RESPONSE_TOO_LARGE:
                failures = 0
            failures += 1
            delay = self._delay(failures, transport.retry_ms)
            resume = " with Last-Event-ID" if transport.last_event_id else ""
            level = log.warning if failures > 3 else log.info
            level("standalone event stream %s; reconnecting in %.1f s%s", verdict, delay, resume)
            await self._sleep(delay)

    def _delay(self, failures: int, retry_ms: int | None) -> float:
        base = retry_ms / 1000 if retry_ms is not None else DEFAULT_RECONNECT_SECONDS
        if failures <= 1:
            return base
        capped = min(MAX_RECONNECT_SECONDS, max(base, DEFAULT_RECONNECT_SECONDS) * 2 ** (failures - 1))
        return capped / 2 + self._random() * capped / 2  # equal jitter: proxies must not reconnect in step

    async def _judge(self, result: PostResult) -> str | None:
        """Why the stream ended, as words for the log; None when it must not be reopened."""
        from sigv4_proxy import diagnose

        if result.status == 405:
            log.debug("the server offers no standalone event stream (HTTP 405)")
            return None
        if result.session_lost:
            log.info("standalone event stream: the server forgot the session; it reopens with the next session")
            return None
        context = self.signing_context()
        if result.status is not None and result.status >= 400:
            diagnosis = diagnose.diagnose_response(result.status, result.headers, result.body, context=context)
            if diagnosis.recovery is not None:
                failure = await self.recover_signing(diagnosis, result)
                if failure is None:
                    return f"refused ({diagnosis.kind.replace('_', ' ')}, now corrected)"
                log.warning("standalone event stream refused: %s", failure.message)
                return None
            if not diagnosis.retryable:
                log.warning("standalone event stream refused: %s", diagnosis.message())
                return None
            return f"refused: {_first_sentence(diagnosis.message())}"
        if result.error is not None:
            diagnosis = diagnose.diagnose_exception(result.error, context=context)
            return f"broke off: {_first_sentence(diagnosis.message())}"
        if result.problem_kind == RESPONSE_TOO_LARGE:
            limit = self.max_message_bytes
            log.warning(
                "standalone event stream: a message larger than %d bytes (--max-message-bytes) was not delivered; "
                "raise --max-message-bytes if the server's messages are legitimately this large",
                limit,
            )
            return "closed by the proxy (a message over --max-message-bytes)"
        if result.problem:
            log.warning("standalone event stream: %s", result.problem)
            return None
        return "closed by the server"


def _first_sentence(message: str) -> str:
    return message.split(". Diagnosis: ", 1)[0]
