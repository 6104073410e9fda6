"""inspect --compare: field-by-field differences (order ignored) and the one that explains the signatures."""

from __future__ import annotations

from datetime import timedelta

from sigv4_proxy import dsql_token
from sigv4_proxy.inspection import compare_tokens, render_comparison
from sigv4_proxy.signing.model import Credentials
from sigv4_proxy.tokens import parse_token
from tests.tokens.corpus import HOST, LONG, SECRET, TEMP, hand_signed
from tests.tokens.helpers import NOW, botocore_client, frozen_botocore


def botocore_token() -> str:
    client = botocore_client("dsql", LONG)
    with frozen_botocore(NOW):
        return client.generate_db_connect_auth_token(HOST, "us-east-1")


def test_same_token_in_another_parameter_order_is_identical() -> None:
    comparison = compare_tokens(parse_token(dsql_token(HOST, credentials=LONG, now=NOW)), parse_token(botocore_token()))
    assert comparison.diffs == ()
    assert comparison.same_signature and comparison.order_differs
    assert comparison.explanation.startswith("The signatures are identical")


def test_java_signer_token_differs_by_the_signed_host() -> None:
    comparison = compare_tokens(parse_token(botocore_token()), parse_token(hand_signed(token_host=f"{HOST}:5432")))
    assert [d.name for d in comparison.diffs] == ["host", "signature"]
    assert comparison.explanation == (
        f"The signatures differ because of host ({HOST} vs {HOST}:5432): the signed host differs: the host (with "
        "any port) is part of the canonical request."
    )


def test_tokens_made_at_different_times() -> None:
    later = dsql_token(HOST, credentials=LONG, now=NOW + timedelta(seconds=3))
    comparison = compare_tokens(parse_token(botocore_token()), parse_token(later))
    assert comparison.explanation.startswith(
        "The signatures differ because of X-Amz-Date (20240501T120000Z vs "
        "20240501T120003Z): the tokens were signed at different times"
    )


def test_missing_session_token_is_named_without_showing_it() -> None:
    with_token = parse_token(dsql_token(HOST, credentials=TEMP, now=NOW))
    without = parse_token(dsql_token(HOST, credentials=Credentials(TEMP.access_key_id, SECRET), now=NOW))
    comparison = compare_tokens(with_token, without)
    assert [d.name for d in comparison.diffs] == ["X-Amz-Security-Token", "signature"]
    assert comparison.explanation.startswith("The signatures differ because of X-Amz-Security-Token (present (")
    text = render_comparison(comparison) + str(comparison.to_dict())
    assert TEMP.session_token is not None and TEMP.session_token not in text


def test_only_the_signature_differs() -> None:
    ours = parse_token(dsql_token(HOST, credentials=LONG, now=NOW))
    theirs = parse_token(hand_signed(signed_host=f"{HOST}:5432"))
    comparison = compare_tokens(ours, theirs)
    assert [d.name for d in comparison.diffs] == ["signature"]
    assert comparison.explanation.startswith("Every signed field is equal, yet the signatures differ")


def test_encoding_difference_is_reported() -> None:
    good = dsql_token(HOST, credentials=LONG, now=NOW)
    comparison = compare_tokens(parse_token(good), parse_token(good.replace("%2F", "%2f")))
    assert [d.name for d in comparison.diffs] == ["encoding of X-Amz-Credential"]
    assert comparison.same_signature


def test_service_and_action_differences() -> None:
    rds_style = hand_signed(service="rds-db", params=[("Action", "connect")])
    comparison = compare_tokens(parse_token(botocore_token()), parse_token(rds_style))
    assert [d.name for d in comparison.diffs] == ["scope service", "Action", "signature"]
    assert "scope service (dsql vs rds-db)" in comparison.explanation
