"""What a DSQL load test runs: its target and its shape. Plain data, no I/O.

`sigv4-proxy loadtest dsql` (:mod:`sigv4_proxy.cli.loadtest`) builds :class:`LoadtestSettings` from its flags;
Locust's own command line (``locust -f sigv4_proxy/loadtest/locustfile.py``) builds it from the ``--dsql-*``
options the locustfile adds. Both travel to Locust workers as Locust's parsed options (the master forwards its
custom options with every spawn message), hence :func:`to_options` / :func:`from_options`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

Scenario = Literal["single", "batch"]
Mode = Literal["local", "master", "worker"]
SCENARIOS: tuple[Scenario, ...] = ("single", "batch")
MAX_ROWS_PER_TRANSACTION = 3000  # DSQL: 3,000 rows modified per transaction (54000 beyond)
DEFAULT_TABLE = "event_headers"
DEFAULT_MASTER_PORT = 5557  # Locust's own default
# An unquoted PostgreSQL identifier, optionally schema-qualified: the table name goes into DDL and DML, so it is
# checked here once, and quoted as an identifier where it is used.
_TABLE_NAME = re.compile(r"^(?:[a-z_][a-z0-9_]{0,62}\.)?[a-z_][a-z0-9_]{0,62}$")
OPTION_PREFIX = "dsql_"  # Locust option names: --dsql-hostname ... (dest dsql_hostname)


@dataclass(frozen=True)
class DsqlTarget:
    """The cluster the users connect to (a real one, `emulate dsql`, or `sigv4-proxy pg` in front of one)."""

    hostname: str  # the cluster host: SNI, the certificate check and the token name it
    hostaddr: str | None = None  # dial this address instead of resolving hostname (libpq's hostaddr)
    port: int = 5432
    user: str = "admin"
    dbname: str = "postgres"
    region: str | None = None  # None: from the hostname
    profile: str | None = None  # AWS profile for credentials; None: the default chain
    sslmode: str = "verify-full"  # "disable" for a local `sigv4-proxy pg` port (it does TLS upstream)
    sslrootcert: str = "system"
    expires_in: int = 900  # token lifetime; one token per connection
    cluster_id: str | None = None  # PrivateLink without private DNS (hostname is the vpce-... name)
    password: str | None = None  # a fixed password instead of tokens (only for a `sigv4-proxy pg` port: none)
    mint_tokens: bool = True  # False: no token (a `sigv4-proxy pg` port signs for us)

    def describe(self) -> str:
        """Where it connects, for the summary and logs (no secret)."""
        address = f" via {self.hostaddr}" if self.hostaddr else ""
        return f"{self.user}@{self.hostname}:{self.port}{address}/{self.dbname}"


@dataclass(frozen=True)
class LoadtestSettings:
    target: DsqlTarget | None = None  # None: start `emulate dsql` (--emulate, the default)
    users: int = 5
    spawn_rate: float | None = None  # users started per second; None: all at once
    iterations: int | None = 2  # per user; None: until --duration
    scenario: Scenario = "single"
    batch_size: int = 10  # rows per transaction in the batch scenario
    duration: float | None = None  # seconds; stops the run even when iterations remain
    rate: float | None = None  # transactions per second across all users (Locust's constant_throughput)
    table: str = DEFAULT_TABLE
    report: Path | None = None  # .html or .json
    progress: bool = True  # the live progress line on stderr
    mode: Mode = "local"
    master_host: str = "127.0.0.1"  # --worker: where the master is
    master_port: int = DEFAULT_MASTER_PORT
    master_bind_host: str = "127.0.0.1"  # --master: loopback unless told otherwise
    expect_workers: int = 1  # --master: wait for this many workers before starting
    expect_workers_timeout: float = 60.0
    run_id: str = ""  # tags this run's rows (the count at the end counts them); set by the runner
    emulator_identity: str | None = field(default=None, repr=False)  # --emulate on a master: its workers' identity

    @property
    def emulate(self) -> bool:
        return self.target is None

    @property
    def rows_per_transaction(self) -> int:
        return 1 if self.scenario == "single" else self.batch_size

    @property
    def expected_rows(self) -> int | None:
        """Rows the run must insert, when it is bounded by iterations (a --duration run has no fixed count)."""
        if self.iterations is None or self.duration is not None:
            return None
        return self.users * self.iterations * self.rows_per_transaction


def settings_problems(settings: LoadtestSettings) -> list[str]:
    """Every problem with the settings, each one line saying what to type instead (empty: fine)."""
    problems: list[str] = []
    if settings.users < 1:
        problems.append(f"--users must be at least 1, got {settings.users}")
    if settings.iterations is not None and settings.iterations < 1:
        problems.append(f"--iterations must be at least 1, got {settings.iterations}")
    if settings.scenario not in SCENARIOS:
        problems.append(f"--scenario must be {' or '.join(SCENARIOS)}, got: {settings.scenario}")
    if settings.iterations is None and settings.duration is None:
        problems.append("a run needs --iterations or --duration (or both: whichever ends first)")
    if not 1 <= settings.batch_size <= MAX_ROWS_PER_TRANSACTION:
        problems.append(
            f"--batch-size must be between 1 and {MAX_ROWS_PER_TRANSACTION} (DSQL modifies at most "
            f"{MAX_ROWS_PER_TRANSACTION} rows per transaction), got {settings.batch_size}"
        )
    if settings.duration is not None and settings.duration <= 0:
        problems.append(f"--duration must be more than 0 seconds, got {settings.duration:g}")
    if settings.rate is not None and settings.rate <= 0:
        problems.append(f"--rate must be more than 0 transactions per second, got {settings.rate:g}")
    if settings.spawn_rate is not None and settings.spawn_rate <= 0:
        problems.append(f"--spawn-rate must be more than 0 users per second, got {settings.spawn_rate:g}")
    if not _TABLE_NAME.match(settings.table):
        problems.append(
            f"--table {settings.table!r} is not a plain table name: lower-case letters, digits and _, "
            "optionally schema.table (for example event_headers)"
        )
    if settings.report is not None and settings.report.suffix.lower() not in (".html", ".json"):
        problems.append(f"--report {str(settings.report)!r} must end in .html or .json")
    return problems


def to_options(settings: LoadtestSettings) -> dict[str, Any]:
    """The settings as Locust option values (``dsql_*`` names), which a master forwards to its workers."""
    options: dict[str, Any] = {}
    for item in fields(LoadtestSettings):
        if item.name == "target":
            continue
        value = getattr(settings, item.name)
        options[OPTION_PREFIX + item.name] = str(value) if isinstance(value, Path) else value
    target = settings.target
    options[OPTION_PREFIX + "emulate"] = target is None
    for item in fields(DsqlTarget):
        options[OPTION_PREFIX + "target_" + item.name] = getattr(target, item.name) if target is not None else None
    return options


def from_options(options: Any) -> LoadtestSettings:
    """Settings from Locust's parsed options (a namespace or a dict with the ``dsql_*`` names of
    :func:`to_options`); a name that is absent keeps its default (None is a value: ``iterations=None`` runs
    until the duration)."""
    values = options if isinstance(options, dict) else vars(options)
    settings = LoadtestSettings()
    changes: dict[str, Any] = {}
    for item in fields(LoadtestSettings):
        key = OPTION_PREFIX + item.name
        if item.name != "target" and key in values:
            value = values[key]
            changes[item.name] = Path(value) if item.name == "report" and value is not None else value
    if not values.get(OPTION_PREFIX + "emulate", True) and values.get(OPTION_PREFIX + "target_hostname"):
        target_values = {
            item.name: values[OPTION_PREFIX + "target_" + item.name]
            for item in fields(DsqlTarget)
            if OPTION_PREFIX + "target_" + item.name in values
        }
        changes["target"] = DsqlTarget(**target_values)
    return replace(settings, **changes)
