#!/usr/bin/env python3
"""MCP proxy benchmark: sigv4-proxy beside mcp-proxy-for-aws and a direct signed connection, one table.

    python3 dev.py bench bench/proxy.py          # or: .venv/bin/python bench/proxy.py [--quick] [--strict]

Every contender is driven by the same official `mcp` SDK client, against the same `sigv4-proxy emulate mcp`
endpoint (a separate process on loopback that verifies every signature):

* **ours** — `python -m sigv4_proxy` as a stdio MCP server (the way an MCP client launches it);
* **peer** — `mcp-proxy-for-aws` (pinned, see PEER_VERSION) as a stdio MCP server, installed by this script
  into its own venv (`.bench-venv-peer/`, created on first use; `--skip-peer` leaves it out);
* **ours, http** — `sigv4-proxy http` (the local signed HTTP listener), the SDK's Streamable HTTP client
  pointed at it;
* **direct** — the SDK's Streamable HTTP client signing each request itself (our SigV4Auth), no proxy:
  the floor a proxy adds latency to.

Measured, per contender:

| row | how |
|---|---|
| spawn → initialize | process start until the `initialize` result is in the client (median of `--startups`) |
| echo p50 / p99 | `tools/call echo` one after another (`--calls`, after a warm-up); added = contender − direct |
| calls/s, 16 in flight | `tools/call echo` with 16 concurrent callers (`--concurrent-calls` in total) |
| in flight at once | 16 concurrent `tools/call sleep 0.25 s`: 16 × 0.25 s / wall time |
| 50 MiB result | wall time of `tools/call large` with a 50 MiB text result (`--large-mib`) |
| peak RSS growth | the proxy's VmHWM after that call minus its RSS before it (Linux /proc) |
| idle RSS | the proxy's resident memory after `initialize` and a short pause |

Targets: spawn→initialize ≤ ⅓ of the peer's; added p50 ≤ 1 ms, p99 ≤ 3 ms; 16-way calls/s ≥ 3×
the peer's and ≥ 75 % of direct; peak RSS growth ≤ 1.5 × the result size; idle RSS ≤ 60 MiB. `--strict`
exits 1 when one is missed; otherwise the script only reports (the machine is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import statistics
import string
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PEER_PACKAGE = "mcp-proxy-for-aws"
PEER_VERSION = "1.7.0"
PEER_VENV = ROOT / ".bench-venv-peer"
PYTHON = sys.executable


# --- the environment ---------------------------------------------------------------------------------------


def random_credentials() -> tuple[str, str]:
    alphabet = string.ascii_uppercase + string.digits
    return "AKIA" + "".join(secrets.choice(alphabet) for _ in range(16)), secrets.token_urlsafe(30)


@dataclass
class Emulator:
    process: subprocess.Popen[str]
    url: str
    region: str
    service: str
    access_key_id: str
    secret_access_key: str

    def env(self) -> dict[str, str]:
        """What any contender needs: credentials and the target, nothing from the developer's AWS setup."""
        empty = Path(tempfile.gettempdir()) / "sigv4-proxy-bench-no-aws"
        return {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(empty),
            "AWS_CONFIG_FILE": str(empty / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(empty / "credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_REGION": self.region,
            "MCP_TARGET_URL": self.url,
            "AWS_SERVICE_NAME": self.service,
        }


@contextlib.contextmanager
def emulator_process() -> Generator[Emulator, None, None]:
    """`sigv4-proxy emulate mcp` in its own process, so the server never competes with the client for the GIL."""
    key, secret = random_credentials()
    process = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "sigv4_proxy",
            "emulate",
            "mcp",
            "--listen",
            "127.0.0.1:0",
            "--json",
            "--quiet",
            "--access-key-id",
            key,
            "--secret-access-key",
            secret,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        info = json.loads(process.stdout.readline())
        yield Emulator(process, info["url"], info["region"], info["service"], key, secret)
    finally:
        process.terminate()
        process.wait(10)


def ensure_peer(skip: bool) -> tuple[list[str] | None, str]:
    """The peer's command, installing it into its own venv on first use; (None, why) when unavailable."""
    if skip:
        return None, "skipped (--skip-peer)"
    executable = PEER_VENV / ("Scripts" if os.name == "nt" else "bin") / PEER_PACKAGE
    stamp = PEER_VENV / ".installed"
    if not executable.exists() or not stamp.exists() or stamp.read_text() != PEER_VERSION:
        print(f"bench: installing {PEER_PACKAGE}=={PEER_VERSION} into {PEER_VENV} (first run only)", file=sys.stderr)
        try:
            venv.EnvBuilder(with_pip=True, clear=True).create(PEER_VENV)
            python = PEER_VENV / ("Scripts" if os.name == "nt" else "bin") / "python"
            subprocess.run(
                [
                    str(python),
                    "-m",
                    "pip",
                    "install",
                    "-q",
                    "--disable-pip-version-check",
                    f"{PEER_PACKAGE}=={PEER_VERSION}",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", "") or str(exc)
            return None, f"not installable here: {detail.strip().splitlines()[-1] if detail.strip() else exc}"
        stamp.write_text(PEER_VERSION)
    return [str(executable)], f"{PEER_PACKAGE} {PEER_VERSION}"


# --- contenders ---------------------------------------------------------------------------------------------


@dataclass
class Contender:
    name: str
    label: str
    command: list[str] | None  # None: the direct connection
    args: Callable[[Emulator], list[str]] = lambda _: []
    kind: str = "stdio"  # stdio | http-listener | direct


def contenders(peer_command: list[str] | None, peer_label: str) -> list[Contender]:
    found = [Contender("ours", "sigv4-proxy (stdio)", [PYTHON, "-m", "sigv4_proxy"])]
    if peer_command is not None:
        found.append(
            Contender(
                "peer",
                peer_label,
                peer_command,
                lambda e: [e.url, "--service", e.service, "--region", e.region, "--log-level", "WARNING"],
            )
        )
    found.append(
        Contender(
            "http",
            "sigv4-proxy http",
            [PYTHON, "-m", "sigv4_proxy", "http", "--listen", "127.0.0.1:0"],
            kind="http-listener",
        )
    )
    found.append(Contender("direct", "direct signed HTTP (no proxy)", None, kind="direct"))
    return found


def _signing_http_client(emulator: Emulator) -> Any:
    """An httpx2 client (the SDK's HTTP library) that signs with our SigV4Auth — the direct contender."""
    import httpx2

    from sigv4_proxy import Credentials, SigV4Auth

    credentials = Credentials(emulator.access_key_id, emulator.secret_access_key)
    inner = SigV4Auth(credentials, emulator.region, emulator.service)

    class Httpx2SigV4Auth(httpx2.Auth):
        requires_request_body = True

        def auth_flow(self, request: Any) -> Generator[Any, Any, None]:
            inner.sign_request(request, credentials)
            yield request

    limits = httpx2.Limits(max_connections=64, max_keepalive_connections=64)
    return httpx2.AsyncClient(auth=Httpx2SigV4Auth(), timeout=httpx2.Timeout(120.0), limits=limits)


@dataclass
class Session:
    client: Any
    pid: int | None


@contextlib.asynccontextmanager
async def connect(contender: Contender, emulator: Emulator) -> AsyncIterator[Session]:
    """The same SDK client for everyone: over stdio to a proxy process, or over Streamable HTTP directly."""
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client
    from mcp.client.streamable_http import streamable_http_client

    if contender.kind == "direct":
        async with (
            _signing_http_client(emulator) as http,
            Client(
                streamable_http_client(emulator.url, http_client=http, max_sse_event_size=None), mode="legacy"
            ) as client,
        ):
            yield Session(client, None)
        return
    if contender.kind == "http-listener":
        async with (
            http_listener_process(contender, emulator) as (url, pid),
            Client(streamable_http_client(url, max_sse_event_size=None), mode="legacy") as client,
        ):
            yield Session(client, pid)
        return
    assert contender.command is not None
    params = StdioServerParameters(
        command=contender.command[0], args=[*contender.command[1:], *contender.args(emulator)], env=emulator.env()
    )
    before = _child_pids()
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as errlog:
        try:
            async with Client(stdio_client(params, errlog=errlog), mode="legacy") as client:
                new = sorted(_child_pids() - before)
                yield Session(client, new[-1] if new else None)
        except BaseException:
            errlog.seek(0)
            tail = errlog.read()[-1500:]
            if tail:
                print(f"bench: {contender.name} stderr:\n{tail}", file=sys.stderr)
            raise


@contextlib.asynccontextmanager
async def http_listener_process(contender: Contender, emulator: Emulator) -> AsyncIterator[tuple[str, int]]:
    """`sigv4-proxy http` on a free port; yields its URL once it logs that it listens."""
    assert contender.command is not None
    process = await asyncio.create_subprocess_exec(
        *contender.command, env=emulator.env(), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    try:
        url = None
        while url is None:
            line = (await asyncio.wait_for(process.stderr.readline(), 30)).decode()
            if not line:
                raise RuntimeError("sigv4-proxy http exited before listening")
            if "Listening on " in line:
                url = line.split("Listening on ", 1)[1].split(" ", 1)[0]
        drain = asyncio.ensure_future(_drain(process.stderr, os.environ.get("BENCH_LISTENER_LOG")))
        yield url, process.pid
        drain.cancel()
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()


async def _drain(stream: asyncio.StreamReader, copy_to: str | None = None) -> None:
    """Keep the listener's stderr flowing (copied to the file named by BENCH_LISTENER_LOG, if set)."""
    with open(copy_to, "ab") if copy_to else contextlib.nullcontext() as sink:
        while chunk := await stream.read(65536):
            if sink is not None:
                sink.write(chunk)


def _child_pids() -> set[int]:
    import psutil

    return {child.pid for child in psutil.Process().children(recursive=False)}


def rss(pid: int | None, field_name: str = "VmRSS") -> float | None:
    """Resident memory (VmRSS) or its peak (VmHWM) in MiB, from /proc (Linux only)."""
    if pid is None:
        return None
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) / 1024
    return None


# --- measurements -------------------------------------------------------------------------------------------


@dataclass
class Result:
    label: str
    startup_ms: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    calls_per_s: float | None = None
    in_flight: float | None = None
    large_s: float | None = None
    peak_growth_mib: float | None = None
    idle_rss_mib: float | None = None
    notes: list[str] = field(default_factory=list)


async def measure_startup(contender: Contender, emulator: Emulator, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        async with connect(contender, emulator):
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def echo(client: Any, n: int) -> None:
    result = await client.call_tool("echo", {"message": f"m{n}"})
    if result.content[0].text != f"m{n}":
        raise RuntimeError(f"wrong echo: {result.content[0].text!r}")


async def measure_session(contender: Contender, emulator: Emulator, args: argparse.Namespace, result: Result) -> None:
    async with connect(contender, emulator) as session:
        client = session.client
        await asyncio.sleep(0.5)
        result.idle_rss_mib = rss(session.pid)
        for n in range(20):  # warm-up: connections, caches
            await echo(client, n)

        latencies = []
        for n in range(args.calls):
            started = time.perf_counter()
            await echo(client, n)
            latencies.append((time.perf_counter() - started) * 1000)
        latencies.sort()
        result.p50_ms = statistics.median(latencies)
        result.p99_ms = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]

        queue = list(range(args.concurrent_calls))

        async def worker() -> None:
            while queue:
                await echo(client, queue.pop())

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(16)))
        result.calls_per_s = args.concurrent_calls / (time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(client.call_tool("sleep", {"seconds": 0.25}) for _ in range(16)))
        result.in_flight = min(16.0, 16 * 0.25 / (time.perf_counter() - started))

        size = args.large_mib * 1024 * 1024
        before = rss(session.pid)
        started = time.perf_counter()
        try:
            large = await asyncio.wait_for(client.call_tool("large", {"size_bytes": size}), 300)
        except Exception as exc:  # a contender that cannot carry the message: say so, keep going
            result.notes.append(f"{args.large_mib} MiB result failed: {type(exc).__name__}: {exc}"[:160])
        else:
            result.large_s = time.perf_counter() - started
            if len(large.content[0].text) != size:
                result.notes.append("large result has the wrong size")
            peak = rss(session.pid, "VmHWM")
            if peak is not None and before is not None:
                result.peak_growth_mib = peak - before


async def run_contender(contender: Contender, emulator: Emulator, args: argparse.Namespace) -> Result:
    result = Result(contender.label)
    try:
        result.startup_ms = await measure_startup(contender, emulator, args.startups)
        await measure_session(contender, emulator, args, result)
    except Exception as exc:
        result.notes.append(f"failed: {type(exc).__name__}: {exc}"[:200])
    return result


# --- the table ----------------------------------------------------------------------------------------------


def fmt(value: float | None, unit: str, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f} {unit}".strip()


def print_table(results: dict[str, Result], args: argparse.Namespace) -> list[str]:
    ours, peer, direct = results.get("ours"), results.get("peer"), results.get("direct")
    names = [name for name in ("ours", "peer", "http", "direct") if name in results]

    def added(r: Result | None, attr: str) -> float | None:
        if r is None or direct is None or getattr(r, attr) is None or getattr(direct, attr) is None:
            return None
        return float(getattr(r, attr) - getattr(direct, attr))

    rows: list[tuple[str, list[str], str]] = [
        ("spawn → initialize (median)", [fmt(results[n].startup_ms, "ms", 0) for n in names], "ours ≤ ⅓ peer"),
        ("echo p50", [fmt(results[n].p50_ms, "ms", 2) for n in names], ""),
        ("echo p99", [fmt(results[n].p99_ms, "ms", 2) for n in names], ""),
        ("added latency p50", [fmt(added(results[n], "p50_ms"), "ms", 2) for n in names], "≤ 1 ms"),
        ("added latency p99", [fmt(added(results[n], "p99_ms"), "ms", 2) for n in names], "≤ 3 ms"),
        ("calls/s, 16 in flight", [fmt(results[n].calls_per_s, "", 0) for n in names], "≥ 3× peer, ≥ 75% direct"),
        ("in flight at once (of 16)", [fmt(results[n].in_flight, "", 1) for n in names], ""),
        (f"{args.large_mib} MiB result, wall", [fmt(results[n].large_s, "s", 2) for n in names], ""),
        (
            f"peak RSS growth, {args.large_mib} MiB",
            [fmt(results[n].peak_growth_mib, "MiB", 1) for n in names],
            f"≤ {1.5 * args.large_mib:g} MiB",
        ),
        ("idle RSS after initialize", [fmt(results[n].idle_rss_mib, "MiB", 1) for n in names], "≤ 60 MiB"),
    ]
    headers = ["", *(results[n].label for n in names), "target"]
    table = [headers, *[[label, *cells, target] for label, cells, target in rows]]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    print()
    for index, row in enumerate(table):
        print("| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) + " |")
        if index == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for name in names:
        for note in results[name].notes:
            print(f"note ({name}): {note}")
    return misses(ours, peer, direct, args)


def misses(ours: Result | None, peer: Result | None, direct: Result | None, args: argparse.Namespace) -> list[str]:
    if ours is None:
        return ["ours did not run"]
    missed = []

    def check(ok: bool | None, text: str) -> None:
        if ok is False:
            missed.append(text)

    if peer is not None and ours.startup_ms and peer.startup_ms:
        check(ours.startup_ms <= peer.startup_ms / 3, "spawn → initialize > ⅓ of the peer's")
    if direct is not None and ours.p50_ms is not None and direct.p50_ms is not None:
        check(ours.p50_ms - direct.p50_ms <= 1.0, "added latency p50 > 1 ms")
    if direct is not None and ours.p99_ms is not None and direct.p99_ms is not None:
        check(ours.p99_ms - direct.p99_ms <= 3.0, "added latency p99 > 3 ms")
    if peer is not None and ours.calls_per_s and peer.calls_per_s:
        check(ours.calls_per_s >= 3 * peer.calls_per_s, "16-way calls/s < 3× the peer's")
    if direct is not None and ours.calls_per_s and direct.calls_per_s:
        check(ours.calls_per_s >= 0.75 * direct.calls_per_s, "16-way calls/s < 75% of direct")
    if ours.peak_growth_mib is not None:
        check(ours.peak_growth_mib <= 1.5 * args.large_mib, "peak RSS growth > 1.5× the result")
    if ours.idle_rss_mib is not None:
        check(ours.idle_rss_mib <= 60, "idle RSS > 60 MiB")
    return missed


async def main_async(args: argparse.Namespace) -> int:
    peer_command, peer_label = ensure_peer(args.skip_peer)
    if peer_command is None:
        print(f"bench: peer {PEER_PACKAGE}: {peer_label}", file=sys.stderr)
    results: dict[str, Result] = {}
    with emulator_process() as emulator:
        for contender in contenders(peer_command, peer_label):
            print(f"bench: {contender.label} ...", file=sys.stderr, flush=True)
            results[contender.name] = await run_contender(contender, emulator, args)
    print(
        f"MCP proxy benchmark — emulate mcp on loopback, official mcp SDK client for every contender; "
        f"{args.startups} start-ups, {args.calls} sequential calls, {args.concurrent_calls} calls at 16 in "
        f"flight; Python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )
    missed = print_table(results, args)
    if missed:
        print("targets missed: " + "; ".join(missed))
    return 1 if (missed and args.strict) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--skip-peer", action="store_true", help=f"leave out {PEER_PACKAGE}")
    parser.add_argument("--startups", type=int, default=10)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--concurrent-calls", type=int, default=800)
    parser.add_argument("--large-mib", type=int, default=50)
    args = parser.parse_args(argv)
    if args.quick:
        args.startups, args.calls, args.concurrent_calls, args.large_mib = 3, 100, 160, 10
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
