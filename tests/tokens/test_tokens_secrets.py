"""Database tokens leave no secret and no session token in a process-wide cache.

A connection pool asks for a token per connection, all day, with credentials that rotate: the session token
goes into each token's query string, but never into a cache key that would outlive the credentials.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from sigv4_proxy import Credentials, dsql_token, rds_token
from tests.core.test_key_cache import assert_not_cached, assert_only_credentials_refer_to, fresh_key_id, fresh_secret
from tests.tokens.helpers import AWKWARD_TOKEN, NOW

DSQL = "abc123.dsql.us-east-1.on.aws"
RDS = "mydb.c9akciq32.us-east-1.rds.amazonaws.com"


@pytest.mark.parametrize("awkward", [False, True], ids=["base64-token", "token-needing-utf8-escapes"])
def test_tokens_cache_neither_the_secret_nor_the_session_token(awkward: bool) -> None:
    token = fresh_secret() + (AWKWARD_TOKEN if awkward else "")
    credentials = Credentials("ASIA" + fresh_key_id()[4:], fresh_secret(), token)
    encoded = quote(token, safe="-_.~")
    for admin in (False, True):
        assert encoded in dsql_token(DSQL, admin=admin, credentials=credentials, now=NOW)
    assert encoded in rds_token(RDS, 5432, "app", credentials=credentials, now=NOW)
    assert_not_cached(credentials.secret_access_key, token, encoded)
    assert_only_credentials_refer_to(credentials.secret_access_key, credentials)
    assert_only_credentials_refer_to(token, credentials)


def test_a_rotated_session_token_is_used_at_once() -> None:
    """New credentials (same key id, new secret and token), new token in the very next database token."""
    key_id = "ASIA" + fresh_key_id()[4:]
    first = Credentials(key_id, fresh_secret(), fresh_secret())
    second = Credentials(key_id, fresh_secret(), fresh_secret())
    before = dsql_token(DSQL, credentials=first, now=NOW)
    after = dsql_token(DSQL, credentials=second, now=NOW)
    old_token, new_token = (quote(c.session_token or "", safe="-_.~") for c in (first, second))
    assert old_token in before and new_token in after
    assert old_token not in after
    assert before.rsplit("X-Amz-Signature=", 1)[1] != after.rsplit("X-Amz-Signature=", 1)[1]
