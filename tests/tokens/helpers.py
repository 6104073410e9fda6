"""Shared test data for the token tests: fixed credentials, a fixed clock, botocore as the oracle."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from unittest import mock
from urllib.parse import unquote

os.environ.setdefault("BOTO_DISABLE_CRT", "true")  # before botocore is imported: its pure-Python signer

from sigv4_proxy.signing.model import Credentials

ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
TEMP_KEY = "ASIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
# A session token with every character class a real one has, plus some that must be escaped in a query.
AWKWARD_TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJH+MEUCIQ==&x y%z~é"
NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)

LONG_TERM = Credentials(ACCESS_KEY, SECRET)
TEMPORARY = Credentials(TEMP_KEY, SECRET, AWKWARD_TOKEN)


@contextmanager
def frozen_botocore(now: datetime) -> Iterator[None]:
    """botocore's SigV4QueryAuth stamps requests with `botocore.auth.get_current_datetime()` (naive UTC).

    The pure-Python signer is forced even when awscrt is installed and botocore was imported before
    BOTO_DISABLE_CRT was set (the CRT signer reads the clock elsewhere, so the freeze would not hold)."""
    import botocore.auth

    naive = now.astimezone(timezone.utc).replace(tzinfo=None)
    python_signers = {"v4": botocore.auth.SigV4Auth, "v4-query": botocore.auth.SigV4QueryAuth}
    with (
        mock.patch.dict(botocore.auth.AUTH_TYPE_MAPS, python_signers),
        mock.patch.object(botocore.auth, "get_current_datetime", lambda *args, **kwargs: naive),
    ):
        yield


def botocore_client(service: str, credentials: Credentials, region: str = "us-east-1"):  # type: ignore[no-untyped-def]
    import botocore.session

    session = botocore.session.Session()
    session.set_credentials(credentials.access_key_id, credentials.secret_access_key, credentials.session_token)
    return session.create_client(service, region_name=region)


def token_fields(token: str) -> dict[str, object]:
    """host (lower-case) + decoded query parameters, order ignored: botocore's CRT and Python signers order
    the query differently, so tokens are compared by their fields, never byte for byte."""
    host, _, query = token.partition("/?")
    params: dict[str, str] = {}
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        assert name not in params, f"duplicate parameter {name}"
        params[unquote(name)] = unquote(value)
    return {"host": host.lower(), **params}
