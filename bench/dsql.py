#!/usr/bin/env python3
"""`emulate dsql` benchmark: connection set-up, and pgbench through the emulator beside the same PostgreSQL direct.

    python3 dev.py bench bench/dsql.py        # or: .venv/bin/python bench/dsql.py [--quick] [--strict]

One embedded PostgreSQL serves every contender in the run:

* **direct** — pgbench on the backend's unix socket as `admin` (no TLS), at REPEATABLE READ as DSQL runs;
* **emulate dsql, rules off** — pgbench over TLS (libpq, `sslmode=require`, a DSQL token as the password) through
  an emulator attached to that backend with `--rules off`: the TLS relay alone;
* **emulate dsql, rules dsql** — the same through an emulator with DSQL's rules (every statement classified,
  backend messages scanned, the row/size/age triggers active).

pgbench runs TPC-B-like and select-only, 4 clients, `-M simple`, retrying serialization failures
(`--max-tries`), saturated and at a fixed `--rate 500`. Added latency per statement = (emulated − direct) mean
latency at 500 TPS ÷ statements per transaction (7 for TPC-B, 1 for select-only).

Connection set-up: sequential psycopg logins (TLS + token check + backend session) per second with p50/p99, and
the in-process cost of the token check alone (`check_token`, µs).

Targets (issue 11): TPC-B saturated ≥ 60% of direct with rules off and ≥ 50% with rules dsql; added latency per
statement at 500 TPS ≤ 100 µs with rules dsql; token verification ≤ 50 µs of the set-up cost.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sigv4_proxy.emulate.dsql.server import DsqlEmulator, DsqlEmulatorConfig, start_dsql

STATEMENTS = {"tpcb": 7, "select": 1}
SCALE = 10
CLIENTS = 4


@dataclass(frozen=True)
class PgbenchResult:
    tps: float
    latency_ms: float
    failures: int


def _pgbench_bin() -> Path:
    """A pgbench built with SSL (the wheel's is not, and the emulator is TLS-only): the machine's own."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.emulate_dsql.tools import ssl_capable

    found = ssl_capable("pgbench")
    if found is None:
        raise SystemExit("bench/dsql.py needs a pgbench built with SSL (Debian: apt-get install postgresql-contrib)")
    return found


def _direct_env(emulator: DsqlEmulator) -> dict[str, str]:
    path, host, port = emulator.backend.session_address()
    env = {**os.environ, "PGUSER": "admin", "PGDATABASE": "postgres"}
    if path is not None:
        env["PGHOST"] = str(Path(path).parent)
        env["PGPORT"] = Path(path).name.rsplit(".", 1)[-1]
    else:
        env["PGHOST"], env["PGPORT"] = host, str(port)
    env["PGOPTIONS"] = "-c default_transaction_isolation=repeatable\\ read"
    return env


def _emulated_env(emulator: DsqlEmulator) -> dict[str, str]:
    return {
        **os.environ,
        "PGHOST": emulator.host,
        "PGHOSTADDR": emulator.listen_host,
        "PGPORT": str(emulator.port),
        "PGUSER": "admin",
        "PGDATABASE": "postgres",
        "PGSSLMODE": "require",
        "PGPASSWORD": emulator.token("admin", expires_in=3600),
    }


def _pgbench(env: dict[str, str], kind: str, seconds: int, rate: int | None) -> PgbenchResult:
    command = [str(_pgbench_bin()), "-n", "-M", "simple", "-c", str(CLIENTS), "-j", "2", "-T", str(seconds)]
    command += ["--max-tries", "1000"]
    if kind == "select":
        command.append("-S")
    if rate:
        command += ["-R", str(rate)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 120)
    if done.returncode != 0:
        raise RuntimeError(f"pgbench failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    tps = float(_match(r"tps = ([0-9.]+)", done.stdout))
    latency = float(_match(r"latency average = ([0-9.]+) ms", done.stdout))
    failed = re.search(r"number of failed transactions: ([0-9]+)", done.stdout)
    return PgbenchResult(tps, latency, int(failed.group(1)) if failed else 0)


def _match(pattern: str, text: str) -> str:
    found = re.search(pattern, text)
    if not found:
        raise RuntimeError(f"pgbench output lacks {pattern!r}:\n{text}")
    return found.group(1)


def _initialise(emulator: DsqlEmulator) -> None:
    done = subprocess.run(
        [str(_pgbench_bin()), "-i", "-q", "-s", str(SCALE)],
        env={**_direct_env(emulator), "PGOPTIONS": ""},
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"pgbench -i failed:\n{done.stderr}")


def _connection_setup(emulator: DsqlEmulator, count: int) -> tuple[float, float, float]:
    import psycopg

    params = emulator.libpq_params("admin")
    params["sslmode"] = "require"
    timings = []
    started = time.perf_counter()
    for _ in range(count):
        begin = time.perf_counter()
        with psycopg.connect(**params) as conn:
            conn.execute("SELECT 1")
        timings.append(time.perf_counter() - begin)
    total = time.perf_counter() - started
    timings.sort()
    return count / total, statistics.median(timings) * 1e3, timings[int(len(timings) * 0.99) - 1] * 1e3


def _token_check_us(emulator: DsqlEmulator, rounds: int) -> float:
    from sigv4_proxy.emulate.dsql.auth import check_token

    token = emulator.token("admin")
    identities = {identity.access_key_id: identity for identity in emulator.identities}
    now = datetime.now(timezone.utc)
    best = float("inf")
    for _ in range(5):
        begin = time.perf_counter()
        for _ in range(rounds):
            verdict = check_token(
                token,
                user="admin",
                token_host=emulator.host,
                cluster=emulator.cluster,
                identities=identities,
                denied=frozenset(),
                now=now,
            )
        best = min(best, (time.perf_counter() - begin) / rounds)
        assert verdict.ok
    return best * 1e6


@contextmanager
def _emulators() -> Iterator[tuple[DsqlEmulator, DsqlEmulator, DsqlEmulator]]:
    """rules dsql (embedded PostgreSQL), rules off and rules dsql on asyncio's own loop (both attached to it)."""
    with ExitStack() as stack:
        dsql = stack.enter_context(start_dsql(DsqlEmulatorConfig(rules="dsql")))
        attached = DsqlEmulatorConfig(
            postgres_url=dsql.superuser_dsn, identities=dsql.identities, cluster_id=dsql.cluster_id
        )
        off = stack.enter_context(start_dsql(dataclasses.replace(attached, rules="off")))
        os.environ["SIGV4_PROXY_EVENT_LOOP"] = "asyncio"
        try:
            plain_loop = stack.enter_context(start_dsql(attached))
        finally:
            del os.environ["SIGV4_PROXY_EVENT_LOOP"]
        yield dsql, off, plain_loop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (3 s each, 50 connections)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--seconds", type=int, default=10, help="seconds per pgbench run (default 10)")
    parser.add_argument("--rate", type=int, default=500, help="the fixed rate for the latency runs (default 500)")
    args = parser.parse_args(argv)
    seconds = 3 if args.quick else args.seconds
    connections = 50 if args.quick else 300
    print(
        f"# emulate dsql benchmark — {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, pgbench -c {CLIENTS} -s {SCALE}, {seconds} s per run",
        flush=True,
    )
    missed: list[str] = []
    with _emulators() as (dsql, off, plain_loop):
        _initialise(dsql)
        contenders = {
            "direct": _direct_env(dsql),
            "rules off": _emulated_env(off),
            "rules dsql": _emulated_env(dsql),
            "rules dsql, asyncio loop": _emulated_env(plain_loop),
        }
        results: dict[tuple[str, str, str], PgbenchResult] = {}
        for kind in ("tpcb", "select"):
            for mode, rate in (("saturated", None), (f"rate {args.rate}", args.rate)):
                for name, env in contenders.items():
                    results[(kind, mode, name)] = _pgbench(env, kind, seconds, rate)
        setup = {
            name: _connection_setup(emulator, connections)
            for name, emulator in (("rules off", off), ("rules dsql", dsql))
        }
        verify_us = _token_check_us(dsql, 2000)
    print()
    emulated = [name for name in contenders if name != "direct"]
    print("| workload | run | direct | " + " | ".join(emulated) + " |")
    print("|---|---|---|" + "---|" * len(emulated))
    for kind in ("tpcb", "select"):
        saturated = {name: results[(kind, "saturated", name)] for name in contenders}
        direct_tps = saturated["direct"].tps
        cells = [f"{saturated['direct'].tps:,.0f} TPS"] + [
            f"{saturated[name].tps:,.0f} TPS ({saturated[name].tps / direct_tps:.0%})" for name in emulated
        ]
        print(f"| {kind} | saturated | " + " | ".join(cells) + " |")
        fixed = {name: results[(kind, f"rate {args.rate}", name)] for name in contenders}
        added = {
            name: (fixed[name].latency_ms - fixed["direct"].latency_ms) * 1000 / STATEMENTS[kind] for name in emulated
        }
        cells = [f"{fixed['direct'].latency_ms * 1000:,.0f} µs/txn"] + [
            f"{fixed[name].latency_ms * 1000:,.0f} µs/txn (+{added[name]:,.0f} µs/stmt)" for name in emulated
        ]
        print(f"| {kind} | rate {args.rate} | " + " | ".join(cells) + " |")
        failures = sum(result.failures for (k, _, _), result in results.items() if k == kind)
        if failures:
            print(f"| {kind} | failed transactions | {failures} | | |")
        if kind == "tpcb":
            if saturated["rules off"].tps < 0.6 * direct_tps:
                missed.append("TPC-B rules off < 60% of direct")
            if saturated["rules dsql"].tps < 0.5 * direct_tps:
                missed.append("TPC-B rules dsql < 50% of direct")
            if added["rules dsql"] > 100:
                missed.append("added latency per statement at 500 TPS > 100 µs (rules dsql)")
    print()
    print("| connection set-up | logins/s | p50 | p99 |")
    print("|---|---|---|---|")
    for name, (rate, p50, p99) in setup.items():
        print(f"| {name} | {rate:,.0f} | {p50:.2f} ms | {p99:.2f} ms |")
    print(f"| token check alone (`check_token`) | {1e6 / verify_us:,.0f}/s | {verify_us:.1f} µs | |")
    if verify_us > 50:
        missed.append("token verification > 50 µs")
    print()
    print("targets missed: " + ("; ".join(missed) if missed else "none"))
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
