"""Tell the MCP client why the proxy could not start, not just the user's terminal.

When the configuration or the credentials fail, the proxy exits before the client's ``initialize``; an MCP
client then shows only "Connection closed" and the cause sits in a log file the user has to find. So, after
``main()`` has printed ``ERROR: <message>`` to stderr and before it exits, :func:`answer_first_request` keeps
stdin open a few seconds for the client's first request and answers it with a JSON-RPC error that carries
the same message, so the client shows the cause and the fix where the user is looking.

Rules: a terminal on stdin means a person typed the command and has already read stderr, so nothing waits.
Notifications and responses are skipped (they expect no answer); lines that are not JSON-RPC are ignored,
because the one answer that matters is the one to the client's real request; end of input ends the wait.
A batch gets one JSON array with an error for each of its requests. Reading is bounded in time (``wait``,
default 5 s, or ``SIGV4_PROXY_STARTUP_ERROR_WAIT``) and in memory (lines over 1 MiB are dropped unread: the
proxy's own ``--max-message-bytes`` is not known when its configuration failed).

Standard library only, no thread: ``select`` on stdin's descriptor (pipes and sockets on Linux and macOS;
where that is not possible, it returns at once, as the proxy did before).
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import time
from collections.abc import Mapping
from typing import Any, BinaryIO

__all__ = ["DEFAULT_WAIT", "MAX_LINE_BYTES", "WAIT_ENV", "answer_first_request"]

WAIT_ENV = "SIGV4_PROXY_STARTUP_ERROR_WAIT"
DEFAULT_WAIT = 5.0
MAX_LINE_BYTES = 1 << 20
READ_CHUNK = 64 * 1024


def answer_first_request(
    message: str,
    *,
    kind: str,
    fix: str | None,
    exit_code: int,
    stdin: BinaryIO | None = None,
    stdout: BinaryIO | None = None,
    wait: float | None = None,
) -> None:
    """Answer the first JSON-RPC request on ``stdin`` with an error carrying ``message``; give up after ``wait``.

    ``message`` is the text printed after ``ERROR: `` on stderr; ``kind`` ("configuration", "credentials",
    "usage", ...), ``fix`` and ``exit_code`` go into the error's ``data``. Returns without writing anything
    when stdin is a terminal, ends, or brings no request in time. Reads the descriptor directly: nothing
    may have consumed stdin through Python's buffer before this call.
    """
    fd = _readable_fd(_binary(sys.stdin) if stdin is None else stdin)
    sink = _binary(sys.stdout) if stdout is None else stdout
    if fd is None or sink is None:
        return
    seconds = _wait_seconds(os.environ) if wait is None else wait
    try:
        answer = _first_answer(fd, time.monotonic() + max(0.0, seconds), message, _error_data(kind, fix, exit_code))
    except KeyboardInterrupt:  # Ctrl-C while waiting: the user wants out now, and has read stderr
        return
    if answer is not None:
        _write_line(sink, answer)


def _binary(stream: Any) -> BinaryIO | None:
    """The byte stream under a text stream (sys.stdin, sys.stdout), or the stream itself; None if absent."""
    return getattr(stream, "buffer", stream) if stream is not None else None


def _readable_fd(stream: BinaryIO | None) -> int | None:
    """stdin's descriptor, or None when there is nothing to wait on (no stdin, a closed one, a terminal)."""
    if stream is None:
        return None
    try:
        fd = stream.fileno()
    except (OSError, ValueError):  # closed, or not backed by a descriptor
        return None
    return None if os.isatty(fd) else fd


def _wait_seconds(environ: Mapping[str, str]) -> float:
    raw = environ.get(WAIT_ENV, "").strip()
    try:
        return float(raw) if raw else DEFAULT_WAIT
    except ValueError:
        return DEFAULT_WAIT


def _error_data(kind: str, fix: str | None, exit_code: int) -> dict[str, Any]:
    return {"kind": kind, "fix": fix, "exit_code": exit_code}


def _first_answer(fd: int, deadline: float, message: str, data: dict[str, Any]) -> bytes | None:
    """Read lines until one carries a request; the error line that answers it, or None."""
    # Imported here: only a failed start pays for them.
    from sigv4_proxy.mcp.stdio import Line, LineSplitter

    splitter = LineSplitter(MAX_LINE_BYTES)
    while True:
        chunk = _read_before(fd, deadline)
        if chunk is None:  # time is up, or stdin cannot be waited on
            return None
        lines = splitter.feed(chunk) if chunk else splitter.close()
        for line in lines:
            if isinstance(line, Line):  # an over-size line is dropped: see the module's docstring
                answer = _answer(line.data, message, data)
                if answer is not None:
                    return answer
        if not chunk:  # end of input
            return None


def _read_before(fd: int, deadline: float) -> bytes | None:
    """The next bytes of ``fd`` (b"" at end of input), or None if none came before ``deadline``."""
    remaining = max(0.0, deadline - time.monotonic())
    try:
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            return None
        return os.read(fd, READ_CHUNK)
    except (OSError, ValueError):  # a descriptor select cannot watch (Windows pipes), or a read error
        return None


def _answer(line: bytes | bytearray, message: str, data: dict[str, Any]) -> bytes | None:
    """The error answer to ``line`` when it carries requests; None for anything else."""
    from sigv4_proxy.mcp.jsonrpc import UPSTREAM_ERROR, Envelope, classify_line, error_line

    envelope = classify_line(line)
    if not isinstance(envelope, Envelope):
        return None  # not JSON-RPC: ignored, the client's real request may follow
    requests = envelope.requests()
    if not requests:
        return None
    # The bridge's code for "the proxy could not do it" (JSON-RPC's implementation-defined server error).
    errors = [error_line(request.id, UPSTREAM_ERROR, message, data) for request in requests]
    if envelope.kind == "batch":
        return b"[" + b",".join(errors) + b"]"
    return errors[0]


def _write_line(stdout: BinaryIO, line: bytes) -> None:
    try:
        stdout.write(line + b"\n")
        stdout.flush()
    except (OSError, ValueError):  # the client went away: stderr already has the message
        _discard_the_rest(stdout)


def _discard_the_rest(stdout: BinaryIO) -> None:
    """Point stdout at the null device: what is left in its buffer would fail again when Python exits, with
    an "Exception ignored" report on stderr under the ERROR line."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, stdout.fileno())
        finally:
            os.close(devnull)
