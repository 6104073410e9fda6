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
    )
    assert result.ok is expect_ok(case), result.message
