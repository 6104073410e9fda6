"""The DSQL load test as a Locust file: the ``--dsql-*`` options, the user, and the counters that travel from
workers to the master. :mod:`sigv4_proxy.loadtest.engine` runs it as a library; Locust's own command line and
web UI run it too::

    locust -f $(python -c 'import sigv4_proxy.loadtest.locustfile as m; print(m.__file__)')

Under plain ``locust`` with no ``--dsql-target-hostname``, the master (or the single process) starts
`emulate dsql` in a child process and hands its throwaway identity to its workers; it creates the table when a
test starts, stops the test once every user has run its iterations, and logs the summary table when it stops.

Each user keeps one connection (a fresh token per physical connection) and runs ``--dsql-iterations``
iterations, each one transaction through :func:`sigv4_proxy.dsql.run_transaction` (OCC conflicts retried), then
stops itself. Every iteration ends in exactly one Locust request event: a ``transaction`` (its rows are the
response length), or a failed ``connect`` when it could not get a connection. Failures carry their SQLSTATE.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from argparse import ArgumentParser
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import locust  # before psycopg (see the docstring of sigv4_proxy.loadtest.engine)
import locust.runners
from locust import User, events, task
from locust.exception import StopUser

from sigv4_proxy.dsql import RetryStats, run_transaction
from sigv4_proxy.loadtest.client import (
    DsqlFailure,
    Failure,
    connection_unusable,
    credentials_for,
    describe_failure,
    open_connection,
    warm_up,
)
from sigv4_proxy.loadtest.results import OP_CONNECT, OP_TRANSACTION, REQUEST_TYPE
from sigv4_proxy.loadtest.schema import batch_parameters, event_row, insert_statement
from sigv4_proxy.loadtest.settings import (
    OPTION_PREFIX,
    DsqlTarget,
    LoadtestSettings,
    from_options,
    settings_problems,
    to_options,
)

if TYPE_CHECKING:  # pragma: no cover
    import psycopg
    from locust.env import Environment
    from psycopg import sql

    from sigv4_proxy.credentials import CredentialSource

_log = logging.getLogger("sigv4_proxy.loadtest")
OCC_RETRIES = 3  # run_transaction's retries of an OCC conflict (40001 OC000/OC001) before it gives up
CONNECT_FAILURE_PAUSE = 0.5  # seconds before a user tries again after a failed connect (no tight refusal loop)
REPORT_KEY = "dsql"  # our counters in a worker's report to the master (Locust's own are "stats", "errors", ...)
STOP_MESSAGE = "dsql_stop"  # master -> workers: the duration passed, every user ends after its transaction


# -- the --dsql-* options ---------------------------------------------------------------------------------------


def _text_or_none(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return None if text == "" or text.lower() == "none" else text


def _int_or_none(value: Any) -> int | None:
    text = _text_or_none(value)
    return None if text is None else int(text)


def _float_or_none(value: Any) -> float | None:
    text = _text_or_none(value)
    return None if text is None else float(text)


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _required(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def converted(value: Any) -> Any:
        result = convert(value)
        if result is None:
            raise ValueError("a value is required")
        return result

    converted.__name__ = convert.__name__
    return converted


@dataclass(frozen=True)
class OptionSpec:
    convert: Callable[[Any], Any]
    help: str
    web_ui: bool = False  # shown (and editable) in Locust's web UI
    secret: bool = False


# One entry per key of settings.to_options: the names and defaults come from there, the types and help from here.
OPTION_SPECS: Mapping[str, OptionSpec] = {
    "users": OptionSpec(_required(_int_or_none), "users in the whole run (plain locust: taken from -u)"),
    "spawn_rate": OptionSpec(_float_or_none, "users started per second (default: all at once)"),
    "iterations": OptionSpec(_int_or_none, "transactions per user, then it stops (none: until the run time)", True),
    "scenario": OptionSpec(_required(_text_or_none), "single (one row per transaction) or batch", True),
    "batch_size": OptionSpec(_required(_int_or_none), "rows per transaction in the batch scenario", True),
    "duration": OptionSpec(_float_or_none, "seconds; the run stops then even when iterations remain"),
    "rate": OptionSpec(_float_or_none, "transactions per second across all users (default: as fast as it goes)", True),
    "table": OptionSpec(_required(_text_or_none), "the table the users insert into (created if missing)", True),
    "report": OptionSpec(_text_or_none, "sigv4-proxy loadtest only: the report file (.html or .json)"),
    "progress": OptionSpec(_boolean, "sigv4-proxy loadtest only: the live progress line"),
    "mode": OptionSpec(_required(_text_or_none), "sigv4-proxy loadtest only: local, master or worker"),
    "master_host": OptionSpec(_required(_text_or_none), "sigv4-proxy loadtest only: the master's host"),
    "master_port": OptionSpec(_required(_int_or_none), "sigv4-proxy loadtest only: the master's port"),
    "master_bind_host": OptionSpec(_required(_text_or_none), "sigv4-proxy loadtest only: the master's address"),
    "expect_workers": OptionSpec(_required(_int_or_none), "sigv4-proxy loadtest only: workers to wait for"),
    "expect_workers_timeout": OptionSpec(_required(_float_or_none), "sigv4-proxy loadtest only: seconds to wait"),
    "run_id": OptionSpec(_text_or_none, "tags this run's rows (default: generated)"),
    "emulator_identity": OptionSpec(_text_or_none, "the identity of an emulator the master started", secret=True),
    "emulate": OptionSpec(_boolean, "start emulate dsql (the default when no --dsql-target-hostname is given)"),
    "target_hostname": OptionSpec(_text_or_none, "the cluster host (SNI, certificate and token name it)", True),
    "target_hostaddr": OptionSpec(_text_or_none, "dial this address instead of resolving the host", True),
    "target_port": OptionSpec(_required(_int_or_none), "the cluster's port", True),
    "target_user": OptionSpec(_required(_text_or_none), "the database role (admin: DbConnectAdmin)", True),
    "target_dbname": OptionSpec(_required(_text_or_none), "the database", True),
    "target_region": OptionSpec(_text_or_none, "the signing region (default: from the host)", True),
    "target_profile": OptionSpec(_text_or_none, "the AWS profile for credentials (default: the default chain)"),
    "target_sslmode": OptionSpec(_required(_text_or_none), "libpq sslmode (disable for a sigv4-proxy pg port)"),
    "target_sslrootcert": OptionSpec(_required(_text_or_none), "libpq sslrootcert (system: the OS trust store)"),
    "target_expires_in": OptionSpec(_required(_int_or_none), "token lifetime in seconds (one token per connection)"),
    "target_cluster_id": OptionSpec(_text_or_none, "the cluster id behind a PrivateLink host without private DNS"),
    "target_password": OptionSpec(_text_or_none, "a fixed password instead of a token", secret=True),
    "target_mint_tokens": OptionSpec(_boolean, "false: no token (a sigv4-proxy pg port signs upstream)"),
}


def add_dsql_options(parser: ArgumentParser) -> None:
    """The ``--dsql-*`` options on Locust's parser; dests are settings.to_options' keys, defaults
    LoadtestSettings' (emulate dsql, 2 iterations, scenario single, ...)."""
    group = parser.add_argument_group("DSQL load test (sigv4-proxy)")
    for key, default in option_defaults().items():
        spec = OPTION_SPECS[key.removeprefix(OPTION_PREFIX)]
        action = group.add_argument(
            "--" + key.replace("_", "-"), dest=key, type=spec.convert, default=default, help=spec.help
        )
        # What LocustArgumentParser.add_argument sets (a group's add_argument is argparse's own): the web UI
        # lists the actions that carry include_in_web_ui.
        action.include_in_web_ui = spec.web_ui  # type: ignore[attr-defined]
        action.is_secret = spec.secret  # type: ignore[attr-defined]
        action.is_required = False  # type: ignore[attr-defined]
        action.is_multiple = False  # type: ignore[attr-defined]


def option_defaults() -> dict[str, Any]:
    """LoadtestSettings' defaults as options: emulate, and DsqlTarget's defaults for a target given by flags."""
    defaults = to_options(replace(LoadtestSettings(), target=DsqlTarget(hostname="")))
    defaults[OPTION_PREFIX + "emulate"] = True
    defaults[OPTION_PREFIX + "target_hostname"] = None
    return defaults


def settings_from(options: Any) -> LoadtestSettings:
    """Settings from Locust's parsed options, each value converted to its type first (Locust's web UI hands
    strings back for options whose default is None)."""
    values = dict(options if isinstance(options, dict) else vars(options))
    for name, spec in OPTION_SPECS.items():
        key = OPTION_PREFIX + name
        if key in values:
            values[key] = spec.convert(values[key])
    if values.get(OPTION_PREFIX + "target_hostname"):
        values[OPTION_PREFIX + "emulate"] = False
    return from_options(values)


# -- counters that travel worker -> master ----------------------------------------------------------------------


@dataclass
class RefusedLogin:
    sqlstate: str
    message: str
    count: int
    diagnosis: tuple[str, ...]


@dataclass
class Tally:
    """What users did beyond Locust's own statistics (request counts, latencies, failures)."""

    occ_retries: int = 0
    occ_gave_up: int = 0
    users_done: int = 0  # users that ended (their iterations run, or stopped when asked)
    refused_logins: dict[str, RefusedLogin] = field(default_factory=dict)  # by message (deduplicated)

    def add(self, other: Tally) -> None:
        self.occ_retries += other.occ_retries
        self.occ_gave_up += other.occ_gave_up
        self.users_done += other.users_done
        for message, login in other.refused_logins.items():
            self.add_refused_login(login.sqlstate, message, login.diagnosis, login.count)

    def add_refused_login(self, sqlstate: str, message: str, diagnosis: tuple[str, ...], count: int = 1) -> None:
        known = self.refused_logins.get(message)
        if known is None:
            self.refused_logins[message] = RefusedLogin(sqlstate, message, count, diagnosis)
        else:
            known.count += count

    def to_message(self) -> dict[str, Any]:
        """msgpack-friendly (Locust ships reports with msgpack)."""
        return {
            "occ_retries": self.occ_retries,
            "occ_gave_up": self.occ_gave_up,
            "users_done": self.users_done,
            "refused_logins": [
                [login.sqlstate, login.message, login.count, list(login.diagnosis)]
                for login in self.refused_logins.values()
            ],
        }

    @classmethod
    def from_message(cls, data: Mapping[str, Any]) -> Tally:
        tally = cls(int(data["occ_retries"]), int(data["occ_gave_up"]), int(data["users_done"]))
        for sqlstate, message, count, diagnosis in data["refused_logins"]:
            tally.add_refused_login(sqlstate, message, tuple(diagnosis), int(count))
        return tally


class LoadState:
    """One process's view of the run: its settings (read from the parsed options when a test starts, which on a
    worker is after the master's options arrived), the credentials, and the counters (a master's come from its
    workers' reports).

    A user ends by itself: after its iterations, or at its next iteration once a stop is requested (the
    duration passed; a master forwards the request to its workers). So no transaction is cut, and
    ``finished`` (local, master) is set when every user has ended, with every number reported."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self.settings = LoadtestSettings()
        self.credentials: CredentialSource | None = None
        self.totals = Tally()  # everything this process knows of
        self.unreported = Tally()  # a worker's, since its last report to the master
        self.finished = threading.Event()  # gevent's, once locust has patched the process
        self.stop_requested = threading.Event()
        self.on_finished: list[Callable[[], None]] = []
        self.problem: str | None = None  # what is wrong with the options a test started with

    @property
    def is_worker(self) -> bool:
        return isinstance(self.environment.runner, locust.runners.WorkerRunner)

    def begin(self) -> None:
        options = self.environment.parsed_options
        self.problem = None
        try:
            self.settings = settings_from(options) if options is not None else LoadtestSettings()
            checked = self.settings
            if checked.iterations is None and checked.duration is None:
                # Plain locust: its own stop (the web UI's button, --run-time) may end the run instead.
                checked = replace(checked, duration=1.0)
            problems = settings_problems(checked)
        except (TypeError, ValueError) as exc:  # a value typed into Locust's web UI
            self.settings, problems = LoadtestSettings(), [f"a --dsql-* option is not valid: {exc}"]
        if problems:
            # Every user then fails its first connect with this text, and ends: the run shows why.
            self.problem = "; ".join(problems)
            self.settings = replace(self.settings, target=None)
            _log.error("loadtest: %s", self.problem)
        self.credentials = credentials_for(self.settings)
        if self.settings.target is not None:
            warm_up(self.credentials)
        self.totals, self.unreported = Tally(), Tally()
        self.finished.clear()
        self.stop_requested.clear()

    def record(self, change: Tally) -> None:
        self.totals.add(change)
        self.unreported.add(change)
        self._check_finished()

    def received(self, data: Mapping[str, Any]) -> None:
        """A worker's report (master)."""
        if REPORT_KEY in data:
            self.totals.add(Tally.from_message(data[REPORT_KEY]))
            self._check_finished()

    def drain(self) -> dict[str, Any]:
        """This worker's counters since its last report, for the next one."""
        message = self.unreported.to_message()
        self.unreported = Tally()
        return message

    def report_now(self) -> None:
        """A worker sends its statistics and counters at once (not at Locust's next 3-second report): the master
        ends the run when the last user has ended, and must have every number by then."""
        runner = self.environment.runner
        if not isinstance(runner, locust.runners.WorkerRunner):
            return
        try:
            runner._send_stats()  # Locust's own report: its stats listeners, then ours
        except Exception as exc:  # the master is gone: Locust's own reporter says so (and the next report retries)
            _log.debug("loadtest: an immediate report to the master failed: %s", exc)

    def request_stop(self) -> None:
        """Every user ends after its current transaction (a master tells its workers)."""
        self.stop_requested.set()
        runner = self.environment.runner
        if isinstance(runner, locust.runners.MasterRunner):
            runner.send_message(STOP_MESSAGE)

    def _check_finished(self) -> None:
        if self.is_worker or self.finished.is_set() or self.totals.users_done < self.settings.users:
            return
        self.finished.set()
        for callback in self.on_finished:
            callback()


_STATES: dict[int, LoadState] = {}  # by id(environment): Environment is not ours to add attributes to


def install(environment: Environment) -> LoadState:
    """The load test's listeners on `environment`'s events (once per environment, after its runner is created);
    its LoadState."""
    known = _STATES.get(id(environment))
    if known is not None and known.environment is environment:
        return known
    state = LoadState(environment)
    _STATES[id(environment)] = state

    def on_test_start(**_: Any) -> None:
        state.begin()

    def on_report_to_master(client_id: str, data: dict[str, Any], **_: Any) -> None:
        data[REPORT_KEY] = state.drain()

    def on_worker_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
        state.received(data)

    def on_test_stop(**_: Any) -> None:
        state.report_now()  # a worker's last transactions, before the master counts the rows

    def on_stop_message(**_: Any) -> None:
        state.stop_requested.set()

    events_ = environment.events
    events_.test_start.add_listener(on_test_start)
    events_.report_to_master.add_listener(on_report_to_master)
    events_.worker_report.add_listener(on_worker_report)
    events_.test_stop.add_listener(on_test_stop)
    if isinstance(environment.runner, locust.runners.WorkerRunner):
        environment.runner.register_message(STOP_MESSAGE, on_stop_message)
    return state


def state_of(environment: Environment) -> LoadState:
    state = _STATES.get(id(environment))
    if state is None or state.environment is not environment:
        return install(environment)
    return state


# -- the user ---------------------------------------------------------------------------------------------------


class DsqlUser(User):
    """One client: one connection (reconnected after it breaks), ``iterations`` transactions, then it stops."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self._load = state_of(environment)
        self._connection: psycopg.Connection[Any] | None = None
        self._iterations_done = 0
        self._random = random.Random()
        self._pacing: Callable[[User], float] | None = None
        self._statement: sql.Composed | None = None
        self._retry_stats = RetryStats()

    def wait_time(self) -> float:  # Locust's attribute, as a method
        """The --rate pacing, cut short by a stop request (the user then ends at once, not after its pause)."""
        settings = self._load.settings
        if settings.rate is None:
            return 0.0
        if self._pacing is None:
            self._pacing = locust.constant_throughput(settings.rate / max(settings.users, 1))
        self._load.stop_requested.wait(self._pacing(self))
        return 0.0

    def on_stop(self) -> None:
        self._close()

    @task
    def iteration(self) -> None:
        settings = self._load.settings
        if self._load.stop_requested.is_set():
            self._end()
        connection = self._connected()
        if connection is not None:
            self._transaction(connection, settings)
        self._iterations_done += 1
        if settings.iterations is not None and self._iterations_done >= settings.iterations:
            self._end()
        if connection is None:  # no tight loop of refused logins; a stop request cuts the pause short
            self._load.stop_requested.wait(CONNECT_FAILURE_PAUSE)

    def _end(self) -> None:
        self._close()
        self._load.record(Tally(users_done=1))
        self._load.report_now()
        raise StopUser()

    def _connected(self) -> psycopg.Connection[Any] | None:
        if self._connection is not None and not connection_unusable(self._connection):
            return self._connection
        self._close()
        target = self._load.settings.target
        started = time.perf_counter()
        try:
            if target is None:  # the engine always sets one, plain locust on init: unless an option is wrong
                raise RuntimeError(self._load.problem or "no target: no --dsql-target-hostname and no emulator")
            self._connection = open_connection(target, self._load.credentials)
        except Exception as exc:
            failure = describe_failure(exc, connecting=True)
            self._report(OP_CONNECT, started, 0, failure)
            if failure.login_refused:
                refused = Tally()
                refused.add_refused_login(failure.sqlstate, failure.message, failure.diagnosis)
                self._load.record(refused)
            return None
        self._report(OP_CONNECT, started, 0, None)
        return self._connection

    def _transaction(self, connection: psycopg.Connection[Any], settings: LoadtestSettings) -> None:
        stats = self._retry_stats
        rows = settings.rows_per_transaction
        conflicts, gave_up = stats.conflicts, stats.gave_up
        started = time.perf_counter()
        try:
            if self._statement is None:
                self._statement = insert_statement(settings.table, rows)
            statement = self._statement
            parameters = batch_parameters([event_row(settings.run_id, self._random) for _ in range(rows)])
            started = time.perf_counter()  # the transaction's latency, not the rows' generation
            run_transaction(
                connection, lambda conn: conn.execute(statement, parameters), retries=OCC_RETRIES, stats=stats
            )
        except Exception as exc:
            self._report(OP_TRANSACTION, started, 0, describe_failure(exc, connecting=False))
            if connection_unusable(connection):
                self._close()
        else:
            self._report(OP_TRANSACTION, started, rows, None)
        finally:
            change = Tally(occ_retries=stats.conflicts - conflicts, occ_gave_up=stats.gave_up - gave_up)
            if change.occ_retries or change.occ_gave_up:
                self._load.record(change)

    def _report(self, name: str, started: float, rows: int, failure: Failure | None) -> None:
        self.environment.events.request.fire(
            request_type=REQUEST_TYPE,
            name=name,
            response_time=(time.perf_counter() - started) * 1000.0,
            response_length=rows,
            response=None,
            context={},
            exception=DsqlFailure(failure) if failure is not None else None,
        )

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception as exc:  # closing a broken connection: nothing left to do with it
                _log.debug("closing a connection failed: %s", type(exc).__name__)


# -- plain `locust -f` --------------------------------------------------------------------------------------------


@events.init_command_line_parser.add_listener
def _on_command_line_parser(parser: ArgumentParser, **_: Any) -> None:
    add_dsql_options(parser)


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    """Only Locust's own command line fires this (the engine builds its environment with events of its own)."""
    state = install(environment)
    if not state.is_worker:
        from sigv4_proxy.loadtest.standalone import Standalone

        Standalone(environment, state).start()
