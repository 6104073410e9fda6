#!/usr/bin/env python3
"""Which PostgreSQL driver cooperates with Locust's gevent: the measurement behind `sigv4-proxy loadtest dsql`'s
choice of psycopg 3.

    python3 dev.py bench bench/loadtest_drivers.py   # or: .venv/bin/python bench/loadtest_drivers.py [--quick]

Locust runs its users as greenlets: `import locust` monkey-patches the process (sockets, select, threads), and a
driver only cooperates when it waits on the network through what gevent patched. Every contender runs in a child
process of its own, with the patch applied first (`import locust`, exactly as a load test does), against one
`emulate dsql` (rules dsql, TLS `verify-full` with SNI, a fresh DSQL token per connection) that runs in another
child: the emulator must not run under gevent itself.

* **psycopg 3, imported after the patch** — the choice. psycopg ≥ 3.2 sees gevent's patched `select` when it is
  imported and waits with `wait_poll` (through the patch) instead of its C `wait_c`;
* **psycopg 3, imported before the patch** — the same driver with the import order reversed: `wait_c` was chosen
  at import and calls poll(2) from C, blocking the gevent hub. Why the engine imports locust first;
* **pg8000** — pure Python over the patched `socket`; it sends the host it dials as SNI, so it is given a socket
  already connected to the emulator's loopback port and the cluster host name for TLS (SNI and the certificate
  check), which libpq does with `hostaddr`;
* **asyncpg** — needs an asyncio loop and never waits through gevent, so it cannot run inside Locust's users: they
  share one thread, and while one user's `asyncio.run()` waits, the next one's raises "cannot be called from a
  running event loop". The peer: measured on its own asyncio loop with 20 tasks, the figure a driver with no
  gevent in the way reaches. asyncio sends the dialed address as SNI, so its SSL context puts the cluster host
  name back.

Measured for each, on 20 concurrent connections (greenlets; tasks for asyncpg):
(a) concurrency proof: each connection runs `SELECT pg_sleep(0.2)` at once — about 0.2 s when the driver
    cooperates, about 20 × 0.2 = 4 s when it blocks the hub; also the wall time of opening the 20 connections;
(b) throughput: each connection runs N single-row INSERT transactions (BEGIN, INSERT, COMMIT: three round trips for
    every driver) — transactions per second and the per-transaction p50/p99;
(c) connect time: sequential connects (token, TCP, TLS, login), p50;
and the driver process's CPU time per transaction during (b).

`--repeat N` runs every contender N times, interleaved, and keeps each one's best figures. No figure is asserted:
the table is printed (and written to `--markdown-out FILE` when given) for docs/loadtest.md.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

# Module level imports the standard library only, and not ssl: the driver children apply gevent's patch before
# anything that touches the network is imported (gevent warns about an ssl imported before it).

DRIVERS = ("psycopg", "psycopg-early", "pg8000", "asyncpg")
LABELS = {
    "psycopg": "psycopg 3, imported after the patch (the choice)",
    "psycopg-early": "psycopg 3, imported before the patch",
    "pg8000": "pg8000 (pure Python)",
    "asyncpg": "asyncpg, own asyncio loop (peer: not runnable in gevent users)",
}
CONNECTIONS = 20
SLEEP_SECONDS = 0.2
PAYLOAD = '{"source": "bench", "detail": "' + "x" * 240 + '"}'  # a few hundred bytes, as the load test's rows
CHILD_TIMEOUT = 600.0
T = TypeVar("T")


@dataclass(frozen=True)
class Target:
    """Where the emulator listens (no secret: the children mint their tokens from AWS_* in their environment)."""

    host: str  # the cluster host: SNI, the certificate check and the token name it
    hostaddr: str
    port: int
    region: str
    ca_file: str


@dataclass(frozen=True)
class DriverRun:
    """One contender's figures from one child run (times in seconds unless the name says ms)."""

    driver: str
    wait: str  # how it waits for the network: psycopg's chosen wait function, "patched socket", "asyncio"
    connect_concurrent_s: float  # opening the 20 connections at once
    sleep_wall_s: float  # 20 x pg_sleep(0.2) at once
    transactions: int
    transactions_per_s: float
    tx_p50_ms: float
    tx_p99_ms: float
    client_cpu_us_per_tx: float  # the driver process's CPU (user + system) per transaction: a load generator's limit
    connect_p50_ms: float  # sequential


# -- the parent: the emulator child, one child per driver, the table ------------------------------------------------


def _clean_env() -> dict[str, str]:
    """This environment without libpq's, AWS's or the event loop's variables: a child gets only what is set here."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PG", "AWS_")) and name not in ("SIGV4_PROXY_EVENT_LOOP", "PSYCOPG_WAIT_FUNC")
    }


def _run_driver(driver: str, target: Target, credentials: tuple[str, str], args: argparse.Namespace) -> DriverRun:
    env = {**_clean_env(), "AWS_ACCESS_KEY_ID": credentials[0], "AWS_SECRET_ACCESS_KEY": credentials[1]}
    command = [sys.executable, __file__, "--driver", driver, "--target", json.dumps(asdict(target))]
    command += ["--transactions", str(args.transactions), "--connects", str(args.connects)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT)
    if done.returncode != 0:
        raise RuntimeError(f"the {driver} child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return DriverRun(**json.loads(done.stdout.strip().splitlines()[-1]))


def _best(runs: list[DriverRun]) -> DriverRun:
    """Each figure at its least disturbed over the repeats: the fastest times, the most transactions per second."""
    fastest = min(runs, key=lambda run: run.tx_p50_ms)
    return DriverRun(
        driver=runs[0].driver,
        wait=runs[0].wait,
        connect_concurrent_s=min(run.connect_concurrent_s for run in runs),
        sleep_wall_s=min(run.sleep_wall_s for run in runs),
        transactions=runs[0].transactions,
        transactions_per_s=max(run.transactions_per_s for run in runs),
        tx_p50_ms=fastest.tx_p50_ms,
        tx_p99_ms=min(run.tx_p99_ms for run in runs),
        client_cpu_us_per_tx=min(run.client_cpu_us_per_tx for run in runs),
        connect_p50_ms=min(run.connect_p50_ms for run in runs),
    )


def _verdict(run: DriverRun) -> str:
    if run.driver == "asyncpg":
        return "no (asyncio)"
    # Cooperative: the 20 sleeps overlap. Blocking: they run one after another (20 x 0.2 s).
    return "yes" if run.sleep_wall_s < CONNECTIONS * SLEEP_SECONDS / 2 else "**no: blocks the hub**"


def _table(results: list[DriverRun], args: argparse.Namespace) -> str:
    lines = [
        f"| driver (waits with) | cooperates with gevent | {CONNECTIONS} × pg_sleep({SLEEP_SECONDS}) wall "
        f"| {CONNECTIONS} connects at once | tx/s ({CONNECTIONS} × {args.transactions}) | tx p50 | tx p99 "
        "| client CPU per tx | connect p50 (sequential) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in results:
        lines.append(
            f"| {LABELS[run.driver]} (`{run.wait}`) | {_verdict(run)} | {run.sleep_wall_s:.2f} s "
            f"| {run.connect_concurrent_s:.2f} s | {run.transactions_per_s:,.0f} | {run.tx_p50_ms:.1f} ms "
            f"| {run.tx_p99_ms:.1f} ms | {run.client_cpu_us_per_tx:,.0f} µs | {run.connect_p50_ms:.1f} ms |"
        )
    return "\n".join(lines)


NOTES = (
    "A blocking driver runs its users' transactions one after another: each one's latency looks low, but the "
    f"{CONNECTIONS} users together get one connection's throughput, and every greenlet (Locust's stats and progress "
    "included) stalls while one waits.",
    "asyncpg runs with no gevent at all (20 asyncio tasks): the figure a driver unhindered by gevent reaches here. "
    "It cannot run inside Locust's users: they share one thread, so while one user's asyncio.run() waits, the "
    "next one's fails with 'asyncio.run() cannot be called from a running event loop'.",
    "Client CPU per transaction is the driver process's own (user + system): what limits the load one Locust "
    "process can generate.",
)


def _header(args: argparse.Namespace) -> str:
    return (
        f"Locust/gevent driver benchmark — {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, `emulate dsql` (rules dsql) in its own process, {CONNECTIONS} connections, "
        f"{args.transactions} transactions each, {args.connects} sequential connects, best of {args.repeat}"
    )


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} {five:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (10 transactions, 10 connects)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per driver, interleaved; the best is kept")
    parser.add_argument("--transactions", type=int, default=50, help="INSERT transactions per connection")
    parser.add_argument("--connects", type=int, default=30, help="sequential connects for the connect p50")
    parser.add_argument("--drivers", default=",".join(DRIVERS), help=f"comma-separated subset of {DRIVERS}")
    parser.add_argument("--markdown-out", type=Path, help="also write the header and the table to this file")
    # internal: the children
    parser.add_argument("--driver", choices=DRIVERS, help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.driver:
        return _measure_in_child(args.driver, Target(**json.loads(args.target)), args)
    if args.quick:
        args.transactions, args.connects = 10, 10
    drivers = [name.strip() for name in args.drivers.split(",") if name.strip()]
    unknown = [name for name in drivers if name not in DRIVERS]
    if unknown:
        parser.error(f"unknown driver(s) {', '.join(unknown)}: choose from {', '.join(DRIVERS)}")
    start_load = _load()  # a shared 2-core machine's other work shows up here
    print(f"# {_header(args)}; {start_load}", flush=True)
    from sigv4_proxy.emulate.dsql.auth import parse_identity
    from sigv4_proxy.loadtest.emulated import start_emulator

    runs: dict[str, list[DriverRun]] = {driver: [] for driver in drivers}
    # The load test's own emulator child (never in a gevent process), with its throwaway identity.
    with start_emulator() as info:
        identity = parse_identity(info.identity)
        target = Target(info.host, info.listen_host, info.port, info.region, info.ca_file)
        for _ in range(args.repeat):  # interleaved, so a burst of other load hits one repeat of each
            for driver in drivers:
                run = _run_driver(driver, target, (identity.access_key_id, identity.secret_access_key), args)
                print(f"#   {json.dumps(asdict(run))}", flush=True)
                runs[driver].append(run)
    table = _table([_best(repeats) for repeats in runs.values()], args)
    notes = "\n".join(f"- {note}" for note in NOTES)
    print()
    print(table)
    print()
    print(notes)
    if args.markdown_out is not None:
        loads = f"{start_load} at the start, {_load()} at the end"
        args.markdown_out.write_text(f"{_header(args)}; {loads}\n\n{table}\n\n{notes}\n")
    return 0


# -- a driver child ----------------------------------------------------------------------------------------------------


def _measure_in_child(driver: str, target: Target, args: argparse.Namespace) -> int:
    if driver == "asyncpg":
        import asyncio

        run = asyncio.run(_measure_asyncpg(target, args.transactions, args.connects))
    else:
        run = _measure_greenlets(_sync_driver(driver, target), args.transactions, args.connects)
    print(json.dumps(asdict(run)), flush=True)
    return 0


def _token(target: Target) -> str:
    from sigv4_proxy.credentials import Credentials
    from sigv4_proxy.tokens import dsql_token

    credentials = Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
    return dsql_token(target.host, target.region, admin=True, credentials=credentials)


def _insert_sql(table: str, placeholders: str) -> str:
    return f"INSERT INTO {table} (worker, n, payload) VALUES ({placeholders})"


def _create_sql(table: str) -> str:
    return f"CREATE TABLE {table} (worker int, n int, payload text, PRIMARY KEY (worker, n))"


def _table_name(driver: str) -> str:
    return f"bench_drivers_{driver.replace('-', '_')}_{os.getpid()}"


class SyncDriver:
    """What the gevent measurement needs from a blocking-API driver."""

    name: str
    wait: str

    def connect(self) -> Any:
        raise NotImplementedError

    def execute(self, conn: Any, sql: str) -> None:
        raise NotImplementedError

    def insert_transaction(self, conn: Any, table: str, worker: int, n: int) -> None:
        raise NotImplementedError

    def close(self, conn: Any) -> None:
        conn.close()


class PsycopgDriver(SyncDriver):
    def __init__(self, name: str, target: Target, psycopg: Any) -> None:
        import psycopg.waiting

        self.name, self.target, self.psycopg = name, target, psycopg
        self.wait = psycopg.waiting.wait.__name__

    def connect(self) -> Any:
        target = self.target
        return self.psycopg.connect(
            host=target.host,
            hostaddr=target.hostaddr,
            port=target.port,
            user="admin",
            dbname="postgres",
            password=_token(target),
            sslmode="verify-full",
            sslrootcert=target.ca_file,
            autocommit=True,
        )

    def execute(self, conn: Any, sql: str) -> None:
        conn.execute(sql)

    def insert_transaction(self, conn: Any, table: str, worker: int, n: int) -> None:
        with conn.transaction():  # BEGIN, INSERT, COMMIT
            conn.execute(_insert_sql(table, "%s, %s, %s"), (worker, n, PAYLOAD))


class Pg8000Driver(SyncDriver):
    wait = "patched socket"

    def __init__(self, target: Target) -> None:
        import pg8000.native  # type: ignore[import-untyped]

        self.name, self.target, self.native = "pg8000", target, pg8000.native

    def connect(self) -> Any:
        import socket
        import ssl

        target = self.target
        context = ssl.create_default_context(cafile=target.ca_file)  # verify-full: chain and host name
        # pg8000 uses `host` for SNI and the certificate check, and dials it unless given a socket: so it gets a
        # socket already connected to the loopback listener, and the cluster host as `host` (libpq's hostaddr).
        sock = socket.create_connection((target.hostaddr, target.port), timeout=30)
        return self.native.Connection(
            "admin",
            host=target.host,
            port=target.port,
            database="postgres",
            password=_token(target),
            ssl_context=context,
            sock=sock,
        )

    def execute(self, conn: Any, sql: str) -> None:
        conn.run(sql)

    def insert_transaction(self, conn: Any, table: str, worker: int, n: int) -> None:
        conn.run("BEGIN")
        conn.run(_insert_sql(table, ":worker, :n, :payload"), worker=worker, n=n, payload=PAYLOAD)
        conn.run("COMMIT")


def _sync_driver(driver: str, target: Target) -> SyncDriver:
    """The driver, imported in the order under test relative to gevent's patch (`import locust` applies it).
    import_module keeps the order as written (an import sorter would swap two import statements)."""
    if driver == "psycopg-early":
        psycopg = importlib.import_module("psycopg")  # before the patch: psycopg picks wait_c now
        importlib.import_module("locust")
        return PsycopgDriver(driver, target, psycopg)
    importlib.import_module("locust")  # the patch first, as the load test does
    if driver == "pg8000":
        return Pg8000Driver(target)
    return PsycopgDriver(driver, target, importlib.import_module("psycopg"))


def _concurrently(jobs: list[Callable[[], T]]) -> tuple[float, list[T]]:
    """Run the jobs as greenlets at once; the wall time until the last one ends, and their results."""
    import gevent  # type: ignore[import-untyped]

    begin = time.perf_counter()
    greenlets = [gevent.spawn(job) for job in jobs]
    gevent.joinall(greenlets, raise_error=True)
    return time.perf_counter() - begin, [greenlet.value for greenlet in greenlets]


def _measure_greenlets(driver: SyncDriver, transactions: int, connects: int) -> DriverRun:
    table = _table_name(driver.name)
    setup = driver.connect()
    driver.execute(setup, _create_sql(table))  # before the others open: a committed DDL fails their next statement
    connect_wall, connections = _concurrently([driver.connect for _ in range(CONNECTIONS)])
    sleep_wall, _ = _concurrently(
        [functools.partial(driver.execute, conn, f"SELECT pg_sleep({SLEEP_SECONDS})") for conn in connections]
    )

    def inserts(worker: int, conn: Any) -> list[float]:
        latencies = []
        for n in range(transactions):
            begin = time.perf_counter()
            driver.insert_transaction(conn, table, worker, n)
            latencies.append(time.perf_counter() - begin)
        return latencies

    cpu_before = time.process_time()
    insert_wall, per_worker = _concurrently(
        [functools.partial(inserts, worker, conn) for worker, conn in enumerate(connections)]
    )
    insert_cpu = time.process_time() - cpu_before
    for conn in connections:
        driver.close(conn)
    connect_times = [_timed_connect(driver) for _ in range(connects)]
    driver.execute(setup, f"DROP TABLE {table}")
    driver.close(setup)
    return _run(
        driver.name, driver.wait, connect_wall, sleep_wall, (insert_wall, insert_cpu), per_worker, connect_times
    )


def _timed_connect(driver: SyncDriver) -> float:
    """Seconds from nothing to a logged-in connection: the token, TCP, TLS and the login (not the close)."""
    begin = time.perf_counter()
    conn = driver.connect()
    elapsed = time.perf_counter() - begin
    driver.close(conn)
    return elapsed


def _run(
    name: str,
    wait: str,
    connect_wall: float,
    sleep_wall: float,
    insert_wall_cpu: tuple[float, float],
    per_worker: list[list[float]],
    connect_times: list[float],
) -> DriverRun:
    latencies = [latency for worker in per_worker for latency in worker]
    insert_wall, insert_cpu = insert_wall_cpu
    return DriverRun(
        driver=name,
        wait=wait,
        connect_concurrent_s=connect_wall,
        sleep_wall_s=sleep_wall,
        transactions=len(latencies),
        transactions_per_s=len(latencies) / insert_wall,
        tx_p50_ms=statistics.median(latencies) * 1e3,
        tx_p99_ms=_percentile(latencies, 0.99) * 1e3,
        client_cpu_us_per_tx=insert_cpu * 1e6 / len(latencies),
        connect_p50_ms=statistics.median(connect_times) * 1e3,
    )


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


# -- asyncpg, the peer on its own asyncio loop ------------------------------------------------------------------------


def _sni_context(target: Target) -> Any:
    """verify-full against the emulator's CA, naming the cluster host although asyncpg dials the loopback address
    (asyncio passes the dialed host as server_hostname: put the cluster host back, for SNI and the check)."""
    import ssl

    class SniContext(ssl.SSLContext):
        def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
            kwargs["server_hostname"] = target.host
            return super().wrap_bio(*args, **kwargs)

    context = SniContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(target.ca_file)
    return context


async def _measure_asyncpg(target: Target, transactions: int, connects: int) -> DriverRun:
    import asyncio

    import asyncpg  # type: ignore[import-untyped]

    context = _sni_context(target)

    async def connect() -> Any:
        return await asyncpg.connect(
            host=target.hostaddr,
            port=target.port,
            user="admin",
            database="postgres",
            password=_token(target),
            ssl=context,
        )

    async def timed(coroutine: Any) -> tuple[float, Any]:
        begin = time.perf_counter()
        value = await coroutine
        return time.perf_counter() - begin, value

    async def inserts(worker: int, conn: Any) -> list[float]:
        latencies = []
        for n in range(transactions):
            begin = time.perf_counter()
            async with conn.transaction():  # BEGIN, INSERT, COMMIT
                await conn.execute(_insert_sql(table, "$1, $2, $3"), worker, n, PAYLOAD)
            latencies.append(time.perf_counter() - begin)
        return latencies

    table = _table_name("asyncpg")
    setup = await connect()
    await setup.execute(_create_sql(table))
    connect_wall, connections = await timed(asyncio.gather(*(connect() for _ in range(CONNECTIONS))))
    sleep_wall, _ = await timed(
        asyncio.gather(*(conn.execute(f"SELECT pg_sleep({SLEEP_SECONDS})") for conn in connections))
    )
    cpu_before = time.process_time()
    insert_wall, per_worker = await timed(
        asyncio.gather(*(inserts(worker, conn) for worker, conn in enumerate(connections)))
    )
    insert_cpu = time.process_time() - cpu_before
    for conn in connections:
        await conn.close()
    connect_times = []
    for _ in range(connects):
        elapsed, conn = await timed(connect())
        await conn.close()
        connect_times.append(elapsed)
    await setup.execute(f"DROP TABLE {table}")
    await setup.close()
    walls = (insert_wall, insert_cpu)
    return _run("asyncpg", "asyncio", connect_wall, sleep_wall, walls, list(per_worker), connect_times)


if __name__ == "__main__":
    sys.exit(main())
