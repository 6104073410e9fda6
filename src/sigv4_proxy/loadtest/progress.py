"""The live progress line of a load test, on stderr:

    rows 60/100 · 42.1 rows/s · p50 12 ms · p99 40 ms · errors 0 · OCC retries 1 · users 5/5

rewritten in place on a terminal, one line every :data:`PLAIN_INTERVAL` seconds otherwise (a CI log gets a
readable trail, not hundreds of carriage returns). The engine feeds it a :class:`ProgressSample` every second.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

PLAIN_INTERVAL = 5.0  # seconds between lines when stderr is not a terminal
_CLEAR_TO_END = "\x1b[K"


@dataclass(frozen=True)
class ProgressSample:
    rows: int  # committed so far
    rows_expected: int | None  # None: a --duration run
    rows_per_s: float  # over the last second
    p50_ms: float | None  # transactions so far (None: none yet)
    p99_ms: float | None
    errors: int
    occ_retries: int
    users: int  # running now
    users_target: int


def format_progress(sample: ProgressSample) -> str:
    rows = f"rows {sample.rows}" + (f"/{sample.rows_expected}" if sample.rows_expected is not None else "")
    return " · ".join(
        [
            rows,
            f"{sample.rows_per_s:.1f} rows/s",
            f"p50 {_ms(sample.p50_ms)}",
            f"p99 {_ms(sample.p99_ms)}",
            f"errors {sample.errors}",
            f"OCC retries {sample.occ_retries}",
            f"users {sample.users}/{sample.users_target}",
        ]
    )


def _ms(value: float | None) -> str:
    if value is None:
        return "– ms"
    return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


class ProgressLine:
    """Writes samples to `stream` (None: nothing). ``close()`` ends the line on a terminal and writes the last
    sample elsewhere, so the final numbers are always visible."""

    def __init__(
        self,
        stream: TextIO | None,
        *,
        interval: float = PLAIN_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._tty = bool(stream is not None and _isatty(stream))
        self._interval = interval
        self._clock = clock
        self._last_written: float | None = None
        self._pending: str | None = None  # the newest line not yet written (plain output)

    def update(self, sample: ProgressSample) -> None:
        if self._stream is None:
            return
        line = format_progress(sample)
        if self._tty:
            self._write("\r" + line + _CLEAR_TO_END)
            self._last_written = self._clock()
            return
        now = self._clock()
        if self._last_written is None or now - self._last_written >= self._interval:
            self._write(line + "\n")
            self._last_written = now
            self._pending = None
        else:
            self._pending = line

    def close(self) -> None:
        if self._stream is None:
            return
        if self._tty:
            if self._last_written is not None:  # end the line rewritten in place
                self._write("\n")
        elif self._pending is not None:
            self._write(self._pending + "\n")
            self._pending = None

    def _write(self, text: str) -> None:
        assert self._stream is not None
        self._stream.write(text)
        self._stream.flush()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or file-like stream without isatty
        return False
