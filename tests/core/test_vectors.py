"""Every case of the AWS signing test suite, through the Python API: exact bytes for SigV4; for SigV4a the
canonical request and string to sign exactly, and the (randomised) signature verified with the suite's key."""

from __future__ import annotations

import re

import pytest

from sigv4_proxy import presign, sign
from sigv4_proxy.signing import v4a
from tests.vectors import ALL_CASES, V4_CASES, V4A_CASES, Case

HEADER_CASES = [c for c in ALL_CASES if c.has("header-canonical-request.txt")]
QUERY_CASES = [c for c in ALL_CASES if c.has("query-canonical-request.txt")]


def test_suite_is_complete() -> None:
    assert len(V4_CASES) == 38
    assert len(V4A_CASES) == 40
    assert len(HEADER_CASES) == 76 and len(QUERY_CASES) == 76


def sign_header_case(case: Case):
    ctx, req = case.context, case.request
    return sign(
        req.method,
        req.url(),
        req.headers,
        req.body,
        credentials=case.credentials,
        region=ctx["region"],
        service=ctx["service"],
        algorithm=case.algorithm,
        now=case.now,
        content_sha256_header=ctx["sign_body"],
        normalize_path=ctx["normalize"],
        omit_session_token=ctx.get("omit_session_token", False),
    )


def presign_case(case: Case):
    ctx, req = case.context, case.request
    return presign(
        req.method,
        req.url(),
        credentials=case.credentials,
        region=ctx["region"],
        service=ctx["service"],
        algorithm=case.algorithm,
        now=case.now,
        headers=req.headers,
        body=req.body,
        expires_in=ctx["expiration_in_seconds"],
        normalize_path=ctx["normalize"],
        omit_session_token=ctx.get("omit_session_token", False),
    )


def assert_signature(case: Case, variant: str, string_to_sign: str, signature: str) -> None:
    if case.algorithm == "v4":
        assert signature == case.file(f"{variant}-signature.txt").strip()
    else:
        key = v4a.public_key_from_xy(*case.public_key)
        assert v4a.verify_signature(key, string_to_sign, signature)
        # and the suite's own signature verifies against the same string to sign (our bytes are AWS's bytes)
        assert v4a.verify_signature(key, string_to_sign, case.file(f"{variant}-signature.txt").strip())


def expected_signed_request(case: Case, variant: str, our_signature: str) -> bytes:
    expected = case.file_bytes(f"{variant}-signed-request.txt")
    if case.algorithm == "v4a":  # randomised ECDSA: put our signature where the suite has its own
        pattern = rb"(X-Amz-Signature=|Signature=)[0-9a-f]+"
        expected, count = re.subn(pattern, lambda m: m.group(1) + our_signature.encode(), expected)
        assert count == 1
    return expected


@pytest.mark.parametrize("case", HEADER_CASES, ids=lambda c: c.id)
def test_header_signing(case: Case) -> None:
    signed = sign_header_case(case)
    assert signed.canonical_request == case.file("header-canonical-request.txt")
    assert signed.string_to_sign == case.file("header-string-to-sign.txt")
    assert_signature(case, "header", signed.string_to_sign, signed.signature)
    request = case.request
    rendered = request.render(extra_headers=list(signed.added_headers.items()))
    assert rendered == expected_signed_request(case, "header", signed.signature)


@pytest.mark.parametrize("case", QUERY_CASES, ids=lambda c: c.id)
def test_query_signing(case: Case) -> None:
    signed = presign_case(case)
    assert signed.canonical_request == case.file("query-canonical-request.txt")
    assert signed.string_to_sign == case.file("query-string-to-sign.txt")
    assert_signature(case, "query", signed.string_to_sign, signed.signature)
    request = case.request
    target = signed.url.split(request.header("host") or "", 1)[1]
    assert request.render(target=target) == expected_signed_request(case, "query", signed.signature)


@pytest.mark.parametrize("case", [c for c in V4A_CASES if c.has("public-key.json")], ids=lambda c: c.id)
def test_v4a_key_derivation_reproduces_public_key(case: Case) -> None:
    creds = case.credentials
    assert v4a.public_key_xy(creds.access_key_id, creds.secret_access_key) == case.public_key


def test_v4a_legacy_get_vanilla_copies() -> None:
    case = next(c for c in V4A_CASES if c.name == "get-vanilla")
    signed = sign_header_case(case)
    assert signed.canonical_request == case.file("canonical-request.txt")
    assert signed.string_to_sign == case.file("string-to-sign.txt")


@pytest.mark.parametrize(
    "case", [c for c in V4A_CASES if not c.has("header-canonical-request.txt")], ids=lambda c: c.id
)
def test_v4a_cases_without_expected_output_still_sign_and_verify(case: Case) -> None:
    # These two cases ship only a request; they must sign, and the signature must verify with the derived key.
    signed = sign_header_case(case)
    creds = case.credentials
    key = v4a.private_key(creds.access_key_id, creds.secret_access_key).public_key()
    assert v4a.verify_signature(key, signed.string_to_sign, signed.signature)
