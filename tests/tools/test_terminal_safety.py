"""Control characters from hostile input never reach the terminal: `printable()`, `TerminalWriter`, and
`sigv4-proxy request` against a server that answers with escape sequences (ESC[2J, BEL, OSC 52, C1 CSI,
U+202E) in its status line, headers and body.

The body on stdout stays byte for byte when stdout is a pipe (scripts, `> file`), and is escaped when stdout
is a terminal (checked through a real pty); stderr (the diagnosis, -v) is always escaped.
"""

from __future__ import annotations

import io
import os
import pty
import re
import socket
import subprocess
import sys
import threading
import tty
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.tools.conftest import child_env

# Raw bytes that would drive a terminal: C0 controls but LF/TAB/CR, DEL, C1 controls in UTF-8, bidi controls.
UNSAFE = re.compile(
    rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\xc2[\x80-\x9f]|\xe2\x80[\x8b-\x8f\xaa-\xae]|\xe2\x81[\xa6-\xa9]"
)
OSC52 = b"\x1b]52;c;aGVsbG8=\x07"  # "set the clipboard to 'hello'"
HOSTILE_BODY = b"boom \x1b[2J\x07 " + OSC52 + b" \xe2\x80\xae end\r\nline2\n"
ESCAPED_BODY = "boom \\x1b[2J\\x07 \\x1b]52;c;aGVsbG8=\\x07 \\u202e end"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}


def response(status: bytes, body: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\nContent-Type: text/plain\r\nX-Evil: a\xc2\x9b2Jb\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body
    )


@contextmanager
def canned_server(answer: bytes) -> Iterator[str]:
    """A loopback HTTP server that answers every request with `answer` (raw bytes, so anything goes)."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(5)
                received = b""
                while b"\r\n\r\n" not in received:
                    data = conn.recv(65536)
                    if not data:
                        break
                    received += data
                conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/mcp"
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def request_argv(url: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "sigv4_proxy",
        "request",
        "GET",
        url,
        "--region",
        "us-east-1",
        "--service-name",
        "execute-api",
        *extra,
    ]


def run_piped(url: str, *extra: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        request_argv(url, *extra), env=child_env(CREDENTIALS), capture_output=True, timeout=60, check=False
    )


def run_on_a_terminal(url: str, *extra: str) -> tuple[int, bytes, bytes]:
    """stdout on a pty (what a person sees), stderr on a pipe."""
    leader, follower = pty.openpty()
    tty.setraw(follower)  # no output processing: see exactly the bytes written (no \n -> \r\n)
    with subprocess.Popen(
        request_argv(url, *extra), env=child_env(CREDENTIALS), stdout=follower, stderr=subprocess.PIPE
    ) as process:
        os.close(follower)
        seen = bytearray()
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            seen += data
        assert process.stderr is not None
        stderr = process.stderr.read()
        code = process.wait(30)
    os.close(leader)
    return code, bytes(seen), stderr


# --- printable() ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain ASCII, é, 中文, ✓", "plain ASCII, é, 中文, ✓"),
        ("\x1b[2J", "\\x1b[2J"),
        ("\x07\x00\x7f", "\\x07\\x00\\x7f"),
        ("\x1b]52;c;aGVsbG8=\x07", "\\x1b]52;c;aGVsbG8=\\x07"),
        ("\x9b2J \x85", "\\x9b2J \\x85"),  # C1 CSI, NEL
        ("abc\u202edef \u2066x\u2069 \u200b \ufeff", "abc\\u202edef \\u2066x\\u2069 \\u200b \\ufeff"),
        ("tag\U000e0041", "tag\\U000e0041"),
        ("line\nnext\ttab\r\nend\rover", "line\\nnext\\ttab\\r\\nend\\rover"),
        ("\u2028\u2029", "\\u2028\\u2029"),
        ("\udc9b", "\\udc9b"),  # a surrogate-escaped byte
    ],
)
def test_printable_escapes_controls(text: str, shown: str) -> None:
    from sigv4_proxy.terminal import printable

    assert printable(text) == shown


def test_printable_layout_keeps_line_breaks_and_tabs_only() -> None:
    from sigv4_proxy.terminal import printable

    assert printable("a\nb\tc\r\nd\re\x1b[31m", layout=True) == "a\nb\tc\r\nd\\re\\x1b[31m"


def test_printable_is_idempotent() -> None:
    from sigv4_proxy.terminal import printable

    once = printable("x\x1b[2J\u202e\n")
    assert printable(once) == once


@pytest.mark.parametrize(
    "text",
    ["\x1b[2J\x07", "\x7f\x9b2J\x85", "a\u202eb\u2066\u200b\ufeff", "tag\U000e0041", "\udc9b", "é 中 ✓ \U0001f600"],
)
def test_json_printable_escapes_what_json_leaves_raw_and_keeps_the_value(text: str) -> None:
    import json

    from sigv4_proxy.terminal import json_printable

    dumped = json_printable(json.dumps({"k": text, text: [1, " \n"]}, ensure_ascii=False, indent=2))
    assert json.loads(dumped) == {"k": text, text: [1, " \n"]}
    assert UNSAFE.search(dumped.encode("utf-8", "surrogatepass")) is None
    assert "\u202e" not in dumped and "\x9b" not in dumped
    assert "é 中 ✓ \U0001f600" in json_printable(json.dumps("é 中 ✓ \U0001f600", ensure_ascii=False))


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_terminal_writer_does_not_depend_on_chunking(size: int) -> None:
    from sigv4_proxy.terminal import TerminalWriter

    data = HOSTILE_BODY + "é中\r\n".encode() + b"\xff\xfe tail\r"
    out = io.BytesIO()
    writer = TerminalWriter(out)
    for start in range(0, len(data), size):
        writer.write(data[start : start + size])
    writer.close()
    assert out.getvalue().decode() == (ESCAPED_BODY + "\r\nline2\né中\r\n\\xff\\xfe tail\\r")


# --- sigv4-proxy request against a hostile server -----------------------------------------------------------


def test_hostile_error_body_is_escaped_on_stderr_and_exact_on_a_piped_stdout() -> None:
    with canned_server(response(b"500 Internal Server Error", HOSTILE_BODY)) as url:
        result = run_piped(url, "-v")
    assert result.returncode == 1
    assert result.stdout == HOSTILE_BODY  # a pipe gets the bytes the server sent
    assert UNSAFE.search(result.stderr) is None, result.stderr
    err = result.stderr.decode()
    assert "< x-evil: a\\x9b2Jb\n" in err  # -v: a C1 CSI in a header value
    [error_line] = [line for line in err.splitlines() if line.startswith("ERROR: ")]
    assert error_line.startswith(f"ERROR: HTTP 500: {ESCAPED_BODY}")


def test_hostile_body_is_escaped_on_a_terminal() -> None:
    with canned_server(response(b"200 OK", HOSTILE_BODY)) as url:
        code, seen, stderr = run_on_a_terminal(url, "-i")
    assert (code, stderr) == (0, b"")
    assert UNSAFE.search(seen) is None, seen
    text = seen.decode()
    assert "\r\nx-evil: a\\x9b2Jb\r\n" in text  # -i: the header's byte 0x9b (C1 CSI) shown, not sent
    assert text.endswith(f"\r\n\r\n{ESCAPED_BODY}\r\nline2\n")  # CRLF and LF are layout: kept


def test_successful_body_stays_byte_exact_in_a_pipe() -> None:
    with canned_server(response(b"200 OK", HOSTILE_BODY)) as url:
        result = run_piped(url, "-i")
    assert (result.returncode, result.stderr) == (0, b"")
    assert result.stdout.startswith(b"HTTP/1.1 200 OK\r\n")
    assert result.stdout.endswith(b"\r\n\r\n" + HOSTILE_BODY)


@pytest.mark.parametrize("argv", [["inspect"], ["request"], ["emulate", "mcp"], ["sign"], ["doctor"]])
def test_help_texts_carry_no_control_characters(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """The help shows escapes as text (``\\x1b``); a slip in a non-raw string literal would send the real ESC."""
    from sigv4_proxy.cli import main

    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    out = capsys.readouterr().out
    assert UNSAFE.search(out.encode()) is None


# --- the CLI's error line -------------------------------------------------------------------------------------


def test_error_messages_are_escaped_but_keep_their_line_breaks(capsys: pytest.CaptureFixture[str]) -> None:
    """`main()` prints every Sigv4ProxyError: text quoted in it (here a flag value) is shown, not obeyed; a
    message made of several lines (every flag problem at once) keeps them."""
    from sigv4_proxy.cli import main

    assert main(["emulate", "mcp", "--path", "mcp\x1b[2J\x07\u202e", "--max-skew", "-1"]) == 2
    err = capsys.readouterr().err
    assert UNSAFE.search(err.encode()) is None, err
    assert err == (
        "ERROR: --path must start with /, got: mcp\\x1b[2J\\x07\\u202e\n--max-skew must be 0 or more seconds\n"
    )
