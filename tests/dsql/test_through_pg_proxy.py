"""Through `sigv4-proxy pg` the proxy signs: the helpers send no token (``iam_auth=False``) and talk plain
PostgreSQL to the local listener; pools and run_transaction work the same."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sigv4_proxy import dsql as helpers
from sigv4_proxy.emulate.dsql.server import DsqlEmulator
from sigv4_proxy.errors import ConfigError
from tests.dsql.conftest import Cast, connect

pytest.importorskip("prometheus_client")

TABLE = "dsql_helpers_through_proxy"


def _local(proxy: Any) -> dict[str, Any]:
    params = proxy.libpq_params(0)
    return {"port": int(params["port"]), "sslmode": "disable", "iam_auth": False}


@pytest.fixture
def table(dsql: DsqlEmulator, cast: Cast) -> str:
    with connect(dsql, "admin", cast.admin) as conn:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (id uuid PRIMARY KEY, note text)")
    return TABLE


@pytest.mark.usefixtures("no_shared_providers")  # no AWS credentials here: a helper that tried to sign would fail
def test_pool_and_run_transaction_through_the_proxy(
    dsql: DsqlEmulator, proxy_for: Callable[..., Any], table: str
) -> None:
    proxy = proxy_for(dsql)
    stats = helpers.RetryStats()

    def insert(conn: Any) -> Any:
        return conn.execute(f"INSERT INTO {table} VALUES (gen_random_uuid(), 'via proxy') RETURNING id").fetchone()[0]

    with helpers.create_pool("127.0.0.1", max_size=2, **_local(proxy)) as pool:
        inserted = [helpers.run_transaction(pool, insert, stats=stats) for _ in range(3)]
        with pool.connection() as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("admin",)
            found = conn.execute(f"SELECT count(*) FROM {table} WHERE id = ANY(%s)", (inserted,)).fetchone()
    assert (found, stats.transactions, stats.conflicts) == ((3,), 3, 0)


@pytest.mark.usefixtures("no_shared_providers")
async def test_connect_and_asyncpg_through_the_proxy(dsql: DsqlEmulator, proxy_for: Callable[..., Any]) -> None:
    proxy = proxy_for(dsql)
    with helpers.connect("127.0.0.1", autocommit=True, **_local(proxy)) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("admin",)
    pg = await helpers.asyncpg_connect("127.0.0.1", **_local(proxy))
    try:
        assert await helpers.run_transaction_async(pg, lambda c: c.fetchval("SELECT current_user")) == "admin"
    finally:
        await pg.close()


def test_an_iam_token_is_never_sent_in_clear_text() -> None:
    with pytest.raises(ConfigError) as failure:
        helpers.connect("abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws", sslmode="disable")
    assert failure.value.problems == [
        "sslmode=disable could send the IAM token unencrypted: use verify-full (the default), verify-ca or require"
    ]
