"""Text safe for a terminal: control characters from hostile input are shown, never obeyed.

Tokens, URLs, server error bodies and response headers come from someone else. Written raw to a terminal, an
ESC sequence clears the screen or retitles the window, OSC 52 writes the user's clipboard, BEL rings, a
carriage return overwrites what was printed, and a bidi override (U+202E) makes text read backwards. Every
human-readable output of the CLI goes through :func:`printable`, which writes such characters as escapes:

* ``\\x1b`` for C0 controls, DEL and C1 controls (U+0000-U+001F, U+007F-U+009F), ``\\n``, ``\\t``
  and ``\\r`` for those three;
* ``\\u202e`` / ``\\U000e0041`` for the other invisible characters: format characters (bidi overrides and
  isolates, zero-width spaces and joiners, the BOM, tag characters), the line and paragraph separators
  U+2028/U+2029 and lone surrogates (undecodable bytes smuggled through ``surrogateescape``).

With ``layout=True`` (multi-line bodies) line feeds, tabs and CRLF line ends are kept as layout; a lone
carriage return is still escaped, as it would overwrite the line. Backslashes are not doubled: the output
is for reading, and JSON bodies and Windows paths stay legible (a literal ``\\x1b`` in the input therefore
looks like an escaped ESC, which is harmless). ``--json`` outputs need none of this: ``json.dumps`` escapes
control characters itself, and everything else outside ASCII with its default ``ensure_ascii=True``. Where
JSON is written with ``ensure_ascii=False`` (JSON log lines, to keep ``é`` readable), :func:`json_printable`
escapes what that leaves raw (DEL, C1 controls, bidi overrides) as ``\\uXXXX``, keeping the JSON value.

:class:`TerminalWriter` does the same for a byte stream written to a terminal (``request``'s response body):
UTF-8 decoded incrementally, invalid bytes shown as ``\\xNN``.

Standard library only, so any module may import it at module level without slowing start-up.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from typing import BinaryIO

__all__ = ["TerminalWriter", "json_printable", "printable"]

# Unicode categories that never print: controls, format characters, line/paragraph separators, surrogates.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
# Candidates for escaping; everything in printable ASCII (the common case) is skipped by the regex engine.
_CANDIDATES = re.compile(r"[^\x20-\x7e]")
_LAYOUT_CANDIDATES = re.compile(r"\r\n|[^\x20-\x7e\n\t]")
_SHORT_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}
# Outside ASCII: what json.dumps(ensure_ascii=False) leaves raw (it escapes only U+0000-U+001F, '"' and '\\').
_JSON_CANDIDATES = re.compile(r"[^\x00-\x7e]")


def _escape(char: str) -> str:
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _replace(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\r\n" or unicodedata.category(char) not in _HIDDEN_CATEGORIES:
        return char
    return _escape(char)


def printable(text: str, *, layout: bool = False) -> str:
    """`text` with every control or invisible formatting character written as an escape (``\\x1b``,
    ``\\u202e``). `layout` keeps ``\\n``, ``\\t`` and ``\\r\\n`` (multi-line bodies); without it the result
    is one line."""
    return (_LAYOUT_CANDIDATES if layout else _CANDIDATES).sub(_replace, text)


def json_printable(text: str) -> str:
    """JSON text (from ``json.dumps(..., ensure_ascii=False)``) with every control or invisible formatting
    character it left raw — DEL, C1 controls, bidi overrides, ... — written as a ``\\uXXXX`` escape (a
    surrogate pair above U+FFFF). The JSON value is unchanged: outside ASCII such characters can only be in
    strings, where the escape means the same. Readable characters (``é``, ``中``) stay as they are."""
    return _JSON_CANDIDATES.sub(_json_replace, text)


def _json_replace(match: re.Match[str]) -> str:
    char = match.group()
    if unicodedata.category(char) not in _HIDDEN_CATEGORIES:
        return char
    code = ord(char)
    if code > 0xFFFF:
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


class TerminalWriter:
    """Write a byte stream to a terminal through :func:`printable` (layout kept), as it arrives.

    Chunks may split a UTF-8 sequence or a CRLF: the incremental decoder and a held-back trailing CR join
    them with the next chunk, so the output does not depend on how the bytes were chunked.
    """

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="backslashreplace")
        self._pending_cr = False

    def write(self, data: bytes) -> None:
        text = ("\r" if self._pending_cr else "") + self._decoder.decode(data)
        self._pending_cr = text.endswith("\r")
        if self._pending_cr:
            text = text[:-1]
        self._emit(text)

    def close(self) -> None:
        """Flush what is held back: an incomplete UTF-8 sequence (as ``\\xNN``) and a trailing CR."""
        text = self._decoder.decode(b"", final=True) + ("\r" if self._pending_cr else "")
        self._pending_cr = False
        self._emit(text)

    def _emit(self, text: str) -> None:
        if text:
            self._out.write(printable(text, layout=True).encode("utf-8"))
            self._out.flush()
