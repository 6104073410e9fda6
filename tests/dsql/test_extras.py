"""A helper whose driver is not installed says which extra installs it (simulated: the module set to None in
sys.modules makes its import fail as a missing package does)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from sigv4_proxy import dsql as helpers
from sigv4_proxy.errors import MissingExtraError

HOST = "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws"


def _message(feature: str, extra: str, module: str) -> str:
    return (
        f"{feature} needs the optional [{extra}] dependencies ({module} is not installed): in the project's "
        f"clone, reinstall with them: pip install '.[{extra}]' (or pipx install --force '.[{extra}]', "
        f"or uv tool install --force '.[{extra}]')"
    )


@pytest.mark.parametrize(
    ("module", "call", "expected"),
    [
        ("psycopg", lambda: helpers.connect(HOST), _message("sigv4_proxy.dsql.connect", "psycopg", "psycopg")),
        ("psycopg_pool", lambda: helpers.create_pool(HOST),
         _message("sigv4_proxy.dsql.create_pool", "psycopg", "psycopg_pool")),
        ("psycopg_pool", lambda: helpers.create_async_pool(HOST),
         _message("sigv4_proxy.dsql.create_async_pool", "psycopg", "psycopg_pool")),
        ("sqlalchemy", lambda: helpers.create_engine(HOST),
         _message("sigv4_proxy.dsql.create_engine", "sqlalchemy", "sqlalchemy")),
        ("psycopg", lambda: helpers.create_engine(HOST),
         _message("sigv4_proxy.dsql.create_engine", "sqlalchemy", "psycopg")),
    ],
    ids=["connect", "create_pool", "create_async_pool", "create_engine", "create_engine-psycopg"],
)  # fmt: skip
def test_sync_helpers_name_their_extra(
    monkeypatch: pytest.MonkeyPatch, module: str, call: Callable[[], Any], expected: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingExtraError) as failure:
        call()
    assert str(failure.value) == expected
    assert failure.value.kind == "missing-dependency"


@pytest.mark.parametrize(
    ("module", "call", "expected"),
    [
        ("asyncpg", lambda: helpers.asyncpg_connect(HOST),
         _message("sigv4_proxy.dsql.asyncpg_connect", "asyncpg", "asyncpg")),
        ("asyncpg", lambda: helpers.asyncpg_create_pool(HOST),
         _message("sigv4_proxy.dsql.asyncpg_create_pool", "asyncpg", "asyncpg")),
        ("psycopg", lambda: helpers.connect_async(HOST),
         _message("sigv4_proxy.dsql.connect_async", "psycopg", "psycopg")),
    ],
    ids=["asyncpg_connect", "asyncpg_create_pool", "connect_async"],
)  # fmt: skip
async def test_async_helpers_name_their_extra(
    monkeypatch: pytest.MonkeyPatch, module: str, call: Callable[[], Awaitable[Any]], expected: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingExtraError) as failure:
        await call()
    assert str(failure.value) == expected


def test_the_connection_classes_name_their_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.delitem(sys.modules, "sigv4_proxy.dsql._psycopg_connection", raising=False)
    with pytest.raises(MissingExtraError) as failure:
        importlib.import_module("sigv4_proxy.dsql._psycopg_connection")
    assert str(failure.value) == _message(
        "sigv4_proxy.dsql.DsqlConnection (and AsyncDsqlConnection)", "psycopg", "psycopg"
    )


def test_retries_and_diagnosis_need_no_driver() -> None:
    # A process of its own: importing the modules afresh here would leave two copies of them in this one.
    script = (
        "import sys\n"
        "for name in ('psycopg', 'psycopg_pool', 'asyncpg', 'sqlalchemy'): sys.modules[name] = None\n"
        "from sigv4_proxy.dsql import Backoff, RetryStats, diagnosis_of, is_occ_conflict, run_transaction\n"
        "print(Backoff().ceiling(1), RetryStats().transactions, diagnosis_of(ValueError()), "
        "is_occ_conflict(ValueError()))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, "0.02 0 () False\n", "")


def test_public_names() -> None:
    assert helpers.__all__ == sorted(
        [
            "AsyncDsqlConnection",
            "Backoff",
            "DsqlConnection",
            "RetryStats",
            "asyncpg_connect",
            "asyncpg_create_pool",
            "connect",
            "connect_async",
            "create_async_pool",
            "create_engine",
            "create_pool",
            "diagnosis_of",
            "is_occ_conflict",
            "run_transaction",
            "run_transaction_async",
        ]
    )
    assert set(dir(helpers)) >= set(helpers.__all__)
