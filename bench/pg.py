#!/usr/bin/env python3
"""`sigv4-proxy pg` benchmark: PostgreSQL clients through the local auth proxy beside the same clients direct.

    python3 dev.py bench bench/pg.py          # or: .venv/bin/python bench/pg.py [--quick] [--seconds N] [--strict]

One `emulate dsql --rules off` (TLS, token check, then a relay to its embedded PostgreSQL) serves every contender
in the run. Every server is its own process, so none shares a GIL with another: the emulator and both proxies are
children started through the CLI, pgbench is a child, and only the psycopg clients run in this process.

* **direct** — the client speaks TLS (`verify-full` against the emulator's CA, SNI) to the emulator itself with a
  DSQL token as its password: a token per connection for psycopg, one for pgbench's four connections;
* **pg asyncio** — the client connects in plain text to `python -m sigv4_proxy.cli pg` on loopback with no
  password; the proxy dials the emulator with TLS and answers its password request with a token it mints per
  connection. `SIGV4_PROXY_EVENT_LOOP=asyncio`: the standard library's event loop;
* **pg uvloop** — the same proxy on uvloop (the `pg-proxy` extra's default when installed);
* **pg uvloop unix** — the same again, its clients coming over a unix socket (`--unix-socket`, a sidecar's usual
  set-up) instead of loopback TCP. The targets are judged on **pg uvloop** (TCP).

Measured: pgbench TPC-B-like and select-only (4 clients, scale 10, `-M simple`, serialization failures retried),
saturated and at a fixed `--rate 500`, with the proxy's CPU time (user + system, psutil) per transaction.
Added latency per statement round trip = (proxy − direct) mean latency at 500 TPS ÷ statements per transaction
(7 for TPC-B, 1 for select-only); pgbench counts a transaction's latency from its scheduled start, so the figure
includes the schedule lag a busy machine adds, and the figure without it is printed beside. Connect to first
query (psycopg connect + `SELECT 1`, sequential, contenders interleaved, p50/p95). COPY throughput with psycopg,
`COPY ... FROM STDIN` and `COPY ... TO STDOUT` of 100 MB of ~1 KiB rows into an UNLOGGED table (so the figure is
the wire path, not PostgreSQL's WAL), with the proxy's CPU per MB. The proxy's resident memory (psutil) at start
and with 64 idle connections open. `--profile` samples the default proxy with py-spy (`--native`) during one more
saturated TPC-B run and sums where its relay thread spends its time.

Targets (issue 12): TPC-B saturated ≥ 80% of direct; added latency ≤ 40 µs per statement round trip at 500 TPS;
added connect time ≤ 5 ms p50; COPY ≥ 90% of direct each way; RSS ≤ 80 MiB with 64 connections. They are judged
on the proxy's default loop (uvloop when installed); the asyncio column says what the extra buys. On a 2-core
machine every relay competes with pgbench, the emulator and PostgreSQL for CPU: the load average is printed at the
start and the end, and `--repeat N` keeps the best of N interleaved runs.
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dsql as dsql_bench  # bench/dsql.py: the SSL-capable pgbench and the workload's constants
from sigv4_proxy.credentials import Credentials
from sigv4_proxy.emulate.dsql.auth import Identity, generate_identity
from sigv4_proxy.tokens import dsql_token

REGION = "us-east-1"
CLUSTER_ID = "benchpgproxyabcdefghijklmn"  # 26 lower-case letters and digits, as DSQL's
HOST = f"{CLUSTER_ID}.dsql.{REGION}.on.aws"
KINDS = ("tpcb", "select")
LABELS = {"tpcb": "TPC-B-like", "select": "select-only"}
IDLE_CONNECTIONS = 64
COPY_ROW = b"x" * 1000  # ~1 KiB per row: one CopyData message per row out, so rows this size keep the wire busy
MIB = 1024 * 1024
START_TIMEOUT = 120.0
PROXY_THREAD = "sigv4-proxy-pg"  # the runner's loop thread, as py-spy names it
# libpq reads these from the environment: a contender's env starts without any of them.
_LIBPQ_VARIABLES = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGUSER", "PGDATABASE", "PGPASSWORD", "PGPASSFILE", "PGSSLMODE")
_LIBPQ_PREFIXES = ("PGSSL", "PGOPTIONS", "PGSERVICE", "PGTARGET", "PGCONNECT")


@dataclass
class Child:
    """A server started through the CLI: its process, the loopback port it serves and its stderr log."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    unix_dir: Path | None = None  # serving DIR/.s.PGSQL.<port> instead of the TCP port

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def cpu_seconds(self) -> float:
        import psutil

        times = psutil.Process(self.process.pid).cpu_times()
        return float(times.user + times.system)

    def rss_mib(self) -> float:
        import psutil

        return float(psutil.Process(self.process.pid).memory_info().rss) / MIB

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(40)  # the proxy drains for up to --max-sigterm-delay (set low below)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@dataclass
class Contender:
    """One way to reach the database: libpq parameters for psycopg (a fresh token per call for direct), the
    environment for pgbench, and the proxy process when there is one."""

    name: str
    params: Callable[[], dict[str, Any]]
    pgbench_env: dict[str, str]
    proxy: Child | None = None


@dataclass(frozen=True)
class PgbenchRun:
    tps: float
    latency_ms: float  # from each transaction's scheduled start: includes the schedule lag with --rate
    lag_ms: float  # --rate's schedule lag (0 when saturated)
    transactions: int
    failures: int
    proxy_cpu_us: float | None  # the proxy's CPU time per transaction (None: direct)


@dataclass
class Results:
    pgbench: dict[tuple[str, str, str], PgbenchRun] = field(default_factory=dict)
    connect: dict[str, tuple[float, float]] = field(default_factory=dict)  # p50, p95 in ms
    copy_in: dict[str, float] = field(default_factory=dict)  # MB/s
    copy_out: dict[str, float] = field(default_factory=dict)
    copy_cpu_ms_per_mb: dict[str, float] = field(default_factory=dict)  # the proxy's CPU, both directions
    rss_start: dict[str, float] = field(default_factory=dict)  # MiB
    rss_idle: dict[str, float] = field(default_factory=dict)


# -- the servers ---------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _clean_env() -> dict[str, str]:
    """This process's environment without libpq's or AWS's variables, so only what a contender sets applies."""
    return {
        name: value
        for name, value in os.environ.items()
        if name not in _LIBPQ_VARIABLES
        and not name.startswith(_LIBPQ_PREFIXES)
        and not name.startswith("AWS_")
        and name != "SIGV4_PROXY_EVENT_LOOP"
    }


def _wait_listening(child: Child) -> None:
    """Until the child accepts TCP on its port (it binds before it serves), or fails."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            raise RuntimeError(f"{child.name} exited ({child.process.returncode}):\n{child.log_tail()}")
        try:
            if child.unix_dir is not None:
                with socket.socket(socket.AF_UNIX) as probe:
                    probe.connect(str(child.unix_dir / f".s.PGSQL.{child.port}"))
            else:
                with socket.create_connection(("127.0.0.1", child.port), timeout=1):
                    pass
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{child.name} did not listen within {START_TIMEOUT:.0f} s:\n{child.log_tail()}")


def _spawn(
    name: str, arguments: list[str], env: dict[str, str], port: int, workdir: Path, unix_dir: Path | None = None
) -> Child:
    log = workdir / f"{name.replace(' ', '-').replace(',', '')}.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "sigv4_proxy.cli", *arguments],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=subprocess.STDOUT,
        )
    child = Child(name, process, port, log, unix_dir)
    try:
        _wait_listening(child)
    except BaseException:
        child.stop()
        raise
    return child


def _start_emulator(identity: Identity, workdir: Path) -> tuple[Child, Path]:
    """`emulate dsql --rules off` with our identity; returns the child and the CA file clients trust."""
    identity_file = workdir / "identity"
    identity_file.touch(mode=0o600)
    identity_file.write_text(identity.spec() + "\n")
    tls_dir = workdir / "tls"
    port = _free_port()
    arguments = ["emulate", "dsql", "--rules", "off", "--listen", f"127.0.0.1:{port}", "--cluster-id", CLUSTER_ID]
    arguments += ["--region", REGION, "--tls-dir", str(tls_dir), "--identity-file", str(identity_file)]
    arguments += ["--max-connections", "512"]
    child = _spawn("emulate dsql", arguments, _clean_env(), port, workdir)
    return child, tls_dir / "ca.pem"


def _start_proxy(
    loop: str, identity: Identity, emulator: Child, ca_file: Path, workdir: Path, *, unix: bool = False
) -> Child:
    """`sigv4-proxy pg` for the emulator's cluster host, dialling its loopback port, on the given event loop; its
    clients come over loopback TCP, or over a unix socket (a sidecar's usual set-up) with ``unix``."""
    env = {**_clean_env(), "AWS_ACCESS_KEY_ID": identity.access_key_id}
    env["AWS_SECRET_ACCESS_KEY"] = identity.secret_access_key
    env["SIGV4_PROXY_EVENT_LOOP"] = loop
    port = _free_port()
    arguments = ["pg", "--hostaddr", f"127.0.0.1:{emulator.port}"]
    arguments += ["--upstream-sslrootcert", str(ca_file), "--max-sigterm-delay", "2s"]
    if not unix:
        arguments += ["--hostname", HOST, "--listen", f"127.0.0.1:{port}"]
        return _spawn(f"pg {loop}", arguments, env, port, workdir)
    socket_dir = workdir / "socket"
    socket_dir.mkdir(mode=0o700, exist_ok=True)
    arguments += ["--hostname", f"{HOST}={port}", "--unix-socket", str(socket_dir)]
    return _spawn(f"pg {loop} unix", arguments, env, port, workdir, socket_dir)


# -- contenders ----------------------------------------------------------------------------------------------------


def _credentials(identity: Identity) -> Credentials:
    return Credentials(identity.access_key_id, identity.secret_access_key, identity.session_token)


def _direct(identity: Identity, emulator: Child, ca_file: Path) -> Contender:
    credentials = _credentials(identity)

    def params() -> dict[str, Any]:
        return {
            "host": HOST,
            "hostaddr": "127.0.0.1",
            "port": str(emulator.port),
            "user": "admin",
            "dbname": "postgres",
            "sslmode": "verify-full",
            "sslrootcert": str(ca_file),
            "password": dsql_token(HOST, REGION, admin=True, credentials=credentials),
        }

    env = {
        **_clean_env(),
        "PGHOST": HOST,
        "PGHOSTADDR": "127.0.0.1",
        "PGPORT": str(emulator.port),
        "PGUSER": "admin",
        "PGDATABASE": "postgres",
        "PGSSLMODE": "verify-full",
        "PGSSLROOTCERT": str(ca_file),
        # one password for every pgbench run: valid for DSQL's longest (a week), so a long --seconds never outlives it
        "PGPASSWORD": dsql_token(HOST, REGION, admin=True, expires_in=604800, credentials=credentials),
    }
    return Contender("direct", params, env)


def _through(proxy: Child) -> Contender:
    host = str(proxy.unix_dir) if proxy.unix_dir is not None else "127.0.0.1"

    def params() -> dict[str, Any]:
        return {
            "host": host,
            "port": str(proxy.port),
            "user": "admin",
            "dbname": "postgres",
            "sslmode": "disable",
        }

    env = {**_clean_env(), "PGUSER": "admin", "PGDATABASE": "postgres", "PGSSLMODE": "disable"}
    env |= {"PGHOST": host, "PGPORT": str(proxy.port)}
    return Contender(proxy.name, params, env, proxy)


@contextmanager
def _contenders(workdir: Path) -> Iterator[list[Contender]]:
    identity = generate_identity()
    with ExitStack() as stack:
        emulator, ca_file = _start_emulator(identity, workdir)
        stack.callback(emulator.stop)
        contenders = [_direct(identity, emulator, ca_file)]
        loops = ["asyncio"] + (["uvloop"] if _has_uvloop() else [])
        for loop in loops:
            proxy = _start_proxy(loop, identity, emulator, ca_file, workdir)
            stack.callback(proxy.stop)
            contenders.append(_through(proxy))
        unix = _start_proxy(loops[-1], identity, emulator, ca_file, workdir, unix=True)
        stack.callback(unix.stop)
        contenders.append(_through(unix))
        yield contenders


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        print("# uvloop is not installed: the 'pg uvloop' column is left out (pip install 'sigv4-proxy[pg-proxy]')")
        return False
    return True


# -- measurements --------------------------------------------------------------------------------------------------


def _initialise(direct: Contender) -> None:
    done = subprocess.run(
        [str(dsql_bench._pgbench_bin()), "-i", "-q", "-s", str(dsql_bench.SCALE)],
        env=direct.pgbench_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"pgbench -i failed:\n{done.stderr}")


def _pgbench(contender: Contender, kind: str, seconds: int, rate: int | None) -> PgbenchRun:
    """bench/dsql.py's pgbench command; also the schedule lag, the transaction count and the proxy's CPU."""
    command = [str(dsql_bench._pgbench_bin()), "-n", "-M", "simple", "-c", str(dsql_bench.CLIENTS), "-j", "2"]
    command += ["-T", str(seconds), "--max-tries", "1000"]
    if kind == "select":
        command.append("-S")
    if rate:
        command += ["-R", str(rate)]
    cpu_before = contender.proxy.cpu_seconds() if contender.proxy else 0.0
    done = subprocess.run(command, env=contender.pgbench_env, capture_output=True, text=True, timeout=seconds + 120)
    cpu = contender.proxy.cpu_seconds() - cpu_before if contender.proxy else None
    if done.returncode != 0:
        raise RuntimeError(f"pgbench failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    transactions = int(dsql_bench._match(r"number of transactions actually processed: ([0-9]+)", done.stdout))
    lag = re.search(r"rate limit schedule lag: avg ([0-9.]+)", done.stdout)
    failed = re.search(r"number of failed transactions: ([0-9]+)", done.stdout)
    return PgbenchRun(
        tps=float(dsql_bench._match(r"tps = ([0-9.]+)", done.stdout)),
        latency_ms=float(dsql_bench._match(r"latency average = ([0-9.]+) ms", done.stdout)),
        lag_ms=float(lag.group(1)) if lag else 0.0,
        transactions=transactions,
        failures=int(failed.group(1)) if failed else 0,
        proxy_cpu_us=None if cpu is None else cpu * 1e6 / max(1, transactions),
    )


def _best(runs: list[PgbenchRun], saturated: bool) -> PgbenchRun:
    """The least disturbed of the repeats: the most TPS saturated, the lowest latency at a fixed rate."""
    if saturated:
        return max(runs, key=lambda run: run.tps)
    return min(runs, key=lambda run: run.latency_ms)


def _pgbench_all(contenders: list[Contender], args: argparse.Namespace, seconds: int, results: Results) -> None:
    print("# pgbench (tps, latency avg, schedule lag, proxy CPU per transaction)", flush=True)
    for kind in KINDS:
        for mode, rate in (("saturated", None), (f"rate {args.rate}", args.rate)):
            runs: dict[str, list[PgbenchRun]] = {contender.name: [] for contender in contenders}
            for _ in range(args.repeat):  # interleaved, so a burst of other load hits one repeat of each
                for contender in contenders:
                    run = _pgbench(contender, kind, seconds, rate)
                    runs[contender.name].append(run)
                    cpu = "" if run.proxy_cpu_us is None else f" {run.proxy_cpu_us:6,.0f} µs CPU"
                    print(
                        f"#   {kind:6} {mode:10} {contender.name:12} {run.tps:8,.0f} TPS {run.latency_ms:7.3f} ms "
                        f"lag {run.lag_ms:6.3f} ms{cpu}",
                        flush=True,
                    )
            for name, repeats in runs.items():
                results.pgbench[(kind, mode, name)] = _best(repeats, rate is None)


def _connect_times(contenders: list[Contender], count: int) -> dict[str, tuple[float, float]]:
    """Sequential psycopg connect + `SELECT 1`, the contenders interleaved so drift hits each alike."""
    import psycopg

    timings: dict[str, list[float]] = {contender.name: [] for contender in contenders}
    for round_number in range(count + 3):
        for contender in contenders:
            begin = time.perf_counter()
            with psycopg.connect(**contender.params()) as conn:  # direct: minting its token is part of the cost
                conn.execute("SELECT 1").fetchone()
            if round_number >= 3:  # the first rounds warm caches (imports, TLS context, credentials)
                timings[contender.name].append((time.perf_counter() - begin) * 1e3)
    return {name: (statistics.median(values), _percentile(values, 0.95)) for name, values in timings.items()}


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def _copy_chunk() -> bytes:
    """About 1 MiB of COPY text rows: `<id>\\t<1000 x's>\\n`."""
    rows = MIB // (len(COPY_ROW) + 8)
    return b"".join(b"%d\t%s\n" % (number, COPY_ROW) for number in range(rows))


def _copy(contender: Contender, megabytes: int) -> tuple[float, float, float | None]:
    """MB/s of COPY FROM STDIN then COPY TO STDOUT of `megabytes` MB (10^6 bytes) of rows, and the proxy's CPU
    milliseconds per MB moved (both directions together)."""
    import psycopg

    chunk = _copy_chunk()
    chunks = max(1, megabytes * 1_000_000 // len(chunk))
    total = len(chunk) * chunks
    with psycopg.connect(**contender.params(), autocommit=True) as conn:
        conn.execute("CREATE UNLOGGED TABLE IF NOT EXISTS bench_copy (id int, payload text)")
        conn.execute("TRUNCATE bench_copy")
        cpu_before = contender.proxy.cpu_seconds() if contender.proxy else 0.0
        with conn.cursor() as cursor:
            begin = time.perf_counter()
            with cursor.copy("COPY bench_copy FROM STDIN") as copy:
                for _ in range(chunks):
                    copy.write(chunk)
            sent = total / (time.perf_counter() - begin) / 1e6
            received_bytes = 0
            begin = time.perf_counter()
            with cursor.copy("COPY bench_copy TO STDOUT") as copy:
                for data in copy:
                    received_bytes += len(data)
            received = received_bytes / (time.perf_counter() - begin) / 1e6
        cpu = contender.proxy.cpu_seconds() - cpu_before if contender.proxy else None
        if received_bytes != total:
            raise RuntimeError(f"COPY TO STDOUT returned {received_bytes} bytes, {total} went in")
        conn.execute("TRUNCATE bench_copy")
    return sent, received, None if cpu is None else cpu * 1e3 / (2 * total / 1e6)


def _rss_with_idle(proxy: Child, params: Callable[[], dict[str, Any]], count: int) -> float:
    """The proxy's RSS with `count` connections open and idle (each ran one query first)."""
    import psycopg

    with ExitStack() as stack:
        for _ in range(count):
            conn = stack.enter_context(psycopg.connect(**params()))
            conn.execute("SELECT 1").fetchone()
        time.sleep(0.5)  # not ordering: the figure is the settled one, after the logins' transient buffers
        return proxy.rss_mib()


def _measure(contenders: list[Contender], args: argparse.Namespace, seconds: int) -> Results:
    results = Results()
    proxies = [(contender, contender.proxy) for contender in contenders if contender.proxy is not None]
    for contender, proxy in proxies:
        results.rss_start[contender.name] = proxy.rss_mib()
    _initialise(contenders[0])
    _pgbench_all(contenders, args, seconds, results)
    print("# connect to first query", flush=True)
    results.connect = _connect_times(contenders, 20 if args.quick else args.connections)
    print("# COPY", flush=True)
    for _ in range(args.repeat):  # interleaved; the best of the repeats is kept
        for contender in contenders:
            sent, received, cpu = _copy(contender, 10 if args.quick else args.copy_mb)
            name = contender.name
            results.copy_in[name] = max(sent, results.copy_in.get(name, 0.0))
            results.copy_out[name] = max(received, results.copy_out.get(name, 0.0))
            if cpu is not None:
                results.copy_cpu_ms_per_mb[name] = min(cpu, results.copy_cpu_ms_per_mb.get(name, cpu))
            print(f"#   {name:12} in {sent:7,.1f} MB/s  out {received:7,.1f} MB/s", flush=True)
    print(f"# RSS with {IDLE_CONNECTIONS} idle connections", flush=True)
    for contender, proxy in proxies:
        results.rss_idle[contender.name] = _rss_with_idle(proxy, contender.params, IDLE_CONNECTIONS)
    return results


# -- the profile ---------------------------------------------------------------------------------------------------


def _profile(contender: Contender, seconds: int, py_spy: str, workdir: Path) -> None:
    """py-spy (native frames, idle included) on the proxy during a saturated TPC-B run; where its loop thread's
    samples fall: waiting in epoll, the send/recv syscalls, OpenSSL, our Python, the rest of the loop."""
    assert contender.proxy is not None
    output = workdir / "profile.raw"
    command = [py_spy, "record", "--pid", str(contender.proxy.process.pid), "--duration", str(seconds)]
    command += ["--rate", "250", "--format", "raw", "--native", "--idle", "--threads", "--nolineno", "-o", str(output)]
    recorder = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    run = _pgbench(contender, "tpcb", seconds + 1, None)
    _, errors = recorder.communicate(timeout=seconds + 60)
    if recorder.returncode != 0 or not output.exists():
        print(f"\npy-spy failed ({recorder.returncode}): {errors.strip()[-500:]}")
        return
    categories, leaves, total = _summarise_profile(output.read_text())
    print(f"\n## profile: {contender.name}, saturated TPC-B under py-spy ({run.tps:,.0f} TPS while sampled)")
    print(f"{total} samples of the loop thread ({PROXY_THREAD})\n")
    print("| where | share of the loop thread's time |")
    print("|---|---|")
    for name, count in categories.most_common():
        print(f"| {name} | {count / max(1, total):.1%} |")
    busy = total - categories["waiting (epoll)"]
    print("\n| busiest leaf functions | share of busy samples |")
    print("|---|---|")
    for name, count in leaves.most_common(12):
        print(f"| `{name}` | {count / max(1, busy):.1%} |")


def _summarise_profile(raw: str) -> tuple[collections.Counter[str], collections.Counter[str], int]:
    categories: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = stack.split(";")
        if not count_text.isdigit() or PROXY_THREAD not in frames[0]:
            continue
        count = int(count_text)
        total += count
        category = _category(frames)
        categories[category] += count
        if category != "waiting (epoll)":
            leaves[frames[-1]] += count
    return categories, leaves, total


def _category(frames: list[str]) -> str:
    leaf = frames[-1]
    function = leaf.split(" (", 1)[0]
    if "epoll" in function:
        return "waiting (epoll)"
    if "libc" in leaf and function in {"write", "writev", "send", "sendmsg", "sendto"}:
        return "send syscalls (the kernel's loopback TCP, waking the reader)"
    if "libc" in leaf and function in {"read", "readv", "recv", "recvmsg", "recvfrom"}:
        return "recv syscalls"
    if any("libssl" in frame or "libcrypto" in frame or "(_ssl.c" in frame for frame in frames):
        return "TLS (OpenSSL)"
    if ".py)" in leaf:
        return "Python code (ours, asyncio's)"
    return "event loop and interpreter (C)"


# -- the report ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    what: str
    values: dict[str, str]  # proxy contender -> the measured figure
    met: dict[str, bool]


def _report(results: Results, names: list[str], rate: int) -> list[Target]:
    proxies = names[1:]
    print()
    print("| measure | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    targets: list[Target] = []
    for kind in KINDS:
        targets += _pgbench_rows(results, names, kind, rate)
    _row("connect to first query p50", [f"{results.connect[name][0]:.2f} ms" for name in names])
    _row("connect to first query p95", [f"{results.connect[name][1]:.2f} ms" for name in names])
    connect_added = {name: results.connect[name][0] - results.connect["direct"][0] for name in proxies}
    targets.append(
        Target("added connect time ≤ 5 ms p50", _fmt(connect_added, "{:+.2f} ms"), _at_most(connect_added, 5))
    )
    for direction, figures in (("in (FROM STDIN)", results.copy_in), ("out (TO STDOUT)", results.copy_out)):
        base = figures["direct"]
        ratio = {name: figures[name] / base for name in proxies}
        _row(f"COPY {direction}, MB/s", [f"{base:,.1f}"] + [f"{figures[n]:,.1f} ({ratio[n]:.0%})" for n in proxies])
        met = {name: ratio[name] >= 0.9 for name in proxies}
        targets.append(Target(f"COPY {direction} ≥ 90% of direct", _fmt(ratio, "{:.0%}"), met))
    _row("COPY, proxy CPU per MB relayed", ["—"] + [f"{results.copy_cpu_ms_per_mb[n]:.2f} ms" for n in proxies])
    _row("proxy RSS at start", ["—"] + [f"{results.rss_start[name]:.1f} MiB" for name in proxies])
    _row(f"proxy RSS, {IDLE_CONNECTIONS} idle connections", ["—"] + [f"{results.rss_idle[n]:.1f} MiB" for n in proxies])
    rss = f"RSS ≤ 80 MiB with {IDLE_CONNECTIONS} connections"
    targets.append(Target(rss, _fmt(results.rss_idle, "{:.1f} MiB"), _at_most(results.rss_idle, 80)))
    print()
    print("| target (issue 12) | " + " | ".join(proxies) + " |")
    print("|---|" + "---|" * len(proxies))
    for target in targets:
        cells = [f"{target.values[name]} {'met' if target.met[name] else 'MISSED'}" for name in proxies]
        print(f"| {target.what} | " + " | ".join(cells) + " |")
    return targets


def _pgbench_rows(results: Results, names: list[str], kind: str, rate: int) -> list[Target]:
    proxies, label, statements = names[1:], LABELS[kind], dsql_bench.STATEMENTS[kind]
    saturated = {name: results.pgbench[(kind, "saturated", name)] for name in names}
    base = saturated["direct"].tps
    ratio = {name: saturated[name].tps / base for name in proxies}
    _row(f"{label} saturated, TPS", [f"{base:,.0f}"] + [f"{saturated[n].tps:,.0f} ({ratio[n]:.0%})" for n in proxies])
    _row(f"{label} saturated, latency avg", [f"{saturated[name].latency_ms:.3f} ms" for name in names])
    _row(
        f"{label} saturated, proxy CPU per statement",
        ["—"] + [f"{(saturated[n].proxy_cpu_us or 0) / statements:,.0f} µs" for n in proxies],
    )
    fixed = {name: results.pgbench[(kind, f"rate {rate}", name)] for name in names}
    _row(
        f"{label} at {rate} TPS, latency avg (schedule lag)",
        [f"{fixed[name].latency_ms:.3f} ms ({fixed[name].lag_ms:.3f})" for name in names],
    )
    added = {name: (fixed[name].latency_ms - fixed["direct"].latency_ms) * 1000 / statements for name in proxies}
    added_lag_free = {
        name: ((fixed[name].latency_ms - fixed[name].lag_ms) - (fixed["direct"].latency_ms - fixed["direct"].lag_ms))
        * 1000
        / statements
        for name in proxies
    }
    _row(
        f"{label} at {rate} TPS, added per statement (÷{statements}; without lag)",
        ["—"] + [f"{added[n]:+,.0f} µs ({added_lag_free[n]:+,.0f} µs)" for n in proxies],
    )
    failures = {
        name: sum(run.failures for (k, _, n), run in results.pgbench.items() if k == kind and n == name)
        for name in names
    }
    if any(failures.values()):
        _row(f"{label} failed transactions (retried)", [str(failures[name]) for name in names])
    targets = []
    if kind == "tpcb":
        targets.append(
            Target("TPC-B saturated ≥ 80% of direct", _fmt(ratio, "{:.0%}"), {n: ratio[n] >= 0.8 for n in proxies})
        )
    values = {name: f"{added[name]:+,.0f} µs ({added_lag_free[name]:+,.0f} µs without lag)" for name in proxies}
    targets.append(Target(f"{label}: added ≤ 40 µs per statement at {rate} TPS", values, _at_most(added, 40)))
    return targets


def _row(label: str, cells: list[str]) -> None:
    print(f"| {label} | " + " | ".join(cells) + " |")


def _fmt(values: dict[str, float], template: str) -> dict[str, str]:
    return {name: template.format(value) for name, value in values.items()}


def _at_most(values: dict[str, float], limit: float) -> dict[str, bool]:
    return {name: value <= limit for name, value in values.items()}


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 3 s per pgbench run, 20 connections, 10 MB")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed (on the default loop)")
    parser.add_argument("--seconds", type=int, default=10, help="seconds per pgbench run (default 10)")
    parser.add_argument("--rate", type=int, default=500, help="the fixed rate for the latency runs (default 500)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per pgbench cell and per COPY, the best kept (default 1)"
    )
    parser.add_argument("--connections", type=int, default=50, help="connections timed per contender (default 50)")
    parser.add_argument("--copy-mb", type=int, default=100, help="MB copied each way per contender (default 100)")
    parser.add_argument("--profile", action="store_true", help="sample the default proxy with py-spy (on PATH)")
    parser.add_argument("--py-spy", default=shutil.which("py-spy"), metavar="PATH", help="py-spy for --profile")
    args = parser.parse_args(argv)
    if args.profile and not args.py_spy:
        parser.error("--profile needs py-spy: pip install py-spy (or --py-spy PATH)")
    seconds = 3 if args.quick else args.seconds
    print(
        f"# sigv4-proxy pg benchmark — {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, emulate dsql --rules off, pgbench -c {dsql_bench.CLIENTS} -s {dsql_bench.SCALE} "
        f"-M simple, {seconds} s per run × {args.repeat}; {_load()}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-pg-") as scratch, _contenders(Path(scratch)) as contenders:
        results = _measure(contenders, args, seconds)
        names = [contender.name for contender in contenders]
        end_load = _load()
        default_loop = "pg uvloop" if "pg uvloop" in names else "pg asyncio"  # as the proxy picks; over TCP
        if args.profile:
            _profile(contenders[names.index(default_loop)], seconds, args.py_spy, Path(scratch))
    targets = _report(results, names, args.rate)
    missed = [target.what for target in targets if not target.met[default_loop]]
    print()
    print(f"# {end_load} at the end of the measurements")
    print(f"targets missed ({default_loop}): " + ("; ".join(missed) if missed else "none"))
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
