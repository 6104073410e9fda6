"""Whatever is pasted, inspect answers: parse_token raises only SigningError, the checks and renderers never
raise, and no recognisable secret leaks into what they print (a mutation that destroys the parameter name
`X-Amz-Security-Token` makes its value an ordinary string, which no tool can tell from any other)."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from sigv4_proxy import dsql_token, presign, rds_token
from sigv4_proxy.errors import SigningError
from sigv4_proxy.inspection import compare_tokens, inspect_token, render_comparison, render_report, verify_token
from sigv4_proxy.signing.model import Credentials
from sigv4_proxy.tokens import parse_token
from tests.tokens.corpus import HOST, RDS_HOST, SECRET, TEMP
from tests.tokens.helpers import NOW

SEEDS = [
    dsql_token(HOST, credentials=TEMP, now=NOW),
    rds_token(RDS_HOST, 5432, "iam user", credentials=TEMP, now=NOW),
    presign(
        "GET",
        "https://bucket.s3.eu-west-1.amazonaws.com/a/b?x=1",
        credentials=TEMP,
        region="eu-west-1",
        service="s3",
        now=NOW,
    ).url,
]
ALPHABET = st.sampled_from([*"abcXYZ019%&=?/:+ .~-_\n", "%2F", "X-Amz-", "https://", ":5432", "é"])


@st.composite
def mangled(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(0, 6))):
        position = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "truncate"]))
        if action == "insert":
            text = text[:position] + draw(ALPHABET) + text[position:]
        elif action == "delete":
            text = text[:position] + text[position + draw(st.integers(1, 12)) :]
        else:
            text = text[:position]
    return text


@settings(max_examples=300, deadline=None)
@given(mangled())
def test_inspect_survives_any_input(text: str) -> None:
    try:
        token = parse_token(text)
    except SigningError:
        return
    report = inspect_token(token, now=NOW + timedelta(minutes=1), user="admin")
    rendered = render_report(report) + str(report.to_dict())
    result = verify_token(token, Credentials(token.access_key_id or "AKIAEXAMPLE", SECRET))
    rendered += str(result.to_dict())
    comparison = compare_tokens(token, parse_token(SEEDS[0]))
    rendered += render_comparison(comparison) + str(comparison.to_dict())
    assert SECRET not in rendered
    if token.session_token == TEMP.session_token:  # wherever the token is still recognisable, it never shows
        assert TEMP.session_token not in rendered


def test_sigv4a_presigned_url() -> None:
    url = presign(
        "GET",
        "https://abc.execute-api.us-east-1.amazonaws.com/prod/x",
        credentials=TEMP,
        region=["us-east-1", "us-west-2"],
        service="execute-api",
        algorithm="v4a",
        now=NOW,
    ).url
    token = parse_token(url)
    report = inspect_token(token, now=NOW)
    assert [f.code for f in report.findings if f.severity != "info"] == []
    assert verify_token(token, TEMP).ok
    assert not verify_token(token, Credentials(TEMP.access_key_id, "wrong", TEMP.session_token)).ok
