"""Text log lines show control characters from hostile input as escapes, and stay one line per record.

A request target received by `sigv4-proxy http`, an upstream's error message or a token field can carry ESC
sequences, BEL, a bidi override or a line feed: in a text log they are written as ``\\x1b``, ``\\x07``,
``\\u202e``, ``\\n``, so a log line can neither drive the terminal that shows it nor forge a line of its own.
A traceback keeps its line breaks. Redaction still masks secrets (it runs before the escaping). JSON lines
carry the exact text, every such character a JSON escape (``\\u001b``, ``\\u202e``).
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable, Iterator

import pytest

from sigv4_proxy.logs import get_logger, register_secret, setup_logging

# Raw characters that would drive a terminal (line breaks and tabs checked separately).
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
HOSTILE = "/mcp?\x1b[2J\x07\x1b]52;c;aGVsbG8=\x07\u202e\nFAKE LINE 2025-01-01T00:00:00.000Z ERROR  forged"
ESCAPED = "/mcp?\\x1b[2J\\x07\\x1b]52;c;aGVsbG8=\\x07\\u202e\\nFAKE LINE 2025-01-01T00:00:00.000Z ERROR  forged"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.fixture
def log_to() -> Iterator[Callable[[str], io.StringIO]]:
    """`log_to(fmt)` -> a stream the sigv4_proxy logger writes `fmt` lines to; the logging setup is undone."""
    logger = logging.getLogger("sigv4_proxy")
    saved = (list(logger.handlers), logger.level, logger.propagate)

    def setup(fmt: str) -> io.StringIO:
        stream = io.StringIO()
        setup_logging("debug", fmt, stream)
        return stream

    yield setup
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate = saved[2]
    logging.getLogger("httpx").handlers.clear()


def test_a_hostile_argument_renders_as_one_escaped_line(log_to) -> None:
    stream = log_to("text")
    get_logger("http").warning("refused request target %s", HOSTILE)
    text = stream.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")  # one record, one line: nothing forged
    assert UNSAFE.search(text) is None, text
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z WARNING refused request target (.*)\n", text)
    assert text.endswith(f" refused request target {ESCAPED}\n")


def test_structured_fields_are_escaped_too(log_to) -> None:
    stream = log_to("text")
    get_logger("http").info("request", extra={"fields": {"path": "/a\x1b[2Jb", "error": "x\x07 \u202ey"}})
    line = stream.getvalue()
    assert UNSAFE.search(line) is None, line
    assert line.rstrip("\n").endswith(' request path=/a\\x1b[2Jb error="x\\u0007 \\u202ey"')


def test_a_traceback_keeps_its_lines_but_not_its_control_characters(log_to) -> None:
    stream = log_to("text")
    try:
        raise ValueError("upstream said \x1b[31mred\x07\tand\rmore")
    except ValueError:
        get_logger().exception("call failed for %s", "a\nb")
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith("ERROR call failed for a\\nb")
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == "ValueError: upstream said \\x1b[31mred\\x07\tand\\rmore"  # a tab is layout
    assert UNSAFE.search(stream.getvalue()) is None


@pytest.mark.parametrize(
    ("message", "hidden", "shown"),
    [
        (f"key \x1b[2J{SECRET}\x07", SECRET, "key \\x1b[2J****\\x07"),
        ("key id \x1bAKIAIOSFODNN7EXAMPLE\x07", "AKIAIOSFODNN7EXAMPLE", "key id \\x1bAKIA****MPLE\\x07"),
        ("X-Amz-Security-Token: \x1bIQoJb3JpZ2luX2VjEL//token", "IQoJb3JpZ2luX2VjEL", "X-Amz-Security-Token: ****"),
        ("sig Signature=" + "ab12" * 16 + "\x1b[0m", "ab12ab12", "sig Signature=****\\x1b[0m"),
    ],
)
def test_redaction_still_masks_secrets_next_to_control_characters(log_to, message, hidden, shown) -> None:
    register_secret(SECRET)
    stream = log_to("text")
    get_logger().info("%s", message)
    line = stream.getvalue()
    assert UNSAFE.search(line) is None, line
    assert line.rstrip("\n").endswith(" " + shown)
    assert hidden not in line


def test_json_lines_carry_the_exact_text_as_json_escapes(log_to) -> None:
    """json.dumps(ensure_ascii=False) escapes C0 controls only: DEL, C1 controls and bidi overrides are
    escaped too (``\\u009b``, ``\\u202e``), the value is unchanged, readable text stays readable."""
    stream = log_to("json")
    hostile = HOSTILE + " \x7f\x9b2J \ufeff\U000e0041 é中"
    get_logger("http").warning("refused request target %s", hostile, extra={"fields": {"path": "/\x9b\u2066"}})
    [line] = stream.getvalue().splitlines()
    assert UNSAFE.search(line) is None, line
    assert "\\u202e" in line and "\\u009b" in line and "é中" in line
    entry = json.loads(line)
    assert entry["message"] == f"refused request target {hostile}"  # exact, for machines
    assert entry["path"] == "/\x9b\u2066"
