#!/usr/bin/env python3
"""`sigv4-proxy loadtest dsql` benchmark: rows per second for both scenarios, at 5 and at 50 users, straight to
`emulate dsql` and through `sigv4-proxy pg`, in one run.

    python3 dev.py bench bench/loadtest.py       # or: .venv/bin/python bench/loadtest.py [--quick] [--repeat N]

One `emulate dsql` (rules dsql, as `loadtest dsql --emulate` runs it) serves every run; it, the proxy and every
load test are processes of their own, started through the CLI (`python -m sigv4_proxy.cli`), so none shares a
GIL (or gevent's patch) with another:

* **direct** — `loadtest dsql --hostname <cluster host> --hostaddr 127.0.0.1 --port <emulator>` with the
  emulator's CA: every user's connection mints its own token and does TLS `verify-full` with SNI itself;
* **via pg** — `loadtest dsql --via-proxy 127.0.0.1:<port>` to a `sigv4-proxy pg` in front of the same
  emulator (on uvloop when installed): the users log in in plain text on loopback with no password, and the
  proxy mints the tokens and does the TLS upstream.

Each run is the scenario at 5 and at 50 users: `single` (one row per transaction) and `batch` (`--batch-size 10`
rows per transaction), with `--transactions` transactions in all (default 3,000: 600 iterations per user at 5
users, 60 at 50), so that a run lasts a few seconds. The figures are read from `--report FILE.json`: rows/s and
transactions/s over the run, the transaction latency p50/p99, the connect p50, and the rows counted back in the
database against the rows expected (latencies are Locust's: whole milliseconds, rounded as its statistics bucket
them). `--repeat N` interleaves N runs of each cell and keeps the one with the most rows/s. Nothing is asserted
on timing: a run whose rows do not match, or that fails, is flagged in the table (and the exit status is 1).

Two sample summaries are printed at the end, as docs/loadtest.md shows them: the default `loadtest dsql`
(`--emulate`, scenario single, 5 × 2 = 10 rows) and `--scenario batch` (5 × 2 × 10 = 100 rows).
`--markdown-out FILE` also writes the table and the samples to FILE.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pg as pg_bench  # bench/pg.py: its child-process helpers and `sigv4-proxy pg` start-up
from sigv4_proxy.emulate.dsql.auth import Identity, generate_identity
from sigv4_proxy.loadtest.settings import SCENARIOS

USER_COUNTS = (5, 50)
BATCH_SIZE = 10
ROUTES = ("direct", "via pg")
RUN_TIMEOUT = 600.0


@dataclass(frozen=True)
class Route:
    """How a load test reaches the emulator: its target flags and its environment."""

    name: str
    flags: list[str]
    env: dict[str, str]


@dataclass(frozen=True)
class Run:
    """One load test's figures, from its JSON report."""

    scenario: str
    users: int
    iterations: int
    route: str
    ok: bool
    problems: tuple[str, ...]
    rows_expected: int | None
    rows_counted: int | None
    rows_per_s: float
    transactions_per_s: float
    tx_p50_ms: float
    tx_p99_ms: float
    connect_p50_ms: float
    duration_s: float
    errors: int
    occ_retries: int


# -- the servers ------------------------------------------------------------------------------------------------------


def _start_emulator(identity: Identity, workdir: Path) -> tuple[pg_bench.Child, Path]:
    """`emulate dsql` (rules dsql: the load test's default) for bench/pg.py's cluster host, with our identity."""
    identity_file = workdir / "identity"
    identity_file.touch(mode=0o600)
    identity_file.write_text(identity.spec() + "\n")
    tls_dir = workdir / "tls"
    port = pg_bench._free_port()
    arguments = ["emulate", "dsql", "--listen", f"127.0.0.1:{port}", "--cluster-id", pg_bench.CLUSTER_ID]
    arguments += ["--region", pg_bench.REGION, "--tls-dir", str(tls_dir), "--identity-file", str(identity_file)]
    arguments += ["--max-connections", "512"]
    child = pg_bench._spawn("emulate dsql", arguments, pg_bench._clean_env(), port, workdir)
    return child, tls_dir / "ca.pem"


@contextmanager
def _routes(workdir: Path) -> Iterator[dict[str, Route]]:
    """The emulator and a proxy in front of it, running; the two ways the load tests reach them."""
    identity = generate_identity()
    credentials = {"AWS_ACCESS_KEY_ID": identity.access_key_id, "AWS_SECRET_ACCESS_KEY": identity.secret_access_key}
    with ExitStack() as stack:
        emulator, ca_file = _start_emulator(identity, workdir)
        stack.callback(emulator.stop)
        loop = "uvloop" if pg_bench._has_uvloop() else "asyncio"
        proxy = pg_bench._start_proxy(loop, identity, emulator, ca_file, workdir)
        stack.callback(proxy.stop)
        direct = ["--hostname", pg_bench.HOST, "--hostaddr", "127.0.0.1", "--port", str(emulator.port)]
        direct += ["--sslrootcert", str(ca_file)]
        yield {
            "direct": Route("direct", direct, {**pg_bench._clean_env(), **credentials}),
            "via pg": Route("via pg", ["--via-proxy", f"127.0.0.1:{proxy.port}"], pg_bench._clean_env()),
        }


# -- the load tests ---------------------------------------------------------------------------------------------------


def _loadtest(arguments: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "sigv4_proxy.cli", "loadtest", "dsql", "--no-progress", *arguments]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)


def _run(route: Route, scenario: str, users: int, iterations: int, workdir: Path) -> Run:
    report = workdir / f"run-{scenario}-{users}-{route.name.replace(' ', '-')}.json"
    report.unlink(missing_ok=True)
    arguments = [*route.flags, "--scenario", scenario, "--users", str(users), "--iterations", str(iterations)]
    if scenario == "batch":  # the CLI refuses --batch-size with single, which inserts one row per transaction
        arguments += ["--batch-size", str(BATCH_SIZE)]
    arguments += ["--report", str(report)]
    done = _loadtest(arguments, route.env)
    if not report.exists():  # exit 1 still writes the report; anything else is a failure to run at all
        raise RuntimeError(
            f"loadtest dsql ({route.name}, {scenario}, {users} users) exited {done.returncode} without a report:\n"
            f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        )
    return _figures(json.loads(report.read_text()), route.name, iterations)


def _operation(data: dict[str, Any], name: str) -> dict[str, Any]:
    found = [operation for operation in data["operations"] if operation["name"] == name]
    return found[0] if found else {"p50_ms": float("nan"), "p99_ms": float("nan")}


def _figures(data: dict[str, Any], route: str, iterations: int) -> Run:
    transaction, connect = _operation(data, "transaction"), _operation(data, "connect")
    return Run(
        scenario=data["scenario"],
        users=data["users"],
        iterations=iterations,
        route=route,
        ok=data["ok"],
        problems=tuple(data["problems"]),
        rows_expected=data["rows_expected"],
        rows_counted=data["rows_counted"],
        rows_per_s=data["rows_per_s"],
        transactions_per_s=data["transactions_per_s"],
        tx_p50_ms=transaction["p50_ms"],
        tx_p99_ms=transaction["p99_ms"],
        connect_p50_ms=connect["p50_ms"],
        duration_s=data["duration_s"],
        errors=sum(error["count"] for error in data["errors"]),
        occ_retries=data["occ_retries"],
    )


def _measure(routes: dict[str, Route], args: argparse.Namespace, workdir: Path) -> dict[tuple[str, int, str], Run]:
    best: dict[tuple[str, int, str], Run] = {}
    for _ in range(args.repeat):  # interleaved, so a burst of other load hits one repeat of each
        for scenario in SCENARIOS:
            for users in USER_COUNTS:
                iterations = max(1, args.transactions // users)
                for name in ROUTES:
                    run = _run(routes[name], scenario, users, iterations, workdir)
                    print(
                        f"#   {scenario:6} {users:3} users × {iterations:4} {name:7} {run.rows_per_s:9,.0f} rows/s "
                        f"{run.transactions_per_s:7,.0f} tx/s p50 {run.tx_p50_ms:4.0f} ms p99 {run.tx_p99_ms:4.0f} ms "
                        f"rows {run.rows_counted}/{run.rows_expected} {'ok' if run.ok else 'FAILED'}",
                        flush=True,
                    )
                    key = (scenario, users, name)
                    if key not in best or (run.ok, run.rows_per_s) > (best[key].ok, best[key].rows_per_s):
                        best[key] = run
    return best


def _samples() -> list[tuple[str, str]]:
    """The summaries of the two documented scenarios, run as a user first would (`--emulate`, the defaults)."""
    samples = []
    env = pg_bench._clean_env()
    for flags in ([], ["--scenario", "batch"]):
        command = " ".join(["sigv4-proxy loadtest dsql", *flags])
        done = _loadtest(flags, env)
        samples.append((f"{command}  (exit {done.returncode})", done.stdout.rstrip()))
    return samples


# -- the report -------------------------------------------------------------------------------------------------------


def _table(best: dict[tuple[str, int, str], Run]) -> str:
    lines = [
        "| scenario | users × iterations × rows | route | rows/s | tx/s | tx p50 | tx p99 | connect p50 "
        "| rows counted / expected | run time |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for scenario in SCENARIOS:
        rows_per_tx = 1 if scenario == "single" else BATCH_SIZE
        for users in USER_COUNTS:
            direct = best[(scenario, users, "direct")]
            for name in ROUTES:
                run = best[(scenario, users, name)]
                share = "" if name == "direct" else f" ({run.rows_per_s / direct.rows_per_s:.0%})"
                lines.append(
                    f"| {scenario} | {users} × {run.iterations} × {rows_per_tx} | {name} "
                    f"| {run.rows_per_s:,.0f}{share} "
                    f"| {run.transactions_per_s:,.0f} | {run.tx_p50_ms:.0f} ms | {run.tx_p99_ms:.0f} ms "
                    f"| {run.connect_p50_ms:.0f} ms | {_rows(run)} | {run.duration_s:.1f} s{_verdict(run)} |"
                )
    return "\n".join(lines)


def _rows(run: Run) -> str:
    counted = "?" if run.rows_counted is None else f"{run.rows_counted:,}"
    expected = "?" if run.rows_expected is None else f"{run.rows_expected:,}"
    return f"{counted} / {expected}"


def _verdict(run: Run) -> str:
    extras = []
    if run.occ_retries:
        extras.append(f"{run.occ_retries} OCC retries")
    if not run.ok:
        extras.append("FAILED: " + "; ".join(run.problems))
    return f", {', '.join(extras)}" if extras else ""


def _header(args: argparse.Namespace, loop: str) -> str:
    return (
        f"loadtest dsql benchmark — {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, `emulate dsql` (rules dsql) and `sigv4-proxy pg` ({loop}) each in its own process, "
        f"{args.transactions:,} transactions per run, batch size {BATCH_SIZE}, best of {args.repeat}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 300 transactions per run")
    parser.add_argument("--repeat", type=int, default=1, help="runs per cell, interleaved; the most rows/s is kept")
    parser.add_argument("--transactions", type=int, default=3000, help="transactions per run, over all users")
    parser.add_argument("--markdown-out", type=Path, help="also write the header, the table and the samples here")
    args = parser.parse_args(argv)
    if args.quick:
        args.transactions = 300
    loop = "uvloop" if pg_bench._has_uvloop() else "asyncio"
    start_load = pg_bench._load()
    print(f"# {_header(args, loop)}; {start_load}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-loadtest-") as scratch:
        workdir = Path(scratch)
        with _routes(workdir) as routes:
            best = _measure(routes, args, workdir)
        samples = _samples()
    end_load = pg_bench._load()
    table = _table(best)
    sample_text = "\n\n".join(f"`{command}`:\n\n```\n{summary}\n```" for command, summary in samples)
    print()
    print(table)
    print()
    print(f"# {end_load} at the end of the measurements")
    print()
    print(sample_text)
    if args.markdown_out is not None:
        loads = f"{start_load} at the start, {end_load} at the end"
        args.markdown_out.write_text(f"{_header(args, loop)}; {loads}\n\n{table}\n\n{sample_text}\n")
    failed = [run for run in best.values() if not run.ok]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
