"""Incremental ``text/event-stream`` parser (sans-IO, standard library only).

Feed it the bytes of a response body as they arrive; it yields complete events. It follows the WHATWG
event-stream rules (CRLF, LF or CR line ends; ``:`` comments; ``event``, ``data``, ``id``, ``retry``
fields; one optional space after the colon; multi-line data joined with LF; an unfinished event at the
end of the stream is discarded) and it is built for large messages: the bytes of a single ``data:`` line
are never copied — the line buffer becomes the event's data — so a 50 MB event costs about 50 MB.

With ``max_event_bytes`` it also bounds them: once an event's data (finished, or still arriving) grows past
the limit, :attr:`SSEParser.too_large` is set, the events before it are still returned, and the parser
accepts nothing more (the caller closes the stream). An endless line costs at most the limit plus a chunk.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Event", "SSEParser"]


@dataclass(slots=True)
class Event:
    """One dispatched event. ``data`` is empty for events that carried no ``data`` field."""

    event: str = "message"
    data: bytearray = field(default_factory=bytearray)
    id: str | None = None
    retry: int | None = None
    has_data: bool = False


# A line still arriving counts with its field name ("data: "): this much slack keeps an event of exactly the
# limit from being refused before its line is complete.
_FIELD_SLACK = 8


class SSEParser:
    """``events = parser.feed(chunk)`` for each chunk, then ``parser.close()`` at the end of the body.

    With ``max_event_bytes``, check :attr:`too_large` after each ``feed``."""

    def __init__(self, max_event_bytes: int | None = None) -> None:
        self._buffer = bytearray()
        self._scan_from = 0  # bytes before this are known to hold no line break
        self._max = max_event_bytes
        self._event = Event()
        self._event_started = False
        self.last_event_id: str | None = None
        self.retry: int | None = None
        self._skip_lf = False  # the previous chunk ended with CR: a leading LF belongs to it
        self.too_large = False  # an event outgrew max_event_bytes: nothing more is parsed

    def feed(self, chunk: bytes | bytearray | memoryview) -> list[Event]:
        if not chunk or self.too_large:
            return []
        buffer = self._buffer
        if self._skip_lf and not buffer:
            self._skip_lf = False
            if chunk[0] == 0x0A:
                chunk = chunk[1:]
        buffer += chunk
        events: list[Event] = []
        while not self.too_large:
            end = self._find_line_end()
            if end is None:
                break
            line_end, next_start = end
            self._take_line(line_end, next_start, events)
        if self._max is not None and len(self._buffer) + len(self._event.data) > self._max + _FIELD_SLACK:
            self._refuse()
        return events

    def close(self) -> list[Event]:
        """End of stream: a final line without a line break still counts; an unfinished event does not."""
        events: list[Event] = []
        if self._buffer and not self.too_large:
            self._take_line(len(self._buffer), len(self._buffer), events)
        self._event = Event()
        self._event_started = False
        return events

    # -- internals ---------------------------------------------------------------------------------------

    def _find_line_end(self) -> tuple[int, int] | None:
        buffer = self._buffer
        lf = buffer.find(b"\n", self._scan_from)
        cr = buffer.find(b"\r", self._scan_from, lf if lf >= 0 else len(buffer))
        if cr >= 0:
            if cr + 1 < len(buffer):
                return cr, cr + 2 if buffer[cr + 1] == 0x0A else cr + 1
            # CR is the last byte: a line end either way; swallow an LF that may start the next chunk.
            self._skip_lf = True
            return cr, cr + 1
        if lf >= 0:
            return lf, lf + 1
        self._scan_from = len(buffer)
        return None

    def _take_line(self, line_end: int, next_start: int, events: list[Event]) -> None:
        buffer = self._buffer
        if line_end == 0:
            del buffer[:next_start]
            self._scan_from = 0
            self._dispatch(events)
            return
        if buffer[0] == 0x3A:  # ":" comment
            del buffer[:next_start]
            self._scan_from = 0
            return
        colon = buffer.find(b":", 0, line_end)
        name_end = line_end if colon < 0 else colon
        value_start = line_end if colon < 0 else colon + 1
        if value_start < line_end and buffer[value_start] == 0x20:
            value_start += 1
        name = bytes(buffer[:name_end])
        if name == b"data" and not self._event.has_data:
            # Zero-copy: the buffer holding this line becomes the event's data.
            rest = buffer[next_start:]
            del buffer[line_end:]
            del buffer[:value_start]
            self._event.data = buffer
            self._event.has_data = True
            self._event_started = True
            self._buffer = rest
            self._scan_from = 0
            return
        value = bytes(buffer[value_start:line_end])
        del buffer[:next_start]
        self._scan_from = 0
        self._field(name, value)

    def _field(self, name: bytes, value: bytes) -> None:
        event = self._event
        if name == b"data":
            event.data += b"\n"
            event.data += value
            self._event_started = True
        elif name == b"event":
            event.event = value.decode("utf-8", "replace")
            self._event_started = True
        elif name == b"id":
            if b"\x00" not in value:
                event.id = value.decode("utf-8", "replace")
                self.last_event_id = event.id
            self._event_started = True
        elif name == b"retry":
            if value.isdigit():
                event.retry = int(value)
                self.retry = event.retry
            self._event_started = True

    def _dispatch(self, events: list[Event]) -> None:
        if self._max is not None and len(self._event.data) > self._max:
            self._refuse()
            return
        if self._event_started:
            events.append(self._event)
        self._event = Event()
        self._event_started = False

    def _refuse(self) -> None:
        """Stop for good and let go of what the too-large event holds."""
        self.too_large = True
        self._buffer = bytearray()
        self._event = Event()
        self._event_started = False
