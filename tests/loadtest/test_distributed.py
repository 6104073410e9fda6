"""Distributed mode: a master and two workers, each its own process on loopback (Locust's master and workers).
The master spreads the users, merges the workers' statistics and counters, counts the rows back and prints the
summary; the workers end when the master is done."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.loadtest.conftest import skip_unless_runnable

skip_unless_runnable()

from sigv4_proxy.emulate.dsql.server import DsqlEmulator  # noqa: E402
from sigv4_proxy.loadtest.results import OP_CONNECT, OP_TRANSACTION  # noqa: E402
from tests.loadtest.conftest import RUN_TIMEOUT, Cast, Run, count_run_rows, free_port, target_args  # noqa: E402

WORKER_EXIT_TIMEOUT = 30.0  # seconds for a worker to end once its master has
_ACCESS_KEY = re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")


def _run_distributed(
    start_loadtest: Callable[..., subprocess.Popen[str]],
    report_path: Path,
    master_args: list[str],
    identity: Any = None,
) -> tuple[Run, list[Run]]:
    port = str(free_port())
    master = start_loadtest(
        "--master", "--master-port", port, "--expect-workers", "2", *master_args, "--report", str(report_path),
        identity=identity,
    )  # fmt: skip
    workers = [start_loadtest("--worker", "--master-port", port, identity=identity) for _ in range(2)]
    stdout, stderr = master.communicate(timeout=RUN_TIMEOUT)
    report = json.loads(report_path.read_text()) if report_path.exists() else None
    master_run = Run(master.returncode, stdout, stderr, report)
    worker_runs = []
    for worker in workers:
        out, err = worker.communicate(timeout=WORKER_EXIT_TIMEOUT)
        worker_runs.append(Run(worker.returncode, out, err, None))
    return master_run, worker_runs


def _operation(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(op for op in report["operations"] if op["name"] == name)


@pytest.mark.slow
def test_a_master_and_two_workers_insert_exactly_the_expected_rows(
    start_loadtest: Callable[..., subprocess.Popen[str]],
    dsql: DsqlEmulator,
    cast: Cast,
    fresh_table: Callable[[str], str],
    tmp_path: Path,
) -> None:
    table = fresh_table("distributed")
    master, workers = _run_distributed(
        start_loadtest,
        tmp_path / "distributed.json",
        [*target_args(dsql), "--users", "6", "--iterations", "3", "--scenario", "batch", "--table", table],
        identity=cast.admin,  # every process signs with its own credentials (here the same identity)
    )

    assert master.returncode == 0, master.describe()
    assert [worker.returncode for worker in workers] == [0, 0], [worker.describe() for worker in workers]
    assert all("Traceback" not in worker.output for worker in workers), [worker.describe() for worker in workers]
    lines = master.summary_lines
    assert "  workers     2" in lines
    assert "  shape       6 users × 3 iterations × 10 rows per transaction" in lines
    assert "  rows        expected 180, committed 180, counted in the database 180 (match)" in lines
    assert lines[-1] == "PASSED"
    report = master.report
    assert report is not None
    # Both workers' statistics reached the master: one connection per user, one transaction per iteration.
    assert (report["workers"], report["transactions"], report["transactions_failed"]) == (2, 18, 0)
    assert (_operation(report, OP_CONNECT)["count"], _operation(report, OP_TRANSACTION)["count"]) == (6, 18)
    assert count_run_rows(dsql, cast.admin, table, report["run_id"]) == 180


@pytest.mark.slow
def test_with_emulate_the_master_hands_its_emulator_and_identity_to_its_workers(
    start_loadtest: Callable[..., subprocess.Popen[str]], tmp_path: Path
) -> None:
    # No AWS credentials anywhere: the workers sign with the throwaway identity the master's emulator made.
    master, workers = _run_distributed(start_loadtest, tmp_path / "emulated.json", ["--users", "5"])

    assert master.returncode == 0, master.describe()
    assert [worker.returncode for worker in workers] == [0, 0], [worker.describe() for worker in workers]
    assert master.summary_lines[0].startswith("DSQL load test: single scenario against emulate dsql ("), (
        master.describe()
    )
    assert "  rows        expected 10, committed 10, counted in the database 10 (match)" in master.summary_lines
    assert "  workers     2" in master.summary_lines
    report = master.report
    assert report is not None
    assert (report["ok"], report["rows_counted"], _operation(report, OP_CONNECT)["count"]) == (True, 10, 5)
    # The identity travelled to the workers, never to any output (an access key only ever masked).
    for run in (master, *workers):
        assert _ACCESS_KEY.search(run.output) is None, run.describe()
        assert "X-Amz-Signature=" not in run.output
