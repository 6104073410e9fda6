"""The bridge: stdin lines -> signed POSTs -> stdout lines, concurrently, with exactly one answer per request.

Flow for each stdin line::

    StdinReader -> classify_line -> dispatch -> send (one task per message) -> transport.post
                                                          |                          |
                                                          v                          v
                                           error for the client  <-  deliver (every upstream message)
                                                          \\___________ StdoutWriter (one writer) ___/

* ``dispatch`` enters requests in the :class:`~sigv4_proxy.mcp.session.PendingRequests` ledger and starts
  one task per message, so a slow call never blocks a ping or a cancellation. Notifications and responses
  are given a moment to go out before the next line is read, to keep their order (``initialized`` before
  the next request) without letting a stuck one stall the client.
* :meth:`Bridge.send` is the one place where an attempt's outcome becomes what the client sees. Around
  ``transport.post`` (:meth:`Bridge.forward`) it recovers what can be recovered: a forgotten session
  (re-initialize privately, resend once), an expired token (refresh, re-sign, resend once), a wrong local
  clock (adopt the server's time, resend once), and transient failures (the retry policy of
  :mod:`sigv4_proxy.retry`: backoff with jitter, ``Retry-After``, never resending what the server may have
  started executing). What cannot be recovered becomes one JSON-RPC error (:mod:`sigv4_proxy.diagnose`).
* :meth:`Bridge.deliver` is the one place where upstream messages reach stdout: it resolves the ledger so a
  request answered once is never answered again, and it learns what routing needs from the answers
  (protocol version from ``initialize``, ``x-mcp-header`` annotations from ``tools/list``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random as _random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sigv4_proxy.logs import get_logger
from sigv4_proxy.mcp import jsonrpc
from sigv4_proxy.mcp.jsonrpc import INVALID_REQUEST, UPSTREAM_ERROR, Envelope, Rejection
from sigv4_proxy.mcp.routing import ToolHeaderMaps
from sigv4_proxy.mcp.session import Pending, PendingRequests, SessionState
from sigv4_proxy.mcp.stdio import Line, Oversize, StdinReader, StdoutWriter
from sigv4_proxy.mcp.transport import Deliver, PostResult, StreamableHttpTransport, Transport, UpstreamLink

if TYPE_CHECKING:
    import httpx

    from sigv4_proxy.clock import SkewedClock
    from sigv4_proxy.config import ProxyConfig
    from sigv4_proxy.credentials import CredentialSource
    from sigv4_proxy.diagnose import Diagnosis, SigningContext
    from sigv4_proxy.mcp.legacy import LegacySseTransport
    from sigv4_proxy.mcp.standalone import StandaloneStream
    from sigv4_proxy.mcp.warm import WarmCache
    from sigv4_proxy.retry import RetryPolicy, RetryState

__all__ = ["Bridge", "Failure", "Settled"]

log = get_logger("mcp")

# How long a notification or response may hold back the next stdin line (ordering vs. liveness).
ORDERING_WAIT_SECONDS = 2.0
SHUTDOWN_GRACE_SECONDS = 5.0

PROBLEM_DEADLINE = (
    "no response within the request deadline of {seconds:g} s (--request-deadline): the proxy stopped waiting and "
    "closed the request's stream. Diagnosis: the server kept the request open without answering it (it may still "
    "be sending progress); raise --request-deadline (MCP_REQUEST_DEADLINE) if it legitimately takes longer; the "
    "request may have been executed, so it was not resent"
)


class Failure:
    """Why a message could not be delivered: the text the client reads, plus machine-readable data."""

    def __init__(self, message: str, data: dict[str, Any] | None = None) -> None:
        self.message = message
        self.data = data

    @classmethod
    def from_diagnosis(cls, diagnosis: Diagnosis, attempts: int = 1, reason: str = "") -> Failure:
        """The client's error for a final failure after `attempts` attempts, `reason` being the retry policy's
        last word ("the server asked to retry after 5 min, ...")."""
        message = diagnosis.final_message(attempts, reason)
        data: dict[str, Any] = {"kind": diagnosis.kind, "retryable": diagnosis.retryable}
        if diagnosis.status is not None:
            data["status"] = diagnosis.status
        if diagnosis.error_type:
            data["errorType"] = diagnosis.error_type
        if attempts > 1:
            data["attempts"] = attempts
        return cls(message, data)


@dataclass
class Settled:
    """How forwarding one message ended: ``failure`` is None when it went through."""

    result: PostResult
    failure: Failure | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


class Bridge:
    """One proxy run: owns the session, the ledger, the transport and the stdio ends."""

    def __init__(
        self,
        config: ProxyConfig,
        client: httpx.AsyncClient,
        *,
        stdin: StdinReader,
        stdout: StdoutWriter,
        signing_context: Callable[[], SigningContext],
        credentials: CredentialSource | None = None,
        grace_seconds: float = SHUTDOWN_GRACE_SECONDS,
        clock: SkewedClock | None = None,
        policy: RetryPolicy | None = None,
        random: Callable[[], float] = _random.random,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        warm_cache: WarmCache | None = None,
    ) -> None:
        """`clock` is the clock the client signs with (corrected on clock-skew answers); `policy` the retry
        policy (default: ``--retries``); `random` the jitter source and `sleep` the wait between attempts
        (tests make both deterministic); `warm_cache` a :class:`~sigv4_proxy.mcp.warm.WarmCache` for
        ``--warm``."""
        self.config = config
        self.client = client
        self.stdin = stdin
        self.stdout = stdout
        self.signing_context = signing_context
        self.credentials = credentials  # the process's one provider (the signer holds the same one)
        self.grace_seconds = grace_seconds
        self.session = SessionState()
        self.pending = PendingRequests()
        self.tool_headers = ToolHeaderMaps()
        self.clock = clock
        self._policy = policy
        self.random = random
        self.sleep = sleep
        self.warm_cache = warm_cache
        self.transport: Transport = self.build_transport()
        self._tasks: set[asyncio.Task[None]] = set()
        self._listener: StandaloneStream | None = None
        self._recovering = asyncio.Lock()
        self.stopping = asyncio.Event()

    def build_transport(self) -> Transport:
        """The upstream transport ``--transport`` asks for: Streamable HTTP, legacy HTTP+SSE, or ``auto``."""
        link = UpstreamLink(
            self.client,
            self.config.target_url,
            self.session,
            self.deliver,
            extra_headers=self.config.headers,
            max_message_bytes=self.config.max_message_bytes,
        )
        streamable = StreamableHttpTransport(link, tool_headers=self.tool_headers)
        if self.config.transport == "streamable-http":
            return streamable

        def legacy() -> LegacySseTransport:
            from sigv4_proxy.mcp.legacy import LegacySseTransport  # imported only for legacy servers

            return LegacySseTransport(link, timeout=self.config.timeout)

        if self.config.transport == "sse":
            return legacy()
        from sigv4_proxy.mcp.transport import AutoTransport

        return AutoTransport(streamable, legacy)

    @property
    def listener(self) -> StandaloneStream:
        """The ``--sse`` stream keeper (imported on first use: most sessions never open the stream)."""
        if self._listener is None:
            from sigv4_proxy.mcp.standalone import StandaloneStream

            self._listener = StandaloneStream(
                self.transport,
                self.session,
                stopping=self.stopping,
                signing_context=self.signing_context,
                recover_signing=self.recover_signing,
                max_message_bytes=self.config.max_message_bytes,
                random=self.random,
                sleep=self.sleep,
            )
        return self._listener

    @property
    def policy(self) -> RetryPolicy:
        if self._policy is None:  # imported on the first failure: the happy path never needs it
            from sigv4_proxy.retry import RetryPolicy

            self._policy = RetryPolicy(retries=self.config.retries)
        return self._policy

    # -- lifecycle ----------------------------------------------------------------------------------------

    async def run(self) -> int:
        """Serve until stdin ends, stdout goes away or :meth:`stop` is called; then shut down cleanly."""
        await self.stdin.start()
        await self.stdout.start()
        reader = asyncio.create_task(self._read_stdin(), name="stdin")
        stopper = asyncio.create_task(self.stopping.wait(), name="stop")
        done, _ = await asyncio.wait({reader, stopper}, return_when=asyncio.FIRST_COMPLETED)
        reason = "stdin closed" if reader in done else self._stop_reason
        for task in (reader, stopper):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        exit_code = 0
        if reader in done and reader.exception() is not None:
            log.error("reading stdin failed: %r", reader.exception())
            exit_code = 1
        await self.shutdown(reason)
        return exit_code

    _stop_reason = "stopped"

    def stop(self, reason: str) -> None:
        self._stop_reason = reason
        self.stopping.set()

    async def shutdown(self, reason: str) -> None:
        """Stop reading, give in-flight requests the grace period, answer the rest, end the session."""
        self.stdin.close()
        in_flight = [task for task in self._tasks if not task.done()]
        log.info("shutting down (%s): %d message(s) in flight", reason, len(in_flight))
        if in_flight:
            _, still_running = await asyncio.wait(in_flight, timeout=self.grace_seconds)
            for task in still_running:
                task.cancel()
            if still_running:
                await asyncio.wait(still_running)
        for pending in self.pending.all():
            if self.pending.resolve(pending.key) is not None and not pending.cancelled:
                text = "the proxy shut down before the server answered this request"
                await self.stdout.write_message(jsonrpc.error_line(pending.id, UPSTREAM_ERROR, text))
        if self._listener is not None:
            await self._listener.stop()
        await self.transport.terminate()
        await self.stdout.close()

    # -- stdin --------------------------------------------------------------------------------------------

    async def _read_stdin(self) -> None:
        async for item in self.stdin:
            if isinstance(item, Oversize):
                await self._reject_oversize(item)
                continue
            assert isinstance(item, Line)
            if not item.data or item.data.isspace():  # (no strip(): it would copy a 20 MB line)
                continue
            verdict = jsonrpc.classify_line(item.data)
            if isinstance(verdict, Rejection):
                await self._reject(verdict, len(item.data))
                continue
            verdict.rebind(bytes(item.data))  # httpx sends bytes; the line buffer is freed here
            del item
            await self.dispatch(verdict)
            if self.stdout.closed:
                self.stop("stdout closed")
                return

    async def _reject(self, rejection: Rejection, size: int) -> None:
        log.warning("rejected a %d-byte stdin line: %s", size, rejection.message)
        await self.stdout.write_message(rejection.line())

    async def _reject_oversize(self, item: Oversize) -> None:
        limit = self.config.max_message_bytes
        kind, message_id = jsonrpc.truncated_kind(item.prefix)
        text = (
            f"message of {item.size} bytes exceeds the limit of {limit} bytes (--max-message-bytes); "
            "it was not forwarded"
        )
        log.warning("rejected a stdin line: %s", text)
        if kind in ("notification", "response"):
            return  # nothing to answer: JSON-RPC never answers these
        await self.stdout.write_message(jsonrpc.error_line(message_id, INVALID_REQUEST, f"Invalid Request: {text}"))

    async def dispatch(self, message: Envelope) -> None:
        """Start forwarding one client message (see the module docstring for the ordering rule)."""
        if message.kind == "notification" and message.method == "notifications/cancelled" and self._cancel(message):
            return
        requests = message.requests()
        entered: list[Pending] = []
        for request in requests:
            pending = self.pending.add(request)
            if pending is None:
                for earlier in entered:
                    self.pending.resolve(earlier.key)
                text = f"Invalid Request: a request with id {request.key} is already in flight"
                await self._reject(Rejection(INVALID_REQUEST, text, request.id), len(message.raw))
                return
            entered.append(pending)
        self.session.client_message(message)
        task = asyncio.create_task(self.send(message))
        if message.kind == "request" and message.method == "initialize":
            self.session.initialize_started(message)
            # The gate opens when the task ends, however it ends: also when it was cancelled before it ran
            # (a 2026-era initialize cancelled in the same read), which a `finally` inside it would miss.
            task.add_done_callback(lambda _: self.session.initialize_finished())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        for pending in entered:
            pending.task = task
        if not requests:
            await asyncio.wait({task}, timeout=ORDERING_WAIT_SECONDS)

    def _cancel(self, message: Envelope) -> bool:
        """Client-side cancellation. True when the notification must not be forwarded."""
        if message.cancelled_id is None:
            return False
        pending = self.pending.get(jsonrpc.id_key(message.cancelled_id))
        if pending is None:
            # At 2026 the wire has no client notifications: a late cancel is simply dropped.
            return self.session.modern
        pending.cancelled = True
        if not pending.modern:
            return False  # handshake-era servers learn of it from the forwarded notification
        # 2026 wire: closing the request's response stream is the cancellation.
        self.pending.resolve(pending.key)
        if pending.task is not None:
            pending.task.cancel()
        log.debug("cancelled %s id=%s by closing its stream", pending.method, pending.key)
        return True

    # -- upstream -----------------------------------------------------------------------------------------

    async def send(self, message: Envelope) -> None:
        """Forward one client message and settle what the client is owed for it.

        The single place where the outcome becomes the client's answer: every request the message carries
        ends up answered exactly once, by the server (through :meth:`deliver`) or here, with an error that
        says what went wrong and how to fix it. ``--request-deadline`` bounds the whole of it for requests.
        """
        deadline = self.config.request_deadline
        if deadline is None or not message.requests() or self._warm_answers(message):
            await self._send(message)
            return
        try:
            # Cancelling the attempt closes its stream (on the 2026 wire, that cancels the request upstream).
            await asyncio.wait_for(self._send(message), deadline)
        except asyncio.TimeoutError:
            text = PROBLEM_DEADLINE.format(seconds=deadline)
            await self.fail(message, Failure(text, {"kind": "request_deadline", "retryable": False}))

    def _warm_answers(self, message: Envelope) -> bool:
        """``--warm`` answers this initialize from its cache: the real one behind it must run to its end."""
        return self.warm_cache is not None and message.kind == "request" and message.method == "initialize"

    async def _send(self, message: Envelope) -> None:
        is_initialize = message.kind == "request" and message.method == "initialize"
        if not is_initialize:
            await self.session.wait_ready()
            if self.session.needs_initialize:
                failure = await self.recover_session(self.session.epoch, "the warm start's initialize failed")
                if failure is not None:
                    await self.fail(message, failure)
                    return
                if message.method == "notifications/initialized":
                    return  # the re-initialize just sent it
        if is_initialize and self.warm_cache is not None:
            await self.warm_initialize(message, self.warm_cache)
            return
        settled = await self.forward(message)
        if settled.ok:
            self._after_success(message)
        else:
            await self.report(message, settled)

    async def attempt(self, message: Envelope, deliver: Deliver | None = None) -> PostResult:
        """One POST of ``message``. Failures of any kind come back in the result, never as exceptions."""
        try:
            return await self.transport.post(message, deliver=deliver)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # credentials that cannot be refreshed, a request that cannot be signed, ...
            return PostResult(error=exc)

    async def forward(self, message: Envelope, *, deliver: Deliver | None = None, recover: bool = True) -> Settled:
        """Send ``message`` until it goes through or cannot: one session recovery, the retry policy's retries,
        one credential refresh, one clock correction. ``deliver`` replaces the bridge's for the answer (a
        private re-initialize keeps its answer from the client)."""
        state: RetryState | None = None
        recovered = False
        while True:
            epoch = self.session.epoch
            result = await self.attempt(message, deliver)
            if result.ok:
                return Settled(result)
            if result.session_lost and recover and not recovered and self.session.initialize_message is not None:
                recovered = True
                failure = await self.recover_session(epoch, _lost_reason(result))
                if failure is not None:
                    return Settled(result, failure)
                if message.kind == "response":
                    log.info("%s not resent: the request it answers died with the old session", _describe(message))
                    return Settled(result)
                if message.method == "notifications/initialized":
                    return Settled(result)  # the re-initialize sent it
                log.info("resending %s in the new session", _describe(message))
                continue
            if state is None:
                from sigv4_proxy.credentials import credentials_refreshable
                from sigv4_proxy.retry import RetryState

                refreshable = self.credentials is None or credentials_refreshable(self.credentials)
                state = RetryState(credentials_refreshable=refreshable)
            failure = await self._before_retry(message, result, state)
            if failure is not None:
                return Settled(result, failure)

    async def _before_retry(self, message: Envelope, result: PostResult, state: RetryState) -> Failure | None:
        """Decide about a failed attempt; recover and wait before the retry, or return the final failure."""
        from sigv4_proxy import retry

        if result.error is None and (result.status is None or result.status < 400):
            return self._problem_failure(result)
        if result.session_lost:
            return self._session_failure(result)
        diagnosis = self._diagnose(result)
        unharmed = result.delivered == 0
        outcome = retry.Outcome.from_diagnosis(
            diagnosis,
            headers=result.headers,
            # an answer that started (status, or messages delivered) proves the whole request arrived
            request_sent=True if (result.status is not None or result.delivered) else None,
            # a request whose answer already reached the client is never resent: the client would see it twice
            replay_safe=unharmed and retry.mcp_replay_safe([r.method or "" for r in message.requests()] or None),
        )
        decision = self.policy.decide(state, outcome, random=self.random, now=datetime.now(timezone.utc))
        if not decision.retry:
            return Failure.from_diagnosis(diagnosis, state.attempts, decision.reason)
        log.warning("%s: %s — %s", _describe(message), diagnosis.message(), decision.reason)
        if decision.action in (retry.REFRESH_CREDENTIALS, retry.CORRECT_CLOCK):
            return await self.recover_signing(diagnosis, result)
        if decision.delay:
            await self.sleep(decision.delay)
        return None

    def _diagnose(self, result: PostResult) -> Diagnosis:
        from sigv4_proxy.diagnose import diagnose_exception, diagnose_response

        if result.error is not None:
            return diagnose_exception(result.error, context=self.signing_context())
        assert result.status is not None
        return diagnose_response(result.status, result.headers, result.body, context=self.signing_context())

    async def recover_signing(self, diagnosis: Diagnosis, result: PostResult) -> Failure | None:
        """Before the one re-signed retry: refresh the credentials (expired token) or adopt the server's clock
        (skew). A failure when the credentials cannot be refreshed (an SSO session that ended: the message
        names the login command; the next request tries again, so the proxy keeps working after the login)."""
        from sigv4_proxy import retry
        from sigv4_proxy.diagnose import header_value
        from sigv4_proxy.redact import redact
        from sigv4_proxy.upstream import recover

        action = diagnosis.recovery
        if action is None:
            return None
        if action == retry.REFRESH_CREDENTIALS and self.credentials is None:
            return Failure.from_diagnosis(diagnosis)  # no provider to refresh
        error = await recover(
            action,
            self.credentials,
            self.clock,
            log=log,
            date=header_value(result.headers, "date"),
            received=datetime.fromtimestamp(result.received_at, timezone.utc) if result.received_at else None,
            aws_message=diagnosis.aws_message,
        )
        if error is None:
            return None
        failure = Failure.from_diagnosis(diagnosis)
        failure.message += f" Refreshing the credentials failed: {redact(str(error))}"
        return failure

    def _problem_failure(self, result: PostResult) -> Failure:
        from sigv4_proxy.mcp.transport import PROBLEM_STREAM_ENDED

        reason = result.problem or PROBLEM_STREAM_ENDED
        data: dict[str, Any] = {"kind": result.problem_kind}
        if result.status is not None:
            data["status"] = result.status
        return Failure(reason, data)

    def _session_failure(self, result: PostResult) -> Failure:
        session = f"MCP session {self.session.session_id}" if self.session.session_id else "the MCP session"
        status = f"HTTP {result.status}: " if result.status is not None else ""
        return Failure(
            f"{status}the server no longer knows {session} (it restarted or expired the session), and "
            "re-initializing did not help. Diagnosis: check the server's logs; restarting the MCP client's "
            "connection starts afresh",
            {"kind": "session_expired", "retryable": False, **({"status": result.status} if result.status else {})},
        )

    # -- session recovery and warm start ----------------------------------------------------------------------

    async def recover_session(self, epoch: int, reason: str) -> Failure | None:
        """The server forgot the session of ``epoch``: establish a new one with the client's own ``initialize``
        and ``notifications/initialized``, unseen by the client. None when the session is usable again (also
        when another request already re-established it)."""
        async with self._recovering:
            if self.session.epoch != epoch:
                return None
            old = self.session.session_id
            self.session.reinitialize_started()
            try:
                log.warning(
                    "%s (%s): re-initializing with the client's original parameters",
                    f"the server no longer knows MCP session {old}" if old else "no MCP session",
                    reason,
                )
                failure = await self._reinitialize()
            finally:
                self.session.initialize_finished()
            if failure is not None:
                log.warning("re-initializing failed: %s", failure.message)
                return Failure(
                    "the server forgot the MCP session and establishing a new one failed: " + failure.message,
                    failure.data,
                )
            log.info("MCP session re-established (%s)", self.session.describe())
            if self.config.sse:
                await self.listener.restart()
            return None

    async def _reinitialize(self) -> Failure | None:
        assert self.session.initialize_message is not None
        initialize = jsonrpc.peek(self.session.initialize_message)
        answer = _Capture(self)
        settled = await self.forward(initialize, deliver=answer, recover=False)
        if settled.failure is not None:
            return settled.failure
        outcome = answer.outcome()
        if isinstance(outcome, Failure):
            return outcome
        self._observe("initialize", outcome)
        self.session.established()
        initialized = jsonrpc.peek(self.session.initialized_notification or INITIALIZED)
        settled = await self.forward(initialized, recover=False)
        return settled.failure

    async def warm_initialize(self, message: Envelope, cache: WarmCache) -> None:
        """``--warm``: answer from the cache at once, complete the real initialize behind it, refresh the cache.

        Later messages wait at the session gate until the real answer is in. If the real initialize fails,
        the client (already told it succeeded) learns of it from its next request, which re-runs it first.
        """
        from sigv4_proxy.mcp.warm import requested_version

        version = requested_version(message.raw)
        entry = cache.load(version)
        if entry is None:
            log.info("warm start: no cached initialize answer for this target yet; this one will be cached")
            answer = _Capture(self, forward_to_client=True)
            settled = await self.forward(message, deliver=answer)
            if not settled.ok:
                await self.report(message, settled)
                return
            self._after_success(message)
            outcome = answer.outcome()
            if not isinstance(outcome, Failure):
                cache.save(version, outcome.result())
            return
        line = entry.answer(message.id)
        await self.deliver(line, jsonrpc.peek(line), message)
        log.info("warm start: answered initialize from the answer cached %s; completing the real one", entry.saved)
        answer = _Capture(self)
        settled = await self.forward(message, deliver=answer)
        outcome = settled.failure or answer.outcome()
        if isinstance(outcome, Failure):
            self.session.warm_failed()
            log.warning("warm start: the real initialize failed (the next request tries again): %s", outcome.message)
            return
        self._observe("initialize", outcome)
        fresh = outcome.result()
        if isinstance(fresh, dict) and fresh != _json(entry.result):
            log.warning(
                "warm start: the server's initialize answer differs from the cached one the client got (e.g. "
                "new capabilities or version); the client sees the new one after its next start"
            )
        cache.save(version, fresh)
        self._after_success(message)

    def _after_success(self, message: Envelope) -> None:
        if message.kind == "request" and message.method == "initialize":
            self.session.established()
            log.info("MCP session established (%s, %s transport)", self.session.describe(), self.transport.name)
        if message.method == "notifications/initialized" and self.config.sse:
            self.listener.start()

    async def report(self, message: Envelope, settled: Settled) -> None:
        """Tell the client (requests) or the log (notifications, responses) why ``message`` failed for good."""
        if await self._forward_jsonrpc_error(message, settled.result):
            return
        assert settled.failure is not None
        await self.fail(message, settled.failure)

    async def _forward_jsonrpc_error(self, message: Envelope, result: PostResult) -> bool:
        """A JSON-RPC error in an HTTP error body (a spec-correct server does that) goes to the client as is."""
        if not message.requests() or not result.body or result.session_lost or result.error is not None:
            return False
        try:
            envelope = jsonrpc.peek(result.body)
        except ValueError:
            return False
        if envelope.kind != "response" or not envelope.is_error:
            return False
        requests = message.requests()
        if envelope.id is None and len(requests) == 1:
            from sigv4_proxy.mcp.transport import with_id

            data = with_id(result.body, requests[0].id)
            envelope = jsonrpc.peek(data)
        else:
            data = result.body
        if envelope.key not in self.pending:
            return False
        log.debug("forwarding the server's JSON-RPC error (HTTP %s) for id=%s", result.status, envelope.key)
        await self.deliver(data, envelope, message)
        return not any(request.key in self.pending for request in requests)

    async def fail(self, message: Envelope, failure: Failure) -> None:
        """Answer every still-unanswered request in ``message`` with ``failure``; log the rest."""
        requests = message.requests()
        if not requests:
            log.warning("%s not delivered: %s", _describe(message), failure.message)
            return
        for request in requests:
            pending = self.pending.resolve(request.key)
            if pending is None:
                continue  # answered already
            if pending.cancelled:
                log.debug("%s id=%s ended after the client cancelled it", pending.method, pending.key)
                continue
            log.warning("%s id=%s failed: %s", pending.method, pending.key, failure.message)
            line = jsonrpc.error_line(request.id, UPSTREAM_ERROR, failure.message, failure.data)
            await self.stdout.write_message(line)

    async def deliver(self, data: bytes | bytearray, envelope: Envelope, via: Envelope | None) -> None:
        """Write one upstream message to stdout, unless it answers a request that is answered already (a batch
        loses those of its responses, and a response repeated within it)."""
        if envelope.kind == "batch":
            kept = self._unanswered_part(data, envelope)
            if kept is not None:
                await self.stdout.write_message(kept)
            return
        if envelope.kind == "response" and not self._claim(envelope):
            return
        await self.stdout.write_message(data)

    def _claim(self, response: Envelope) -> bool:
        """Resolve the request a response answers; False (and a warning) when none is waiting for it."""
        pending = self.pending.resolve(response.key)
        if pending is None:
            log.warning("dropped a response for id=%s: no request with that id is waiting for one", response.key)
            return False
        self._observe(pending.method, response)
        return True

    def _unanswered_part(self, data: bytes | bytearray, batch: Envelope) -> bytes | bytearray | None:
        """``data`` without the responses nobody waits for: as is when none, None when nothing is left, else a
        smaller batch of the other members' exact bytes (never re-serialised)."""
        kept: list[Envelope] = []
        for member in batch.members:
            if member.kind == "response" and not self._claim(member):
                continue
            kept.append(member)
        if len(kept) == len(batch.members):
            return data
        if not kept:
            return None
        return b"[" + b",".join(bytes(data[slice(*member.span)]) for member in kept if member.span) + b"]"

    def _observe(self, method: str, envelope: Envelope) -> None:
        """Learn what routing needs from answers passing through."""
        if envelope.kind != "response" or envelope.is_error:
            return
        if method == "initialize":
            result = envelope.result(limit=1 << 20)
            version = result.get("protocolVersion") if isinstance(result, dict) else None
            if isinstance(version, str) and self.session.initializing:
                # (an answer that arrives after its initialize was abandoned, at a deadline or shutdown,
                # establishes nothing)
                self.session.learned_version(version)
        elif method == "tools/list" and b"x-mcp-header" in envelope.raw:
            self.tool_headers.learn(envelope.result())


INITIALIZED = b'{"jsonrpc":"2.0","method":"notifications/initialized"}'


class _Capture:
    """A private ``deliver`` for an initialize the bridge sends itself: keeps the answer from the client (or,
    with ``forward_to_client``, passes it on too), passes every other message on."""

    def __init__(self, bridge: Bridge, *, forward_to_client: bool = False) -> None:
        self.bridge = bridge
        self.forward_to_client = forward_to_client
        self.envelope: Envelope | None = None

    async def __call__(self, data: bytes | bytearray, envelope: Envelope, via: Envelope | None) -> None:
        if envelope.kind == "response" and self.envelope is None:
            self.envelope = jsonrpc.peek(bytes(data))
            if not self.forward_to_client:
                return
        await self.bridge.deliver(data, envelope, via)

    def outcome(self) -> Envelope | Failure:
        """The server's successful answer, or why there is none."""
        envelope = self.envelope
        if envelope is None:
            return Failure("the server did not answer initialize", {"kind": "unexpected_response"})
        if envelope.is_error:
            try:
                error = _json(envelope.raw).get("error", {})
            except (ValueError, AttributeError):
                error = {}
            text = error.get("message") if isinstance(error, dict) else None
            return Failure(f"the server refused initialize: {text or 'JSON-RPC error'}", {"kind": "initialize_refused"})
        return envelope


def _json(data: bytes | bytearray) -> Any:
    import json

    return json.loads(bytes(data))


def _lost_reason(result: PostResult) -> str:
    if result.status is not None:
        return f"HTTP {result.status}"
    return result.problem or "its event stream ended"


def _describe(message: Envelope) -> str:
    if message.kind == "response":
        return f"response id={message.key}"
    if message.kind == "batch":
        return f"batch of {len(message.members)} messages"
    if message.kind == "request":
        return f"{message.method} id={message.key}"
    return message.method or message.kind
