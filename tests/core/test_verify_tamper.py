"""`verify()` against tampered requests: every single-field change to a signed request is rejected with the
right reason and AWS error type, expiry and clock skew are enforced, and the untouched request is accepted.

Each case signs a fresh request with our `sign()` / `presign()` (SigV4 and SigV4a, Authorization header and
presigned URL, with and without a session token), changes exactly one thing the way a proxy, a client bug
or an attacker would, and checks `verify()`'s verdict. The tables say what AWS answers for each change.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from urllib.parse import quote, unquote, urlsplit

import pytest

from sigv4_proxy import Credentials, presign, sign, verify
from sigv4_proxy.signing.model import V4, V4A

NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
AMZ_NOW = "20240506T070809Z"
REGION, SERVICE = "us-east-1", "execute-api"
URL = "https://abc123.execute-api.us-east-1.amazonaws.com/prod/mcp?session=a%2Fb&flag&x=1"
BODY = b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
HEADERS = [("Content-Type", "application/json"), ("X-Custom", "  hello   world ")]

KEY = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
SESSION = Credentials("ASIDEXAMPLE", "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlYw", "IQoJb3JpZ2luX2VjE+token/value==")
OTHER = Credentials("AKIDOTHERKEY", "b3RoZXItc2VjcmV0LW90aGVyLXNlY3JldC1vdGhlcg")
KNOWN = {c.access_key_id: c for c in (KEY, SESSION, OTHER)}

SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
    "Access Key and signing method. Consult the service documentation for details."
)


# ------------------------------------------------------------------------------------- the request form
@dataclass(frozen=True)
class Form:
    algorithm: str  # "v4" | "v4a"
    presigned: bool
    credentials: Credentials
    content_sha256: bool = False  # header form: also send and sign x-amz-content-sha256

    @property
    def id(self) -> str:
        token = "-token" if self.credentials.session_token else ""
        sha = "-sha256" if self.content_sha256 else ""
        return f"{self.algorithm}-{'presigned' if self.presigned else 'header'}{token}{sha}"


FORMS = [
    Form("v4", False, KEY),
    Form("v4", False, SESSION, content_sha256=True),
    Form("v4", True, KEY),
    Form("v4", True, SESSION),
    Form("v4a", False, KEY),
    Form("v4a", False, SESSION, content_sha256=True),
    Form("v4a", True, KEY),
    Form("v4a", True, SESSION),
]
HEADER_FORMS = [f for f in FORMS if not f.presigned]
PRESIGNED_FORMS = [f for f in FORMS if f.presigned]


@dataclass(frozen=True)
class Received:
    """A request as the server receives it. Query pairs stay encoded exactly as on the wire."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: list[tuple[str, str]]
    body: bytes
    presigned: bool

    @property
    def target(self) -> str:
        if not self.query:
            return self.path
        return self.path + "?" + "&".join(f"{k}={v}" if v is not None else k for k, v in self.query)


def _wire_query(query: str) -> list[tuple[str, str]]:
    return [(p.partition("=")[0], p.partition("=")[2]) for p in query.split("&") if p] if query else []


def signed_request(form: Form, *, at: datetime = NOW, expires_in: int = 900) -> Received:
    region: str | list[str] = REGION if form.algorithm == "v4" else [REGION, "us-west-2"]
    common = {"credentials": form.credentials, "region": region, "service": SERVICE, "algorithm": form.algorithm}
    if form.presigned:
        presigned = presign("POST", URL, headers=HEADERS, body=BODY, now=at, expires_in=expires_in, **common)
        url, headers = presigned.url, list(presigned.headers)
    else:
        signed = sign("POST", URL, HEADERS, BODY, now=at, content_sha256_header=form.content_sha256, **common)
        url, headers = signed.url, list(signed.headers)
    parts = urlsplit(url)
    return Received("POST", parts.path, _wire_query(parts.query), headers, BODY, form.presigned)


def check(received: Received, *, now: datetime = NOW, region: str | None = REGION, service: str | None = SERVICE):
    result = verify(
        received.method,
        received.target,
        received.headers,
        received.body,
        credentials_for=KNOWN.get,
        now=now,
        region=region,
        service=service,
    )
    _assert_no_secrets(result.message)
    return result


def _assert_no_secrets(message: str) -> None:
    for credentials in KNOWN.values():
        assert credentials.secret_access_key not in message
        if credentials.session_token:
            assert credentials.session_token not in message
            assert quote(credentials.session_token, safe="") not in message


# --------------------------------------------------------------------------------------------- editors
Edit = Callable[[Received], Received]


def edit_header(name: str, change: Callable[[str], str | None]) -> Edit:
    """Change (or, when `change` returns None, drop) every header called `name`."""

    def apply(r: Received) -> Received:
        headers = []
        for key, value in r.headers:
            if key.lower() == name:
                new = change(value)
                if new is not None:
                    headers.append((key, new))
            else:
                headers.append((key, value))
        return replace(r, headers=headers)

    return apply


def edit_param(name: str, change: Callable[[str], str | None]) -> Edit:
    """Change a query parameter's decoded value (re-encoded canonically), or drop it."""

    def apply(r: Received) -> Received:
        query = []
        for key, value in r.query:
            if unquote(key) == name:
                new = change(unquote(value))
                if new is not None:
                    query.append((key, quote(new, safe="-_.~")))
            else:
                query.append((key, value))
        return replace(r, query=query)

    return apply


def edit_auth(field: str, change: Callable[[str], str]) -> Edit:
    """Change one part of the signature claim, wherever this form carries it: `Credential`, `SignedHeaders`,
    `Signature` or the algorithm, in the Authorization header or in the presigned query."""

    def apply(r: Received) -> Received:
        if r.presigned:
            name = "X-Amz-Algorithm" if field == "Algorithm" else f"X-Amz-{field}"
            return edit_param(name, change)(r)

        def rewrite(authorization: str) -> str:
            algorithm, _, rest = authorization.partition(" ")
            if field == "Algorithm":
                return f"{change(algorithm)} {rest}"
            parts = []
            for part in rest.split(", "):
                key, _, value = part.partition("=")
                parts.append(f"{key}={change(value)}" if key == field else part)
            return f"{algorithm} {', '.join(parts)}"

        return edit_header("authorization", rewrite)(r)

    return apply


def edit_credential(index: int, new: str) -> Edit:
    """Replace one element of `keyid/date/region/service/aws4_request` (v4a: `keyid/date/service/aws4_request`)."""

    def change(credential: str) -> str:
        elements = credential.split("/")
        elements[index] = new
        return "/".join(elements)

    return edit_auth("Credential", change)


def edit_amz(suffix: str, change: Callable[[str], str | None]) -> Edit:
    """Change `X-Amz-<suffix>` (Date, Security-Token, Region-Set) where this form carries it: a header, or a
    presigned query parameter."""

    def apply(r: Received) -> Received:
        if r.presigned:
            return edit_param(f"X-Amz-{suffix}", change)(r)
        return edit_header(f"x-amz-{suffix.lower()}", change)(r)

    return apply


def shift_amz_date(seconds: int) -> Callable[[str], str]:
    def change(amz_date: str) -> str:
        moment = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ") + timedelta(seconds=seconds)
        return moment.strftime("%Y%m%dT%H%M%SZ")

    return change


def without(name: str) -> Callable[[str], str]:
    return lambda signed_headers: ";".join(n for n in signed_headers.split(";") if n != name)


def flip_hex(text: str) -> str:
    """Change the last hex digit: the smallest possible signature tamper."""
    return text[:-1] + ("0" if text[-1] != "0" else "1")


# ------------------------------------------------------------------------------------------ the table
@dataclass(frozen=True)
class Tamper:
    id: str
    edit: Edit
    reason: str
    error_type: str
    status: int = 403
    message: str | None = None  # exact, where the interface gives a fixed text
    forms: Callable[[Form], bool] = lambda form: True


SIG = ("signature", "InvalidSignatureException")
INCOMPLETE = "IncompleteSignatureException"

TAMPERS = [
    Tamper("method", lambda r: replace(r, method="PUT"), *SIG),
    Tamper("path", lambda r: replace(r, path="/prod/mcq"), *SIG),
    Tamper("path-extra-segment", lambda r: replace(r, path="/prod/mcp/x"), *SIG),
    Tamper("path-encoding", lambda r: replace(r, path="/prod/m%63p"), *SIG),
    Tamper("query-value", edit_param("x", lambda v: "2"), *SIG),
    Tamper("query-encoded-value", edit_param("session", lambda v: "a/c"), *SIG),
    Tamper("query-drop-param", edit_param("flag", lambda v: None), *SIG),
    Tamper("query-add-param", lambda r: replace(r, query=[*r.query, ("y", "1")]), *SIG),
    Tamper("query-repeat-param", lambda r: replace(r, query=[*r.query, ("x", "1")]), *SIG),
    Tamper(
        "body-changed",
        lambda r: replace(r, body=r.body.replace(b"list", b"call")),
        *SIG,
        forms=lambda f: not f.content_sha256,
    ),
    Tamper("body-appended", lambda r: replace(r, body=r.body + b" "), *SIG, forms=lambda f: not f.content_sha256),
    Tamper("body-emptied", lambda r: replace(r, body=b""), *SIG, forms=lambda f: not f.content_sha256),
    # With x-amz-content-sha256 signed, the body no longer matches the hash it claims: AWS answers 400.
    Tamper(
        "body-vs-content-sha256",
        lambda r: replace(r, body=r.body + b" "),
        "payload_hash",
        "XAmzContentSHA256Mismatch",
        status=400,
        message="The provided 'x-amz-content-sha256' header does not match what was computed.",
        forms=lambda f: f.content_sha256,
    ),
    Tamper("date-one-second", edit_amz("Date", shift_amz_date(1)), *SIG),
    Tamper(
        "date-next-day",
        edit_amz("Date", shift_amz_date(86400)),
        "scope_date",
        "InvalidSignatureException",
        message="Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
        "'20240506' != '20240507', from '20240507T070809Z'.",
    ),
    Tamper(
        "date-malformed",
        edit_amz("Date", lambda d: d.replace("T", "")),
        "malformed_date",
        INCOMPLETE,
        message="X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"",
    ),
    Tamper(
        "scope-date",
        edit_credential(1, "20240505"),
        "scope_date",
        "InvalidSignatureException",
        message="Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
        "'20240505' != '20240506', from '20240506T070809Z'.",
    ),
    Tamper(
        "scope-region",
        edit_credential(2, "us-west-2"),
        "scope_region",
        "InvalidSignatureException",
        message="Credential should be scoped to a valid region, not 'us-west-2'. ",
        forms=lambda f: f.algorithm == "v4",
    ),
    Tamper(
        "scope-region-set",
        edit_amz("Region-Set", lambda v: "eu-west-1"),
        "scope_region",
        "InvalidSignatureException",
        message="Credential should be scoped to a valid region, not 'eu-west-1'. ",
        forms=lambda f: f.algorithm == "v4a",
    ),
    # Still covering us-east-1, but not the set that was signed.
    Tamper(
        "region-set-widened",
        edit_amz("Region-Set", lambda v: "*"),
        *SIG,
        forms=lambda f: f.algorithm == "v4a",
    ),
    Tamper(
        "scope-service",
        edit_credential(-2, "lambda"),
        "scope_service",
        "InvalidSignatureException",
        message="Credential should be scoped to correct service: 'execute-api'. ",
    ),
    Tamper(
        "scope-terminator",
        edit_credential(-1, "aws4_reqeust"),
        "malformed",
        INCOMPLETE,
        message="Credential should be scoped with a valid terminator: 'aws4_request', not 'aws4_reqeust'.",
    ),
    Tamper(
        "access-key-unknown",
        edit_credential(0, "AKIDNOBODYKNOWS"),
        "unknown_key",
        "UnrecognizedClientException",
        message="The security token included in the request is invalid.",
    ),
    # A key the server knows, but not the one that signed: the signature cannot match.
    Tamper("access-key-other", edit_credential(0, OTHER.access_key_id), *SIG),
    Tamper("signature-digit", edit_auth("Signature", flip_hex), *SIG),
    Tamper("signature-truncated", edit_auth("Signature", lambda s: s[:-2]), *SIG),
    Tamper("signed-headers-drop-one", edit_auth("SignedHeaders", without("x-custom")), *SIG),
    Tamper("signed-headers-add-one", edit_auth("SignedHeaders", lambda s: s + ";x-forwarded-for"), *SIG),
    Tamper(
        "signed-headers-drop-host",
        edit_auth("SignedHeaders", without("host")),
        "missing_host",
        INCOMPLETE,
        message="'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
    ),
    Tamper("algorithm-unknown", edit_auth("Algorithm", lambda a: "AWS4-HMAC-SHA512"), "algorithm", INCOMPLETE),
    Tamper("algorithm-swapped", edit_auth("Algorithm", lambda a: V4A if a == V4 else V4), "malformed", INCOMPLETE),
    Tamper(
        "authorization-removed",
        edit_header("authorization", lambda v: None),
        "missing",
        "MissingAuthenticationTokenException",
        message="Missing Authentication Token",
        forms=lambda f: not f.presigned,
    ),
    Tamper(
        "presigned-signature-removed",
        edit_param("X-Amz-Signature", lambda v: None),
        "malformed",
        INCOMPLETE,
        message="AWS query-string parameters must include 'X-Amz-Signature'.",
        forms=lambda f: f.presigned,
    ),
    Tamper(
        "presigned-expires-changed", edit_param("X-Amz-Expires", lambda v: "901"), *SIG, forms=lambda f: f.presigned
    ),
    Tamper(
        "presigned-expires-over-a-week",
        edit_param("X-Amz-Expires", lambda v: "604801"),
        "expires",
        INCOMPLETE,
        message="X-Amz-Expires must be less than a week (in seconds) that is 604800",
        forms=lambda f: f.presigned,
    ),
    Tamper(
        "token-changed",
        edit_amz("Security-Token", lambda v: v + "x"),
        "token",
        "UnrecognizedClientException",
        message="The security token included in the request is invalid.",
        forms=lambda f: f.credentials.session_token is not None,
    ),
    Tamper(
        "token-removed",
        edit_amz("Security-Token", lambda v: None),
        "token",
        "UnrecognizedClientException",
        message="The security token included in the request is invalid.",
        forms=lambda f: f.credentials.session_token is not None,
    ),
    # Headers that were not signed may change freely (proxies add them): not a tamper.
    Tamper(
        "unsigned-header-added",
        lambda r: replace(r, headers=[*r.headers, ("X-Forwarded-For", "10.0.0.1")]),
        "ok",
        "",
        status=200,
    ),
]

CASES = [
    pytest.param(form, tamper, id=f"{form.id}:{tamper.id}")
    for form in FORMS
    for tamper in TAMPERS
    if tamper.forms(form)
]


@pytest.mark.parametrize("form", FORMS, ids=lambda f: f.id)
def test_untouched_request_is_accepted(form: Form) -> None:
    result = check(signed_request(form))
    assert (result.ok, result.status, result.reason, result.error_type) == (True, 200, "ok", None)
    assert result.access_key_id == form.credentials.access_key_id
    assert result.algorithm == (V4 if form.algorithm == "v4" else V4A)
    assert result.presigned is form.presigned
    assert result.amz_date == AMZ_NOW
    assert result.service == SERVICE
    assert result.region == (REGION if form.algorithm == "v4" else [REGION, "us-west-2"])


@pytest.mark.parametrize(("form", "tamper"), CASES)
def test_single_field_tamper(form: Form, tamper: Tamper) -> None:
    result = check(tamper.edit(signed_request(form)))
    assert (result.reason, result.error_type or "", result.status) == (tamper.reason, tamper.error_type, tamper.status)
    assert result.ok is (tamper.reason == "ok")
    if tamper.message is not None:
        assert result.message == tamper.message
    if tamper.reason == "signature":
        assert result.message.startswith(SIGNATURE_MISMATCH + "\n\nThe Canonical String for this request should")
        assert result.expected_canonical_request and result.expected_string_to_sign
        assert f"'{result.expected_string_to_sign}'" in result.message


# Every header the signer signed, changed or dropped in turn. What AWS answers depends on the header.
def _tampered_value(name: str, value: str) -> str:
    if name == "x-amz-date":
        return shift_amz_date(1)(value)
    if name == "x-amz-region-set":
        return value + ",eu-west-1"  # still covers the endpoint's region
    if name == "x-amz-content-sha256":
        return "0" * 64
    return value + "x"


_CHANGED = {"x-amz-security-token": "token", "x-amz-content-sha256": "payload_hash"}
# A repeated header is joined with a comma: a date that no longer parses, a token or hash that no longer matches.
_DOUBLED = {"x-amz-date": "malformed_date", "x-amz-security-token": "token", "x-amz-content-sha256": "payload_hash"}
_DROPPED = {"x-amz-security-token": "token", "x-amz-date": "malformed", "x-amz-region-set": "malformed"}


@pytest.mark.parametrize("form", FORMS, ids=lambda f: f.id)
def test_each_signed_header_tampered(form: Form) -> None:
    received = signed_request(form)
    signed_headers = _signed_header_names(received)
    expected_names = {"host", "content-type", "x-custom"}
    if not form.presigned:
        expected_names |= {"x-amz-date"}
        expected_names |= {"x-amz-region-set"} if form.algorithm == "v4a" else set()
        expected_names |= {"x-amz-security-token"} if form.credentials.session_token else set()
        expected_names |= {"x-amz-content-sha256"} if form.content_sha256 else set()
    assert set(signed_headers) == expected_names

    wrong = []
    for name in signed_headers:
        for how, edit, expected in (
            ("changed", edit_header(name, lambda v, n=name: _tampered_value(n, v)), _CHANGED.get(name, "signature")),
            ("dropped", edit_header(name, lambda v: None), _DROPPED.get(name, "signature")),
            (
                "doubled",
                lambda r, n=name: replace(r, headers=[*r.headers, (n, "again")]),
                _DOUBLED.get(name, "signature"),
            ),
        ):
            result = check(edit(received))
            if result.reason != expected or result.ok:
                wrong.append(f"{name} {how}: got {result.reason!r} ({result.error_type}), expected {expected!r}")
    assert not wrong, "\n".join(wrong)


def _signed_header_names(r: Received) -> list[str]:
    if r.presigned:
        return unquote(dict(r.query)["X-Amz-SignedHeaders"]).split(";")
    authorization = next(v for k, v in r.headers if k.lower() == "authorization")
    return authorization.split("SignedHeaders=")[1].split(",")[0].split(";")


def test_scope_tampers_without_region_or_service_pinning_still_break_the_signature() -> None:
    """An endpoint that accepts any region or service still rejects a rewritten scope: it is signed."""
    for form in FORMS:
        for edit in ([edit_credential(2, "us-west-2")] if form.algorithm == "v4" else []) + [
            edit_credential(-2, "lambda")
        ]:
            result = check(edit(signed_request(form)), region=None, service=None)
            assert (result.reason, result.error_type) == SIG, form.id


# ------------------------------------------------------------------------------------ time: skew, expiry
def _fmt(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%SZ")


def _expired(now: datetime, window: str, seconds: int) -> str:
    earlier = _fmt(now - timedelta(seconds=seconds))
    return f"Signature expired: {AMZ_NOW} is now earlier than {earlier} ({_fmt(now)} - {window})"


def _not_yet(now: datetime) -> str:
    later = now + timedelta(minutes=5)
    return f"Signature not yet current: {AMZ_NOW} is still later than {_fmt(later)} ({_fmt(now)} + 5 min.)"


# (seconds the server's clock is ahead of the signer's, expected reason)
HEADER_SKEW = [(-301, "not_yet_valid"), (-300, "ok"), (0, "ok"), (300, "ok"), (301, "expired"), (86400, "expired")]
PRESIGNED_SKEW = [(-301, "not_yet_valid"), (-300, "ok"), (900, "ok"), (901, "expired"), (86400, "expired")]


@pytest.mark.parametrize(
    ("form", "ahead", "reason"),
    [pytest.param(f, a, r, id=f"{f.id}:{a:+d}s") for f in HEADER_FORMS for a, r in HEADER_SKEW],
)
def test_header_signature_clock_skew(form: Form, ahead: int, reason: str) -> None:
    now = NOW + timedelta(seconds=ahead)
    result = check(signed_request(form), now=now)
    assert result.reason == reason
    if reason == "expired":
        assert (result.error_type, result.message) == ("InvalidSignatureException", _expired(now, "5 min.", 300))
    if reason == "not_yet_valid":
        assert (result.error_type, result.message) == ("InvalidSignatureException", _not_yet(now))


@pytest.mark.parametrize(
    ("form", "ahead", "reason"),
    [pytest.param(f, a, r, id=f"{f.id}:{a:+d}s") for f in PRESIGNED_FORMS for a, r in PRESIGNED_SKEW],
)
def test_presigned_url_expiry_and_skew(form: Form, ahead: int, reason: str) -> None:
    """A presigned URL is good from 5 minutes before its X-Amz-Date until X-Amz-Expires seconds after it."""
    now = NOW + timedelta(seconds=ahead)
    result = check(signed_request(form, expires_in=900), now=now)
    assert result.reason == reason
    if reason == "expired":
        assert (result.error_type, result.message) == ("InvalidSignatureException", _expired(now, "900 sec.", 900))
    if reason == "not_yet_valid":
        assert (result.error_type, result.message) == ("InvalidSignatureException", _not_yet(now))


@pytest.mark.parametrize("form", PRESIGNED_FORMS, ids=lambda f: f.id)
def test_presigned_url_signed_for_a_week_expires_after_a_week(form: Form) -> None:
    received = signed_request(form, expires_in=604800)
    assert check(received, now=NOW + timedelta(seconds=604800)).ok
    assert check(received, now=NOW + timedelta(seconds=604801)).reason == "expired"


@pytest.mark.parametrize("form", FORMS, ids=lambda f: f.id)
def test_aware_now_in_any_timezone_is_the_same_instant(form: Form) -> None:
    tokyo = timezone(timedelta(hours=9))
    assert check(signed_request(form), now=(NOW + timedelta(seconds=299)).astimezone(tokyo)).ok
    assert check(signed_request(form), now=(NOW + timedelta(seconds=1000)).astimezone(tokyo)).reason == "expired"


def test_to_response_has_the_api_gateway_shape() -> None:
    result = check(edit_auth("Signature", flip_hex)(signed_request(FORMS[0])))
    status, headers, body = result.to_response()
    assert status == 403
    assert ("x-amzn-ErrorType", "InvalidSignatureException") in headers
    assert ("content-type", "application/json") in headers
    assert json.loads(body) == {"message": result.message}
