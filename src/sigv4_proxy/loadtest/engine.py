"""The load test's engine: Locust used as a library, one process (local), a master, or a worker.

    from sigv4_proxy.loadtest.engine import run_loadtest
    result = run_loadtest(LoadtestSettings(users=5, iterations=2))      # --emulate: starts `emulate dsql`

Importing :mod:`locust` monkey-patches the whole process with gevent (threads become greenlets, sockets
cooperative), and psycopg picks its wait function when it is imported: gevent's patched ``select`` only if the
patch came first, else a C loop that blocks every greenlet while one waits for the server. So the entry points
import locust before anything imports psycopg (:func:`import_locust_first`), and this module imports neither
at its top: `sigv4-proxy` imports it only to run a load test.

A run: start `emulate dsql` in a child process (``--emulate``), create the table in a transaction of its own
(before any user connects: a committed DDL makes other open sessions' next statement fail once with OC001),
run the users (a master waits for its workers first), sample every second (timeline and progress line), stop
when every user has run its iterations or the duration has passed (users end after their transaction), count
the run's rows back, and build the :class:`LoadtestResult`, whose ``problems`` say why it failed.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import sys
import threading
import time
import warnings
from argparse import Namespace
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TextIO

from sigv4_proxy.clock import utc_now
from sigv4_proxy.errors import Sigv4ProxyError, UsageError
from sigv4_proxy.loadtest.progress import ProgressLine, ProgressSample
from sigv4_proxy.loadtest.results import (
    OP_CONNECT,
    OP_TRANSACTION,
    REQUEST_TYPE,
    AuthFailure,
    ErrorCount,
    LoadtestResult,
    OperationLatency,
    TimePoint,
)
from sigv4_proxy.loadtest.settings import DsqlTarget, LoadtestSettings, settings_problems, to_options
from sigv4_proxy.loadtest.summary import plural

if TYPE_CHECKING:  # pragma: no cover
    from locust.env import Environment
    from locust.runners import LocalRunner, MasterRunner

    from sigv4_proxy.credentials import CredentialSource
    from sigv4_proxy.loadtest.client import Failure
    from sigv4_proxy.loadtest.locustfile import LoadState

STOP_TIMEOUT = 60.0  # seconds the users get to end their transaction once the duration has passed
SAMPLE_INTERVAL = 1.0  # seconds between timeline points (and progress updates)
WORKER_REPORT_INTERVAL = 1.0  # seconds between a worker's reports (Locust's default, 3 s, makes a coarse timeline)
WAIT_STEP = 0.2  # seconds between checks while waiting (for workers, for the users to end)
_LOCUST_LOGGERS = ("locust", "locust.runners", "locust.main", "locust.env", "locust.user", "locust.rpc")


class LoadtestError(Sigv4ProxyError):
    """The run could not start (the master's port in use, workers that never came); its text says what to do."""


def import_locust_first() -> None:
    """Import locust (gevent's monkey-patching) before psycopg; quiet Locust's own logging (warnings only).

    If psycopg was imported already it has chosen its blocking C wait loop: switch it to the poll-based one
    (gevent patches ``select.poll``), which is what it would have chosen after the patch."""
    with warnings.catch_warnings():
        # gevent warns when it patches ssl after ssl was imported (the CLI imports it early); both sides of the
        # run (libpq's TLS and Locust's sockets) are unaffected.
        warnings.simplefilter("ignore")
        import locust  # noqa: F401

    waiting: Any = sys.modules.get("psycopg.waiting")
    if waiting is not None and getattr(waiting, "wait", None) is getattr(waiting, "wait_c", object()):
        waiting.wait = waiting.wait_poll
        waiting._ready = waiting._ready_poll
    for name in _LOCUST_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    # Ctrl-C reaches the main greenlet as KeyboardInterrupt (the run then ends cleanly, with its summary); gevent's
    # hub would also print it, with a timestamp, in the middle of the progress line.
    hub: Any = importlib.import_module("gevent").get_hub()
    if KeyboardInterrupt not in hub.NOT_ERROR:
        hub.NOT_ERROR = (*hub.NOT_ERROR, KeyboardInterrupt)


# -- the database side (also used by plain `locust -f`, see standalone.py) ------------------------------------------


@dataclass(frozen=True)
class SetupFailure:
    """Why the table could not be created: the failure, and whether it came while connecting (how long that
    took, for the connect row of the summary)."""

    failure: Failure
    connecting: bool
    elapsed_ms: float = 0.0


def prepare_database(settings: LoadtestSettings, credentials: CredentialSource | None) -> SetupFailure | None:
    """CREATE TABLE IF NOT EXISTS in a transaction of its own (OC001 retried); None when done."""
    from sigv4_proxy.dsql import run_transaction
    from sigv4_proxy.loadtest.client import describe_failure, open_connection
    from sigv4_proxy.loadtest.schema import create_table_statement

    assert settings.target is not None
    started = time.perf_counter()
    try:
        connection = open_connection(settings.target, credentials, setup=True)
    except Sigv4ProxyError:  # no credentials, a missing extra: the run cannot start, the message says why
        raise
    except Exception as exc:
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        return SetupFailure(describe_failure(exc, connecting=True), True, elapsed_ms)
    statement = create_table_statement(settings.table)
    try:
        with connection:
            run_transaction(connection, lambda conn: conn.execute(statement))
    except Exception as exc:
        return SetupFailure(describe_failure(exc, connecting=False), False)
    return None


def count_rows(settings: LoadtestSettings, credentials: CredentialSource | None) -> tuple[int | None, str | None]:
    """The run's rows in the database (its own connection), or None and why."""
    from sigv4_proxy.dsql import run_transaction
    from sigv4_proxy.loadtest.client import describe_failure, open_connection
    from sigv4_proxy.loadtest.schema import count_statement

    assert settings.target is not None
    statement = count_statement(settings.table)
    try:
        with open_connection(settings.target, credentials, setup=True) as connection:
            row = run_transaction(connection, lambda conn: conn.execute(statement, (settings.run_id,)).fetchone())
    except Exception as exc:
        return None, describe_failure(exc, connecting=False).text()
    return int(row[0]), None


# -- sampling ---------------------------------------------------------------------------------------------------


class Sampler:
    """Every second: a TimePoint from Locust's statistics (the difference with the previous sample) and the
    progress line. Runs in a greenlet of its own."""

    def __init__(self, environment: Environment, state: LoadState, settings: LoadtestSettings, line: ProgressLine):
        self._environment, self._state, self._settings, self._line = environment, state, settings, line
        self.timeline: list[TimePoint] = []
        self._start = time.monotonic()
        self._last_time = self._start
        self._last_requests = 0
        self._last_rows = 0
        self._last_times: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._start = self._last_time = time.monotonic()
        # A thread, which locust's patch makes a greenlet.
        self._thread = threading.Thread(target=self._run, name="dsql-loadtest-sampler", daemon=True)
        self._thread.start()

    def finish(self) -> None:
        """The last point (what happened since the previous one), and the progress line's end."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample(final=True)
        self._line.close()

    def _run(self) -> None:
        beat = 1
        while not self._stop.wait(max(0.0, self._start + beat * SAMPLE_INTERVAL - time.monotonic())):
            self.sample()
            beat += 1

    def sample(self, *, final: bool = False) -> None:
        """One TimePoint (rates over the time since the previous one) and a progress update (the final one shows
        the whole run's rate: its last stretch may be a few milliseconds long)."""
        reading = self._read()
        span = max(reading.time - self._last_time, 1e-6)
        rows_per_s = (reading.rows - self._last_rows) / span
        self.timeline.append(self._timepoint(reading, span, rows_per_s))
        run_rate = reading.rows / max(reading.time - self._start, 1e-6)
        self._line.update(self._progress(reading, run_rate if final else rows_per_s))
        self._last_time, self._last_requests, self._last_rows = reading.time, reading.requests, reading.rows
        self._last_times = reading.times

    def _read(self) -> _Reading:
        entry = self._environment.stats.entries.get((OP_TRANSACTION, REQUEST_TYPE))
        runner = self._environment.runner
        # A user that ended is counted by Locust until its greenlet is gone (and a worker's report says so).
        running = runner.user_count if runner is not None else 0
        measured = entry if entry is not None and entry.num_requests > 0 else None
        return _Reading(
            time=time.monotonic(),
            requests=entry.num_requests if entry is not None else 0,
            rows=entry.total_content_length if entry is not None else 0,
            times=dict(entry.response_times) if entry is not None else {},
            p50_ms=float(measured.get_response_time_percentile(0.5)) if measured is not None else None,
            p99_ms=float(measured.get_response_time_percentile(0.99)) if measured is not None else None,
            users=max(0, min(running, self._settings.users - self._state.totals.users_done)),
            errors=self._environment.stats.total.num_failures,
            occ_retries=self._state.totals.occ_retries,
        )

    def _timepoint(self, reading: _Reading, span: float, rows_per_s: float) -> TimePoint:
        """The latencies of the transactions that ended since the previous sample: the histogram's difference."""
        from locust.stats import calculate_response_time_percentile, diff_response_time_dicts

        recent = diff_response_time_dicts(reading.times, self._last_times)
        ended = sum(recent.values())
        return TimePoint(
            elapsed_s=round(reading.time - self._start, 3),
            rows_per_s=rows_per_s,
            transactions_per_s=(reading.requests - self._last_requests) / span,
            p50_ms=float(calculate_response_time_percentile(recent, ended, 0.5)) if ended else None,
            p99_ms=float(calculate_response_time_percentile(recent, ended, 0.99)) if ended else None,
            users=reading.users,
            errors=reading.errors,
            occ_retries=reading.occ_retries,
        )

    def _progress(self, reading: _Reading, rows_per_s: float) -> ProgressSample:
        return ProgressSample(
            rows=reading.rows,
            rows_expected=self._settings.expected_rows,
            rows_per_s=rows_per_s,
            p50_ms=reading.p50_ms,
            p99_ms=reading.p99_ms,
            errors=reading.errors,
            occ_retries=reading.occ_retries,
            users=reading.users,
            users_target=self._settings.users,
        )


@dataclass(frozen=True)
class _Reading:
    """Locust's statistics and our counters at one moment (transactions: all so far)."""

    time: float
    requests: int
    rows: int
    times: dict[int, int]  # the transactions' latency histogram
    p50_ms: float | None
    p99_ms: float | None
    users: int
    errors: int
    occ_retries: int


# -- the result -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunFacts:
    """What the engine saw besides Locust's statistics."""

    target: str  # described, no secret
    started_at: str
    duration_s: float
    workers: int
    rows_counted: int | None
    count_problem: str | None = None
    timeline: tuple[TimePoint, ...] = ()
    problems: tuple[str, ...] = ()  # the engine's own (a worker left, users that did not stop)


def collect_result(
    environment: Environment, state: LoadState, settings: LoadtestSettings, facts: RunFacts
) -> LoadtestResult:
    """The result from Locust's (merged) statistics, our counters and the engine's facts."""
    transactions = _operation(environment, OP_TRANSACTION)
    entry = environment.stats.entries.get((OP_TRANSACTION, REQUEST_TYPE))
    committed = int(entry.total_content_length) if entry is not None else 0
    errors = _errors(environment)
    refused = tuple(
        AuthFailure(login.sqlstate, login.message, login.count, login.diagnosis)
        for login in sorted(state.totals.refused_logins.values(), key=lambda login: -login.count)
    )
    duration = max(facts.duration_s, 1e-9)
    problems = [*facts.problems, *_row_problems(settings, committed, facts), *_error_problems(errors, refused)]
    return LoadtestResult(
        scenario=settings.scenario,
        users=settings.users,
        iterations=settings.iterations,
        rows_per_transaction=settings.rows_per_transaction,
        target=facts.target,
        table=settings.table,
        run_id=settings.run_id,
        started_at=facts.started_at,
        duration_s=round(facts.duration_s, 3),
        workers=facts.workers,
        rows_expected=settings.expected_rows,
        rows_committed=committed,
        rows_counted=facts.rows_counted,
        transactions=transactions.count,
        transactions_failed=transactions.failures,
        rows_per_s=committed / duration if facts.duration_s > 0 else 0.0,
        transactions_per_s=transactions.count / duration if facts.duration_s > 0 else 0.0,
        operations=(_operation(environment, OP_CONNECT), transactions),
        errors=errors,
        occ_retries=state.totals.occ_retries,
        occ_gave_up=state.totals.occ_gave_up,
        auth_failures=refused,
        timeline=facts.timeline,
        problems=tuple(problems),
    )


def _operation(environment: Environment, name: str) -> OperationLatency:
    entry = environment.stats.entries.get((name, REQUEST_TYPE))
    if entry is None or entry.num_requests == 0:
        return OperationLatency(name, 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0)
    return OperationLatency(
        name=name,
        count=entry.num_requests,
        failures=entry.num_failures,
        p50_ms=float(entry.get_response_time_percentile(0.5)),
        p95_ms=float(entry.get_response_time_percentile(0.95)),
        p99_ms=float(entry.get_response_time_percentile(0.99)),
        max_ms=float(entry.max_response_time),
        mean_ms=float(entry.avg_response_time),
        histogram=tuple(sorted((int(ms), int(count)) for ms, count in entry.response_times.items())),
    )


def _errors(environment: Environment) -> tuple[ErrorCount, ...]:
    """Locust's failures grouped by operation and SQLSTATE (its own grouping is by the whole text)."""
    from locust.stats import StatsError

    from sigv4_proxy.loadtest.client import parse_failure_text

    grouped: dict[tuple[str, str], ErrorCount] = {}
    for error in environment.stats.errors.values():
        sqlstate, message = parse_failure_text(StatsError.parse_error(error.error))
        key = (error.name, sqlstate)
        known = grouped.get(key)
        if known is None:
            grouped[key] = ErrorCount(sqlstate, error.occurrences, error.name, message)
        else:
            grouped[key] = replace(known, count=known.count + error.occurrences)
    return tuple(sorted(grouped.values(), key=lambda item: (-item.count, item.operation, item.sqlstate)))


def _clip(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _row_problems(settings: LoadtestSettings, committed: int, facts: RunFacts) -> list[str]:
    if facts.rows_counted is None:
        return [f"the run's rows could not be counted ({_clip(facts.count_problem or 'no reason given')})"]
    counted, expected = facts.rows_counted, settings.expected_rows
    problems = []
    if expected is not None and counted < expected:
        problems.append(f"rows missing: {counted} of the {expected} expected are in the database")
    elif expected is not None and counted > expected:
        problems.append(f"extra rows: {counted} in the database, {expected} expected")
    if counted != committed:
        problems.append(f"the database holds {counted} rows of this run, the users committed {committed}")
    return problems


def _error_problems(errors: tuple[ErrorCount, ...], refused: tuple[AuthFailure, ...]) -> list[str]:
    refused_states = {failure.sqlstate for failure in refused}
    problems = [
        f"{plural(failure.count, 'login')} refused ({failure.sqlstate} {_clip(failure.message.splitlines()[0])})"
        for failure in refused
    ]
    for error in errors:
        if error.operation == OP_CONNECT and error.sqlstate in refused_states:
            continue  # said above, with its diagnosis in the table
        failures = plural(error.count, error.operation + " failure")
        problems.append(f"{failures} with SQLSTATE {error.sqlstate}: {_clip(error.example)}")
    return problems


def _setup_failed_result(settings: LoadtestSettings, target: str, setup: SetupFailure) -> LoadtestResult:
    """The run stopped before any user started: the table could not be created (or not even connected to)."""
    failure = setup.failure
    errors: tuple[ErrorCount, ...] = ()
    refused: tuple[AuthFailure, ...] = ()
    connect = OperationLatency(OP_CONNECT, 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0)
    if setup.connecting:
        errors = (ErrorCount(failure.sqlstate, 1, OP_CONNECT, failure.message),)
        if failure.login_refused:
            refused = (AuthFailure(failure.sqlstate, failure.message, 1, failure.diagnosis),)
        ms = round(setup.elapsed_ms, 1)
        connect = OperationLatency(OP_CONNECT, 1, 1, ms, ms, ms, ms, ms, histogram=((round(ms), 1),))
    step = "connect to create the table" if setup.connecting else f"create the table {settings.table}"
    first_line = failure.message.splitlines()[0] if failure.message else ""
    problems = [f"could not {step} ({failure.sqlstate} {_clip(first_line)}): no user ran"]
    return LoadtestResult(
        scenario=settings.scenario,
        users=settings.users,
        iterations=settings.iterations,
        rows_per_transaction=settings.rows_per_transaction,
        target=target,
        table=settings.table,
        run_id=settings.run_id,
        started_at=_utc_now_text(),
        duration_s=0.0,
        workers=0,
        rows_expected=settings.expected_rows,
        rows_committed=0,
        rows_counted=None,
        transactions=0,
        transactions_failed=0,
        rows_per_s=0.0,
        transactions_per_s=0.0,
        operations=(connect, OperationLatency(OP_TRANSACTION, 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0)),
        errors=errors,
        occ_retries=0,
        occ_gave_up=0,
        auth_failures=refused,
        timeline=(),
        problems=tuple(problems),
    )


def _utc_now_text() -> str:
    return utc_now().strftime("%Y-%m-%dT%H:%M:%SZ")


# -- running ----------------------------------------------------------------------------------------------------


def locust_options(settings: LoadtestSettings) -> Namespace:
    """Locust's parsed options as its own command line would make them (runners read some: headless,
    enable_rebalancing, ...), plus the settings as ``dsql_*`` options (what a master forwards to workers)."""
    from locust.argument_parser import default_args_dict

    values: dict[str, Any] = dict(default_args_dict())
    values.update(headless=True, num_users=settings.users, spawn_rate=_spawn_rate(settings))
    values.update(to_options(settings))
    return Namespace(**values)


def _spawn_rate(settings: LoadtestSettings) -> float:
    return settings.spawn_rate if settings.spawn_rate is not None else float(settings.users)  # all in one step


def _environment(settings: LoadtestSettings) -> Environment:
    from locust.env import Environment
    from locust.event import Events

    from sigv4_proxy.loadtest.locustfile import DsqlUser

    # Events of its own: the locustfile's module-level listeners (plain `locust -f`) stay on locust.events.
    return Environment(
        user_classes=[DsqlUser],
        events=Events(),
        parsed_options=locust_options(settings),
        stop_timeout=STOP_TIMEOUT,
    )


def run_loadtest(settings: LoadtestSettings, *, progress: TextIO | None = sys.stderr) -> LoadtestResult:
    """Run the load test here (mode local) or as the master of workers (mode master).

    Raises UsageError for settings with problems, LoadtestError when the run cannot start (the master's port
    taken, workers that never came), CredentialsError / MissingExtraError as the driver helpers raise them. A
    run that started (even one whose first login was refused) returns its result."""
    import_locust_first()
    problems = settings_problems(settings)
    if problems:
        raise UsageError("\n".join(problems))
    if settings.mode == "worker":
        raise UsageError("a worker runs with run_worker(settings), not run_loadtest")
    from sigv4_proxy.loadtest.client import credentials_for
    from sigv4_proxy.loadtest.schema import new_run_id

    settings = replace(settings, run_id=settings.run_id or new_run_id())
    with contextlib.ExitStack() as stack:
        settings, target = _resolve_target(settings, stack)
        credentials = credentials_for(settings)
        setup = prepare_database(settings, credentials)
        if setup is not None:
            return _setup_failed_result(settings, target, setup)
        return _run(settings, target, credentials, ProgressLine(progress if settings.progress else None))


def _resolve_target(settings: LoadtestSettings, stack: contextlib.ExitStack) -> tuple[LoadtestSettings, str]:
    """--emulate: the emulator's child process, its cluster as the target and its identity for the users (and
    the workers: the master forwards it)."""
    if settings.target is not None:
        return settings, settings.target.describe()
    from sigv4_proxy.loadtest.emulated import start_emulator

    info = stack.enter_context(start_emulator())
    target = DsqlTarget(
        hostname=info.host,
        hostaddr=info.listen_host,
        port=info.port,
        region=info.region,
        sslrootcert=info.ca_file,
    )
    return replace(settings, target=target, emulator_identity=info.identity), f"emulate dsql ({info.host})"


def _run(
    settings: LoadtestSettings, target: str, credentials: CredentialSource | None, line: ProgressLine
) -> LoadtestResult:
    from sigv4_proxy.loadtest.locustfile import install

    environment = _environment(settings)
    runner = _create_runner(environment, settings)
    state = install(environment)
    try:
        workers, problems = 0, []
        if settings.mode == "master":
            workers = _wait_for_workers(runner, settings)
        sampler = Sampler(environment, state, settings, line)
        started_at, started = _utc_now_text(), time.monotonic()
        sampler.start()
        runner.start(settings.users, spawn_rate=_spawn_rate(settings))  # a master's returns once it dispatched
        problems += _wait_until_done(environment, state, settings, started, workers)
        duration = time.monotonic() - started
        sampler.finish()
        rows_counted, count_problem = count_rows(settings, credentials)
        facts = RunFacts(
            target=target,
            started_at=started_at,
            duration_s=duration,
            workers=workers,
            rows_counted=rows_counted,
            count_problem=count_problem,
            timeline=tuple(sampler.timeline),
            problems=tuple(problems),
        )
        return collect_result(environment, state, settings, facts)
    finally:
        runner.quit()


def _create_runner(environment: Environment, settings: LoadtestSettings) -> LocalRunner | MasterRunner:
    if settings.mode == "local":
        return environment.create_local_runner()
    try:
        return environment.create_master_runner(settings.master_bind_host, settings.master_port)
    except SystemExit:  # Locust's master exits the process when its port is taken (it logged why)
        raise LoadtestError(
            f"the master cannot listen on {settings.master_bind_host}:{settings.master_port} (in use?): "
            "choose another --master-port"
        ) from None


def _wait_for_workers(runner: Any, settings: LoadtestSettings) -> int:
    deadline = time.monotonic() + settings.expect_workers_timeout
    while runner.worker_count < settings.expect_workers:
        if time.monotonic() >= deadline:
            raise LoadtestError(
                f"{runner.worker_count} of {settings.expect_workers} workers connected to "
                f"{settings.master_bind_host}:{settings.master_port} within {settings.expect_workers_timeout:g} s"
            )
        time.sleep(WAIT_STEP)  # gevent's (patched)
    return int(runner.worker_count)


def _wait_until_done(
    environment: Environment, state: LoadState, settings: LoadtestSettings, started: float, workers: int
) -> list[str]:
    """Until every user has ended (its iterations run, or the duration passed and it was asked to stop); the
    engine's problems when that did not happen cleanly. Ctrl-C stops the users the same way, once."""
    runner: Any = environment.runner
    deadline = started + settings.duration if settings.duration is not None else None
    try:
        while not state.finished.wait(WAIT_STEP):
            if workers and runner is not None and runner.worker_count < workers:
                left = workers - runner.worker_count
                return [f"{plural(left, 'worker')} left the run before its users ended"]
            if deadline is not None and time.monotonic() >= deadline:
                return _stop_users(state, settings)
    except KeyboardInterrupt:
        return ["interrupted (Ctrl-C) before the run's end", *_stop_users(state, settings)]
    return []


def _stop_users(state: LoadState, settings: LoadtestSettings) -> list[str]:
    """Every user ends after its current transaction; a problem if some did not within STOP_TIMEOUT."""
    state.request_stop()
    if state.finished.wait(STOP_TIMEOUT):
        return []
    ended = state.totals.users_done
    return [f"{settings.users - ended} of {settings.users} users did not stop within {STOP_TIMEOUT:g} s"]


def run_worker(settings: LoadtestSettings) -> int:
    """Connect to the master at settings.master_host:master_port and run the users it sends (with the settings
    it forwards) until it says quit. 0 when it did, 1 when the master could not be reached or went away."""
    import_locust_first()
    import locust.runners

    from sigv4_proxy.loadtest.locustfile import install

    # Reports every second: the master's timeline and progress line are built from them.
    locust.runners.WORKER_REPORT_INTERVAL = WORKER_REPORT_INTERVAL
    environment = _environment(settings)
    try:
        runner = environment.create_worker_runner(settings.master_host, settings.master_port)
    except ConnectionError:
        print(
            f"loadtest worker: no master answered at {settings.master_host}:{settings.master_port}",
            file=sys.stderr,
            flush=True,
        )
        return 1
    install(environment)
    runner.greenlet.join()
    return 0
