"""The load test's scenarios, end to end through `sigv4-proxy loadtest dsql` (each run a child process): the rows
land in the database exactly as the scenario says, the summary says so, and the JSON result agrees.
The summary and the progress line are also checked here as text (their modules import no Locust)."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import sigv4_proxy.loadtest
from tests.loadtest.conftest import skip_unless_runnable

skip_unless_runnable()

from sigv4_proxy.emulate.dsql.server import DsqlEmulator  # noqa: E402
from sigv4_proxy.loadtest.progress import ProgressLine, ProgressSample, format_progress  # noqa: E402
from sigv4_proxy.loadtest.results import (  # noqa: E402
    OP_CONNECT,
    OP_TRANSACTION,
    AuthFailure,
    ErrorCount,
    LoadtestResult,
    OperationLatency,
    TimePoint,
)
from sigv4_proxy.loadtest.schema import PAYLOAD_BYTES  # noqa: E402
from sigv4_proxy.loadtest.summary import render_summary  # noqa: E402
from tests.loadtest.conftest import (  # noqa: E402
    RUN_TIMEOUT,
    Cast,
    Run,
    connect,
    count_run_rows,
    identity_env,
    target_args,
)

_RUN_ID = re.compile(r"^lt-\d{8}T\d{6}Z-[0-9a-f]{8}$")


def _operation(run: Run, name: str) -> dict[str, Any]:
    assert run.report is not None, run.describe()
    return next(op for op in run.report["operations"] if op["name"] == name)


def test_scenario_single_against_its_own_emulator_inserts_10_rows(loadtest: Callable[..., Run]) -> None:
    run = loadtest("--users", "5", "--iterations", "2")  # --emulate is the default

    assert run.returncode == 0, run.describe()
    lines = run.summary_lines
    assert lines[0].startswith("DSQL load test: single scenario against emulate dsql ("), run.describe()
    assert "  shape       5 users × 2 iterations × 1 row per transaction" in lines
    assert "  rows        expected 10, committed 10, counted in the database 10 (match)" in lines
    assert "  errors by SQLSTATE: none" in lines
    assert "  refused logins: none" in lines
    assert lines[-1] == "PASSED"
    report = run.report
    assert report is not None
    assert (report["ok"], report["rows_expected"], report["rows_committed"], report["rows_counted"]) == (
        True,
        10,
        10,
        10,
    )
    assert (report["transactions"], report["transactions_failed"], report["workers"]) == (10, 0, 0)
    assert _RUN_ID.match(report["run_id"]), report["run_id"]
    assert (_operation(run, OP_CONNECT)["count"], _operation(run, OP_CONNECT)["failures"]) == (5, 0)
    assert sum(count for _, count in _operation(run, OP_TRANSACTION)["histogram"]) == 10
    # the live progress line (stderr is not a terminal: whole lines), its last one with the final numbers
    progress = [line for line in run.stderr.splitlines() if line.startswith("rows ")]
    assert progress, run.describe()
    assert progress[-1].startswith("rows 10/10 · "), progress
    assert progress[-1].endswith(" · errors 0 · OCC retries 0 · users 0/5"), progress


def test_scenario_batch_against_the_test_emulator_inserts_100_counted_rows(
    loadtest: Callable[..., Run], dsql: DsqlEmulator, cast: Cast, fresh_table: Callable[[str], str]
) -> None:
    table = fresh_table("batch")
    run = loadtest(
        *target_args(dsql), "--scenario", "batch", "--users", "5", "--iterations", "2", "--table", table,
        identity=cast.admin,
    )  # fmt: skip

    assert run.returncode == 0, run.describe()
    assert "  shape       5 users × 2 iterations × 10 rows per transaction" in run.summary_lines
    assert "  rows        expected 100, committed 100, counted in the database 100 (match)" in run.summary_lines
    assert run.summary_lines[-1] == "PASSED"
    report = run.report
    assert report is not None
    assert report["target"] == f"admin@{dsql.host}:{dsql.port} via {dsql.listen_host}/postgres"
    assert (report["rows_counted"], report["transactions"], report["rows_per_transaction"]) == (100, 10, 10)
    # counted by the test itself: this run's rows, each a whole event row
    assert count_run_rows(dsql, cast.admin, table, report["run_id"]) == 100
    with connect(dsql, "admin", cast.admin) as conn:
        shape = conn.execute(
            f"SELECT count(DISTINCT id), min(length(payload)), max(length(payload)), count(DISTINCT event_type) "
            f"FROM {table} WHERE run_id = %s",
            (report["run_id"],),
        ).fetchone()
    assert shape[:3] == (100, PAYLOAD_BYTES, PAYLOAD_BYTES)
    assert shape[3] >= 2  # realistic rows: several event types


def test_through_sigv4_proxy_pg_the_users_send_no_token_and_the_rows_land(
    loadtest: Callable[..., Run],
    dsql: DsqlEmulator,
    cast: Cast,
    proxy_for: Callable[..., Any],
    fresh_table: Callable[[str], str],
) -> None:
    proxy = proxy_for(dsql, cast.admin)
    table = fresh_table("proxy")
    # No AWS credentials at all in the load test's environment: the proxy signs.
    run = loadtest("--via-proxy", f"127.0.0.1:{proxy.port()}", "--table", table, identity=None)

    assert run.returncode == 0, run.describe()
    assert "  rows        expected 10, committed 10, counted in the database 10 (match)" in run.summary_lines
    assert run.report is not None
    assert count_run_rows(dsql, cast.admin, table, run.report["run_id"]) == 10
    # one token per physical connection, minted by the proxy: the table's, the 5 users', the count's
    assert _operation(run, OP_CONNECT)["count"] == 5
    assert (proxy.counters()["connections_total"], proxy.counters()["tokens_minted"]) == (7, 7)


@pytest.mark.slow
def test_a_duration_run_stops_in_time_and_every_committed_row_is_counted(
    loadtest: Callable[..., Run], dsql: DsqlEmulator, cast: Cast, fresh_table: Callable[[str], str]
) -> None:
    table = fresh_table("duration")
    run = loadtest(
        *target_args(dsql), "--users", "3", "--duration", "2s", "--rate", "30", "--table", table,
        identity=cast.admin,
    )  # fmt: skip

    assert run.returncode == 0, run.describe()
    report = run.report
    assert report is not None
    assert report["rows_expected"] is None and report["iterations"] is None
    assert 2.0 <= report["duration_s"] < 4.0, report["duration_s"]
    committed = report["rows_committed"]
    assert 30 <= committed <= 90, committed  # 30 transactions/s for 2 s, give or take the first ones
    assert report["rows_counted"] == committed
    assert count_run_rows(dsql, cast.admin, table, report["run_id"]) == committed
    assert f"  rows        expected —, committed {committed}, counted in the database {committed} (match)" in (
        run.summary_lines
    )
    assert len(report["timeline"]) >= 2
    assert report["timeline"][-1]["users"] == 0


def test_locusts_own_command_line_runs_the_locustfile_against_its_own_emulator(tmp_path: Any) -> None:
    """`locust -f <the locustfile> --headless`: Locust's CLI, our options, the emulator it starts, the summary it
    logs when every user has run its iterations (and then it stops by itself)."""
    locustfile = Path(sigv4_proxy.loadtest.__file__).with_name("locustfile.py")
    command = [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "-u", "3", "-r", "3"]
    done = subprocess.run(
        [*command, "--dsql-iterations", "2", "--dsql-scenario", "batch", "--dsql-batch-size", "4"],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env=identity_env(None),
        cwd=tmp_path,
    )
    log = done.stderr.splitlines()
    assert done.returncode == 0, done.stderr
    assert "  shape       3 users × 2 iterations × 4 rows per transaction" in log, done.stderr
    assert "  rows        expected 24, committed 24, counted in the database 24 (match)" in log
    assert "PASSED" in log
    started = r"loadtest: emulate dsql started for [a-z0-9]{26}\.dsql\.us-east-1\.on\.aws on 127\.0\.0\.1:\d+$"
    assert re.search(started, done.stderr, re.MULTILINE), done.stderr


# -- the summary and the progress line as text -------------------------------------------------------------------


def _result(**changes: Any) -> LoadtestResult:
    values: dict[str, Any] = {
        "scenario": "single",
        "users": 5,
        "iterations": 2,
        "rows_per_transaction": 1,
        "target": "emulate dsql (abc.dsql.us-east-1.on.aws)",
        "table": "event_headers",
        "run_id": "lt-20250115T120000Z-0123abcd",
        "started_at": "2025-01-15T12:00:00Z",
        "duration_s": 1.25,
        "workers": 0,
        "rows_expected": 10,
        "rows_committed": 10,
        "rows_counted": 10,
        "transactions": 10,
        "transactions_failed": 0,
        "rows_per_s": 8.0,
        "transactions_per_s": 8.0,
        "operations": (
            OperationLatency(OP_CONNECT, 5, 0, 12.0, 15.0, 15.0, 15.2, 12.5),
            OperationLatency(OP_TRANSACTION, 10, 0, 4.0, 6.0, 11.0, 11.4, 5.0),
        ),
        "errors": (),
        "occ_retries": 1,
        "occ_gave_up": 0,
        "auth_failures": (),
        "timeline": (TimePoint(1.0, 8.0, 8.0, 4.0, 11.0, 5, 0, 1),),
        "problems": (),
    }
    values.update(changes)
    return LoadtestResult(**values)


def test_the_summary_of_a_passed_run() -> None:
    assert render_summary(_result()) == "\n".join(
        [
            "DSQL load test: single scenario against emulate dsql (abc.dsql.us-east-1.on.aws)",
            "",
            "  shape       5 users × 2 iterations × 1 row per transaction",
            "  table       event_headers (run lt-20250115T120000Z-0123abcd)",
            "  rows        expected 10, committed 10, counted in the database 10 (match)",
            "  throughput  8.0 rows/s, 8.0 transactions/s over 1.25 s (10 transactions, 0 failed)",
            "  OCC         1 conflict retried, 0 gave up",
            "",
            "  latency (ms)     count  failed      p50      p95      p99      max",
            "  connect              5       0       12       15       15       15",
            "  transaction         10       0        4        6       11       11",
            "",
            "  errors by SQLSTATE: none",
            "",
            "  refused logins: none",
            "",
            "PASSED",
        ]
    )


def test_the_summary_of_a_failed_run_lists_errors_refused_logins_and_problems() -> None:
    result = _result(
        workers=2,
        rows_committed=0,
        rows_counted=0,
        transactions=0,
        operations=(OperationLatency(OP_CONNECT, 10, 10, 3.0, 4.5, 4.5, 4.5, 3.2),),
        errors=(ErrorCount("08006", 10, OP_CONNECT, "unable to accept connection, access denied"),),
        auth_failures=(
            AuthFailure(
                "08006",
                "unable to accept connection, access denied\nHINT: Wrong user to action mapping.",
                10,
                ("error: the token is for DbConnect, user admin needs DbConnectAdmin",),
            ),
        ),
        problems=("rows missing: 0 of the 10 expected are in the database", "10 logins refused (08006 ...)"),
    )
    lines = render_summary(result).splitlines()
    assert "  workers     2" in lines
    assert "  rows        expected 10, committed 0, counted in the database 0 (MISMATCH)" in lines
    assert "  transaction          0       0        —        —        —        —" in lines
    assert "    08006  connect         10 × unable to accept connection, access denied" in lines
    refused = lines.index("  refused logins:")
    assert lines[refused + 1 : refused + 5] == [
        "    10 × 08006 unable to accept connection, access denied",
        "        HINT: Wrong user to action mapping.",
        "      diagnosis of the token sent:",
        "        error: the token is for DbConnect, user admin needs DbConnectAdmin",
    ]
    assert lines[-1] == (
        "FAILED: rows missing: 0 of the 10 expected are in the database; 10 logins refused (08006 ...)"
    )


def _sample(**changes: Any) -> ProgressSample:
    values: dict[str, Any] = {
        "rows": 60,
        "rows_expected": 100,
        "rows_per_s": 42.13,
        "p50_ms": 12.0,
        "p99_ms": 40.4,
        "errors": 0,
        "occ_retries": 1,
        "users": 5,
        "users_target": 5,
    }
    values.update(changes)
    return ProgressSample(**values)


def test_the_progress_line() -> None:
    assert format_progress(_sample()) == (
        "rows 60/100 · 42.1 rows/s · p50 12 ms · p99 40 ms · errors 0 · OCC retries 1 · users 5/5"
    )
    assert format_progress(_sample(rows_expected=None, p50_ms=None, p99_ms=2.25)) == (
        "rows 60 · 42.1 rows/s · p50 – ms · p99 2.2 ms · errors 0 · OCC retries 1 · users 5/5"
    )


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_line_is_rewritten_on_a_terminal_and_throttled_elsewhere() -> None:
    terminal = _Terminal()
    line = ProgressLine(terminal)
    line.update(_sample(rows=1))
    line.update(_sample(rows=2))
    line.close()
    assert terminal.getvalue() == (
        "\r" + format_progress(_sample(rows=1)) + "\x1b[K" + "\r" + format_progress(_sample(rows=2)) + "\x1b[K\n"
    )

    now = [100.0]
    plain = io.StringIO()
    line = ProgressLine(plain, interval=5.0, clock=lambda: now[0])
    for rows in range(1, 8):  # one sample a second
        line.update(_sample(rows=rows))
        now[0] += 1.0
    line.close()
    written = [text.split(" · ")[0] for text in plain.getvalue().splitlines()]
    assert written == ["rows 1/100", "rows 6/100", "rows 7/100"]  # at 0 s, at 5 s, and the last one at the end

    silent = ProgressLine(None)
    silent.update(_sample())
    silent.close()
