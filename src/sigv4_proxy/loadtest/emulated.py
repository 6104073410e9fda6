"""`emulate dsql` for ``loadtest --emulate``, in a child process of its own.

The load test's process runs Locust, and so gevent's monkey-patching: the emulator's asyncio thread and its
embedded PostgreSQL must not live there. This module is that child (``python -m sigv4_proxy.loadtest.emulated``):
it starts the emulator with a generated identity, prints ONE JSON line on stdout (:class:`EmulatorInfo`: where
it listens, its CA, its cluster, and the identity the users sign with), and stops when its stdin closes (the
parent ended, however it ended). :func:`start_emulator` is the parent's side.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import IO

from sigv4_proxy.errors import Sigv4ProxyError

START_TIMEOUT = 60.0  # seconds for the child's JSON line: an embedded PostgreSQL starts in about a second
STOP_TIMEOUT = 15.0


@dataclass(frozen=True)
class EmulatorInfo:
    host: str  # the cluster host (SNI, certificate, token)
    listen_host: str  # the loopback address it listens on (libpq's hostaddr)
    port: int
    ca_file: str
    cluster_id: str
    region: str
    identity: str = field(repr=False)  # parse_identity's spec: AKID:SECRET:ARN (a throwaway identity)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> EmulatorInfo:
        data = json.loads(line)
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


class EmulatorStartError(Sigv4ProxyError):
    """The child could not start the emulator (its stderr says why)."""


def main() -> int:
    from sigv4_proxy.emulate.dsql.auth import generate_identity
    from sigv4_proxy.emulate.dsql.server import DsqlEmulatorConfig, start_dsql

    # A signal ends it as its stdin closing does: the emulator stops its PostgreSQL (which runs detached and would
    # outlive a Python killed by the default SIGTERM handler).
    for number in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(number, _exit_on_signal)
    identity = generate_identity()
    with start_dsql(DsqlEmulatorConfig(identities=(identity,))) as emulator:
        info = EmulatorInfo(
            host=emulator.host,
            listen_host=emulator.listen_host,
            port=emulator.port,
            ca_file=str(emulator.ca_file),
            cluster_id=emulator.cluster_id,
            region=emulator.region,
            identity=identity.spec(),
        )
        sys.stdout.write(info.to_json() + "\n")
        sys.stdout.flush()
        # Serve until the parent closes our stdin (or dies: the pipe closes with it).
        while sys.stdin.buffer.read(4096):
            pass
    return 0


def _exit_on_signal(number: int, frame: object) -> None:
    raise SystemExit(128 + number)


@contextlib.contextmanager
def start_emulator() -> Iterator[EmulatorInfo]:
    """Start the child, yield what it printed, stop it on exit. EmulatorStartError with the child's last words
    when it fails to start."""
    with tempfile.TemporaryFile(mode="w+b") as errors:
        child = subprocess.Popen(
            [sys.executable, "-m", "sigv4_proxy.loadtest.emulated"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            # Its own session: Ctrl-C (SIGINT to the terminal's process group) stops the load test, which then
            # still counts its rows here before it closes our end of the pipe.
            start_new_session=True,
        )
        try:
            yield _read_info(child, errors)
        finally:
            _stop(child)


def _read_info(child: subprocess.Popen[bytes], errors: IO[bytes]) -> EmulatorInfo:
    assert child.stdout is not None
    line = _read_line(child, START_TIMEOUT)
    if not line:
        child.wait(STOP_TIMEOUT)
        raise EmulatorStartError(f"emulate dsql did not start (exit code {child.returncode}): {_tail(errors)}")
    return EmulatorInfo.from_json(line.decode())


def _read_line(child: subprocess.Popen[bytes], timeout: float) -> bytes:
    """The child's first stdout line, or b"" when it ends (or says nothing for `timeout` seconds)."""
    import threading

    assert child.stdout is not None
    stdout = child.stdout
    result: list[bytes] = []
    # A thread, because a pipe read has no timeout; under gevent's patch the thread is a greenlet and the read
    # cooperative, so the wait below does not block the hub either.
    reader = threading.Thread(target=lambda: result.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return result[0] if result else b""


def _tail(errors: IO[bytes], limit: int = 2000) -> str:
    errors.seek(0)
    text = errors.read().decode(errors="replace").strip()
    return text[-limit:] or "(no output)"


def _stop(child: subprocess.Popen[bytes]) -> None:
    if child.stdin is not None:
        with contextlib.suppress(OSError):
            child.stdin.close()
    try:
        child.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait(STOP_TIMEOUT)
    if child.stdout is not None:
        child.stdout.close()


if __name__ == "__main__":
    sys.exit(main())
