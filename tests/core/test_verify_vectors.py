"""verify() accepts every request of the AWS suite signed by us (header and presigned, v4 and v4a), and the
suite's own signed requests (byte-for-byte AWS output) as well."""

from __future__ import annotations

import pytest

from sigv4_proxy import verify
from sigv4_proxy.signing.canonical import normalize_path
from sigv4_proxy.signing.rawrequest import parse_raw_request
from tests.core.test_vectors import HEADER_CASES, QUERY_CASES, presign_case, sign_header_case
from tests.vectors import Case


def lookup(case: Case):
    return lambda key: case.credentials if key == case.credentials.access_key_id else None


def verify_raw(case: Case, raw: bytes):
    request = parse_raw_request(raw)
    return verify(
        request.method,
        request.target,
        request.headers,
        request.body,
        credentials_for=lookup(case),
        now=case.now,
        region=case.context["region"],
        service=case.context["service"],
        accept_unsigned_session_token=case.context.get("omit_session_token", False),
    )


def expect_ok(case: Case) -> bool:
    # verify() canonicalises paths as AWS services do (normalised). The suite's unnormalised cases sign dot
    # segments and double slashes verbatim, which a normalising server rejects.
    path = case.request.target.partition("?")[0]
    return case.context["normalize"] or normalize_path(path) == path


@pytest.mark.parametrize("case", HEADER_CASES, ids=lambda c: c.id)
def test_suite_signed_request_verifies(case: Case) -> None:
    result = verify_raw(case, case.file_bytes("header-signed-request.txt"))
    assert result.ok is expect_ok(case), result.message


@pytest.mark.parametrize("case", QUERY_CASES, ids=lambda c: c.id)
def test_suite_presigned_request_verifies(case: Case) -> None:
    result = verify_raw(case, case.file_bytes("query-signed-request.txt"))
    assert result.ok is expect_ok(case), result.message


@pytest.mark.parametrize("case", HEADER_CASES, ids=lambda c: c.id)
def test_our_header_signature_verifies(case: Case) -> None:
    signed = sign_header_case(case)
    request = case.request
    result = verify(
        request.method,
        request.target,
        signed.headers,
        request.body,
        credentials_for=lookup(case),
        now=case.now,
    )
    assert result.ok is expect_ok(case), result.message
    if expect_ok(case):
        assert result.expected_canonical_request == signed.canonical_request


@pytest.mark.parametrize("case", QUERY_CASES, ids=lambda c: c.id)
def test_our_presigned_url_verifies(case: Case) -> None:
    signed = presign_case(case)
    request = case.request
    target = signed.url.split(request.header("host") or "", 1)[1]
    result = verify(
        request.method,
        target,
        request.headers,
        request.body,
        credentials_for=lookup(case),
        now=case.now,
        accept_unsigned_session_token=case.context.get("omit_session_token", False),
    )
    assert result.ok is expect_ok(case), result.message


def test_token_added_after_signing_is_rejected_unless_accepted() -> None:
    case = next(c for c in QUERY_CASES if c.id == "v4/post-sts-header-after")
    signed = presign_case(case)
    target = signed.url.split(case.request.header("host") or "", 1)[1]
    args = (case.request.method, target, case.request.headers, b"")
    strict = verify(*args, credentials_for=lookup(case), now=case.now)
    assert (strict.ok, strict.reason) == (False, "signature")
    assert verify(*args, credentials_for=lookup(case), now=case.now, accept_unsigned_session_token=True).ok


@pytest.mark.parametrize("field", ["signature", "token"])
def test_non_ascii_signature_or_token_is_rejected_not_raised(field: str) -> None:
    case = next(c for c in QUERY_CASES if c.id == "v4/get-vanilla-with-session-token")
    url = presign_case(case).url
    if field == "signature":
        url = url.replace("X-Amz-Signature=", "X-Amz-Signature=%C3%A9")
    else:
        url = url.replace("X-Amz-Security-Token=", "X-Amz-Security-Token=%C3%A9")
    target = url.split(case.request.header("host") or "", 1)[1]
    result = verify("GET", target, case.request.headers, b"", credentials_for=lookup(case), now=case.now)
    assert (result.ok, result.status) == (False, 403)
    assert result.reason == field
