"""Header values are canonicalised as AWS's C signer does it: only ASCII whitespace is trimmed and folded.

aws-c-auth (awscrt) trims a header value and folds each run of `aws_isspace` bytes - SP, HT, LF, VT, FF, CR -
into one space. Nothing else: NBSP, NEL, U+2028, U+3000 and the other Unicode spaces, and the ASCII separators
U+001C-U+001F, are signed as they are. Python's `str.split()` folds all of those too; a verifier built on it
accepts a value the client never signed (`a<NBSP>b` passes for a signed `a  b`).

botocore canonicalises with `' '.join(value.split())`, so it disagrees with awscrt on exactly those characters
(see `test_botocore_folds_unicode_whitespace_that_awscrt_signs_as_is`); this signer follows awscrt, and the
botocore differential properties in test_differential.py draw header values without them.
"""

from __future__ import annotations

import io
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sigv4_proxy import Credentials, presign, sign, verify
from sigv4_proxy.signing.canonical import canonical_header_value

NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
HOST, REGION, SERVICE = "example.amazonaws.com", "us-east-1", "execute-api"
CREDENTIALS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")

# (value, its canonical form): what AWS's C signer signs for it.
NOT_FOLDED = [  # not ASCII whitespace: signed as is
    pytest.param("a\u00a0b", "a\u00a0b", id="nbsp"),
    pytest.param("\u00a0a\u00a0", "\u00a0a\u00a0", id="nbsp-at-the-edges"),
    pytest.param("a\u00a0\u00a0b", "a\u00a0\u00a0b", id="two-nbsp"),
    pytest.param("a\u0085b", "a\u0085b", id="nel"),
    pytest.param("a\u2028b", "a\u2028b", id="line-separator"),
    pytest.param("a\u2029b", "a\u2029b", id="paragraph-separator"),
    pytest.param("a\u3000b", "a\u3000b", id="ideographic-space"),
    pytest.param("\u3000a", "\u3000a", id="leading-ideographic-space"),
    pytest.param("a\u2003b", "a\u2003b", id="em-space"),
    pytest.param("a\u1680b", "a\u1680b", id="ogham-space"),
    pytest.param("a\u202fb", "a\u202fb", id="narrow-nbsp"),
    pytest.param("a\u205fb", "a\u205fb", id="math-space"),
    pytest.param("a\x1cb", "a\x1cb", id="file-separator"),
    pytest.param("a\x1fb", "a\x1fb", id="unit-separator"),
    pytest.param("a \u00a0 b", "a \u00a0 b", id="space-nbsp-space"),
    pytest.param(" \u00a0 ", "\u00a0", id="nbsp-between-spaces"),
]
FOLDED = [  # ASCII whitespace: trimmed, and every run becomes one space
    pytest.param("a  b", "a b", id="two-spaces"),
    pytest.param("a\tb", "a b", id="tab"),
    pytest.param("a\t\tb", "a b", id="two-tabs"),
    pytest.param("a \t \t b", "a b", id="spaces-and-tabs"),
    pytest.param("  a   b  ", "a b", id="spaces-at-the-edges"),
    pytest.param("\ta\t", "a", id="tabs-at-the-edges"),
    pytest.param("a\x0bb", "a b", id="vertical-tab"),
    pytest.param("a\x0cb", "a b", id="form-feed"),
    pytest.param("\x0b a \x0c", "a", id="vt-ff-at-the-edges"),
    pytest.param("a\rb", "a b", id="cr"),
    pytest.param("a\nb", "a b", id="lf"),
    pytest.param("value1\n  value2\n     value3", "value1 value2 value3", id="multi-line"),
    pytest.param("a\r\n\tb", "a b", id="crlf-continuation"),
    pytest.param(" \t\x0b\x0c ", "", id="only-whitespace"),
]


@pytest.mark.parametrize(("value", "canonical"), NOT_FOLDED + FOLDED)
def test_canonical_header_value_folds_only_ascii_whitespace(value: str, canonical: str) -> None:
    assert canonical_header_value(value) == canonical


# ------------------------------------------------------------------------------------------- awscrt, the peer
def _crt_sign(headers: list[tuple[str, str]], *, presigned: bool, algorithm: str = "V4") -> Any:
    import awscrt.auth
    import awscrt.http

    request = awscrt.http.HttpRequest("GET", "/", awscrt.http.HttpHeaders(headers), io.BytesIO(b""))
    signature_type = awscrt.auth.AwsSignatureType
    config = awscrt.auth.AwsSigningConfig(
        algorithm=getattr(awscrt.auth.AwsSigningAlgorithm, algorithm),
        signature_type=signature_type.HTTP_REQUEST_QUERY_PARAMS if presigned else signature_type.HTTP_REQUEST_HEADERS,
        credentials_provider=awscrt.auth.AwsCredentialsProvider.new_static(
            CREDENTIALS.access_key_id, CREDENTIALS.secret_access_key
        ),
        region=REGION,
        service=SERVICE,
        date=NOW,
        expiration_in_seconds=900 if presigned else None,
    )
    awscrt.auth.aws_sign_request(request, config).result()
    return request


def _crt_header_signature(value: str) -> str:
    request = _crt_sign([("Host", HOST), ("X-Value", value)], presigned=False)
    return dict(request.headers)["Authorization"].rsplit("Signature=", 1)[1]


def _sign_value(value: str) -> Any:
    """A GET signed by us with the header ``X-Value: value``."""
    return sign(
        "GET",
        f"https://{HOST}/",
        [("X-Value", value)],
        credentials=CREDENTIALS,
        region=REGION,
        service=SERVICE,
        now=NOW,
    )


def _our_header_signature(value: str) -> str:
    return str(_sign_value(value).signature)


@pytest.mark.parametrize(("value", "canonical"), NOT_FOLDED + FOLDED)
def test_header_signature_equals_awscrt(value: str, canonical: str) -> None:
    assert _our_header_signature(value) == _crt_header_signature(value)
    assert _our_header_signature(value) == _our_header_signature(canonical)  # the canonical form signs the same


@pytest.mark.parametrize(("value", "canonical"), NOT_FOLDED + FOLDED)
def test_presigned_signature_over_a_signed_header_equals_awscrt(value: str, canonical: str) -> None:
    request = _crt_sign([("Host", HOST), ("X-Value", value)], presigned=True)
    theirs = request.path.rsplit("X-Amz-Signature=", 1)[1]
    ours = presign(
        "GET",
        f"https://{HOST}/",
        headers=[("X-Value", value)],
        credentials=CREDENTIALS,
        region=REGION,
        service=SERVICE,
        now=NOW,
        expires_in=900,
    )
    assert ours.signature == theirs


def _verify(path: str, headers: list[tuple[str, str]]) -> Any:
    return verify(
        "GET",
        path,
        headers,
        b"",
        credentials_for={CREDENTIALS.access_key_id: CREDENTIALS}.get,
        now=NOW,
        region=REGION,
        service=SERVICE,
    )


@pytest.mark.parametrize("algorithm", ["V4", "V4_ASYMMETRIC"])
@pytest.mark.parametrize(("value", "canonical"), NOT_FOLDED + FOLDED)
def test_awscrt_signed_request_passes_verify(value: str, canonical: str, algorithm: str) -> None:
    request = _crt_sign([("Host", HOST), ("X-Value", value)], presigned=False, algorithm=algorithm)
    result = _verify(request.path, list(request.headers))
    assert result.ok, result.message


# (signed value, value received): bytes that were never signed must not pass for ones that were.
NOT_THE_SAME = [
    pytest.param("a  b", "a\u00a0b", id="nbsp-for-two-spaces"),
    pytest.param("a b", "a\u0085b", id="nel-for-a-space"),
    pytest.param("a b", "a\u2028b", id="line-separator-for-a-space"),
    pytest.param("a b", "a\u3000b", id="ideographic-space-for-a-space"),
    pytest.param("a b", "a\x1cb", id="file-separator-for-a-space"),
    pytest.param("a", "a\u00a0", id="trailing-nbsp"),
    pytest.param("a", "\u2003a", id="leading-em-space"),
    pytest.param("a\u00a0b", "a b", id="space-for-nbsp"),
]


@pytest.mark.parametrize(("signed_value", "received_value"), NOT_THE_SAME)
def test_unicode_whitespace_is_not_a_signed_space(signed_value: str, received_value: str) -> None:
    signed = _sign_value(signed_value)
    assert _verify("/", signed.headers).ok
    received = [(name, received_value if name == "X-Value" else value) for name, value in signed.headers]
    result = _verify("/", received)
    assert (result.ok, result.reason, result.error_type) == (False, "signature", "InvalidSignatureException")


def test_ascii_whitespace_runs_still_verify() -> None:
    """The other direction: runs of SP/HT (what proxies do to a value) are folded, so they still verify."""
    signed = _sign_value("a b")
    received = [(name, " a \t\t b  " if name == "X-Value" else value) for name, value in signed.headers]
    assert _verify("/", received).ok


_WHITESPACE = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u200a\u2028\u2029\u202f\u205f\u3000"


@settings(
    max_examples=300, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.text(st.sampled_from(list(_WHITESPACE + "ab,é")), max_size=12))
def test_any_whitespace_mix_signs_as_awscrt_does(value: str) -> None:
    assert _our_header_signature(value) == _crt_header_signature(value)


# ------------------------------------------------------------------------------------------ botocore differs
def test_botocore_folds_unicode_whitespace_that_awscrt_signs_as_is() -> None:
    """The two AWS signers disagree on non-ASCII whitespace; this signer sides with awscrt (AWS's C signer,
    which botocore itself uses when awscrt is installed). On ASCII whitespace all three agree."""
    import botocore.auth
    import botocore.credentials

    boto = botocore.auth.SigV4Auth(botocore.credentials.Credentials("a", "b"), SERVICE, REGION)
    for value, canonical in [(p.values[0], p.values[1]) for p in NOT_FOLDED]:
        assert boto._header_value(value) != canonical, repr(value)  # botocore folds it ...
        assert canonical_header_value(value) == canonical  # ... awscrt and this signer do not
    for value, canonical in [(p.values[0], p.values[1]) for p in FOLDED]:
        assert boto._header_value(value) == canonical_header_value(value) == canonical
