"""`verify()`: decide about a received request the way AWS does, and say why when it fails.

Sans-IO: the request (method, target, headers, body), a credential lookup and `now` are passed in. The checks
run in AWS's order and the first failure is returned with AWS's error type and message (API Gateway's
wording), plus the canonical request and string to sign the server expected — what a user needs to find the
difference. Used by the local verifying endpoints (`emulate`) and by `inspect --verify`.

`VerifyResult.reason` is one of :data:`Reason` and `error_type` one of :data:`ErrorType` (closed sets, the same
strings as ever). What differs between SigV4 and SigV4a (credential shape, region set, how a signature is
checked) is asked of the :mod:`~sigv4_proxy.signing.algorithm` strategy; dates go through
:mod:`~sigv4_proxy.signing.amzdate`; the expected canonical request shown in a mismatch message goes through
:func:`sigv4_proxy.redact.redact` (error bodies travel into logs and clients: a session token never goes along).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Literal

from sigv4_proxy.redact import mask_access_key, redact
from sigv4_proxy.signing import canonical
from sigv4_proxy.signing.algorithm import V4, V4A, Algorithm, algorithm_named, same_text
from sigv4_proxy.signing.amzdate import MAX_SKEW, format_amz_date, parse_amz_date
from sigv4_proxy.signing.model import MAX_PRESIGN_EXPIRES, UNSIGNED_PAYLOAD, Credentials

CredentialLookup = Callable[[str], Credentials | None]

# Why a request was refused (or "ok"): the closed set of `VerifyResult.reason` values, in AWS's order of checks.
Reason = Literal[
    "ok",
    "missing",  # no Authorization header and no presigned query
    "algorithm",  # neither AWS4-HMAC-SHA256 nor AWS4-ECDSA-P256-SHA256
    "malformed",  # a required element missing or of the wrong shape
    "expires",  # X-Amz-Expires not a number of seconds up to a week
    "malformed_date",
    "unknown_key",
    "scope_date",  # the credential's date is not X-Amz-Date's
    "not_yet_valid",
    "expired",
    "expired_token",
    "token",  # a session token missing or not the key's
    "scope_region",
    "scope_service",
    "missing_host",  # Host not signed
    "payload_hash",  # x-amz-content-sha256 does not match the body
    "signature",
]
# The `x-amzn-ErrorType` of a refusal (API Gateway's names).
ErrorType = Literal[
    "MissingAuthenticationTokenException",
    "IncompleteSignatureException",
    "InvalidSignatureException",
    "UnrecognizedClientException",
    "ExpiredTokenException",
    "XAmzContentSHA256Mismatch",
]

SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
    "Access Key and signing method. Consult the service documentation for details."
)
# ASCII digits only (`\d` would take any Unicode digit), the whole value (`$` would allow a trailing newline).
_EXPIRES = re.compile(r"[0-9]+").fullmatch
MALFORMED_DATE = "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\""


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    status: int
    error_type: ErrorType | None
    message: str
    reason: Reason
    access_key_id: str | None = None
    algorithm: str | None = None
    service: str | None = None
    region: str | list[str] | None = None
    amz_date: str | None = None
    presigned: bool = False
    signed_headers: list[str] = field(default_factory=list)
    expected_canonical_request: str | None = None
    expected_string_to_sign: str | None = None

    def to_response(self) -> tuple[int, list[tuple[str, str]], bytes]:
        """The API Gateway shape: status, `x-amzn-ErrorType` header, JSON body `{"message": ...}`."""
        headers = [("content-type", "application/json")]
        if self.error_type:
            headers.append(("x-amzn-ErrorType", self.error_type))
        return self.status, headers, json.dumps({"message": self.message}).encode("utf-8")


class _Reject(Exception):
    def __init__(self, error_type: ErrorType, message: str, reason: Reason, status: int = 403) -> None:
        super().__init__(message)
        self.error_type, self.message, self.reason, self.status = error_type, message, reason, status


@dataclass(frozen=True)
class _Received:
    """The request as received: what the server recomputes the signature from."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class _Parsed:
    """What the request claims: from the Authorization header or from the presigned query."""

    algorithm: Algorithm
    access_key_id: str
    scope_date: str
    region: str | None  # v4
    region_set: list[str] | None  # v4a
    service: str
    signed_headers: list[str]
    signature: str
    amz_date: str
    presigned: bool
    signed_at: datetime
    expires: int | None = None
    session_token: str | None = None

    @property
    def claimed_region(self) -> str | list[str] | None:
        """SigV4: the credential scope's region; SigV4a: the region set."""
        return self.region_set if self.algorithm.uses_region_set else self.region


def verify(
    method: str,
    target: str,
    headers: canonical.Headers,
    body: bytes | None,
    *,
    credentials_for: CredentialLookup,
    now: datetime,
    region: str | None = None,
    service: str | None = None,
    max_skew_seconds: int = int(MAX_SKEW.total_seconds()),
    accept_unsigned_session_token: bool = False,
) -> VerifyResult:
    """Verify a received request. `target` is the path and query as received; `region`/`service` are what
    this endpoint expects (None: accept any). `accept_unsigned_session_token` also accepts presigned URLs
    whose session token was added after signing (AWS IoT's form). Returns a :class:`VerifyResult`; never
    raises on bad input (whatever the method, target, header names and values): a request that cannot be
    parsed is a 403 like any other bad signature, never an exception for the server to turn into a 500."""
    items = canonical.header_items(headers)
    now = _utc(now)
    parsed: _Parsed | None = None
    try:
        path, query = _split_target(target)
        parsed = _parse(items, query)
        credentials = _check_claims(parsed, credentials_for, now, region, service, max_skew_seconds)
        received = _Received(method, path, query, items, body or b"")
        return _check_signature(parsed, credentials, received, accept_unsigned_session_token)
    except _Reject as rejection:
        return _refused(rejection, parsed)


def _utc(moment: datetime) -> datetime:
    """Naive datetimes are UTC (as everywhere in the signing core)."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def _split_target(target: str) -> tuple[str, list[tuple[str, str]]]:
    # Not urlsplit: a target such as "//example//" is a path, not a network location.
    path, _, raw_query = target.partition("#")[0].partition("?")
    try:
        return path or "/", canonical.parse_query(raw_query)
    except UnicodeEncodeError:  # a lone surrogate: no client can send it, so no signature covers it
        raise _unsignable() from None


def _unsignable() -> _Reject:
    """Text with no UTF-8 form (a lone surrogate, from a caller's decoding) cannot have been signed."""
    return _Reject("InvalidSignatureException", SIGNATURE_MISMATCH, "signature")


def _refused(
    rejection: _Reject, parsed: _Parsed | None, creq: str | None = None, sts: str | None = None
) -> VerifyResult:
    return _result(
        parsed, False, rejection.status, rejection.error_type, rejection.message, rejection.reason, creq, sts
    )


def _result(
    parsed: _Parsed | None,
    ok: bool,
    status: int,
    error_type: ErrorType | None,
    message: str,
    reason: Reason,
    creq: str | None = None,
    sts: str | None = None,
) -> VerifyResult:
    if parsed is None:
        return VerifyResult(ok, status, error_type, message, reason)
    return VerifyResult(
        ok,
        status,
        error_type,
        message,
        reason,
        access_key_id=parsed.access_key_id,
        algorithm=parsed.algorithm.name,
        service=parsed.service,
        region=parsed.claimed_region,
        amz_date=parsed.amz_date,
        presigned=parsed.presigned,
        signed_headers=parsed.signed_headers,
        expected_canonical_request=creq,
        expected_string_to_sign=sts,
    )


# --- parsing -------------------------------------------------------------------------------------------------


def _header(items: list[tuple[str, str]], name: str) -> str | None:
    values = [v for k, v in items if k.lower() == name]
    return ",".join(canonical.canonical_header_value(v) for v in values) if values else None


def _parse(items: list[tuple[str, str]], query: list[tuple[str, str]]) -> _Parsed:
    authorization = _header(items, "authorization")
    params = dict(query)
    if authorization:
        return _parse_authorization(authorization, items)
    if "X-Amz-Algorithm" in params or "X-Amz-Signature" in params:
        return _parse_presigned(params)
    raise _Reject("MissingAuthenticationTokenException", "Missing Authentication Token", "missing")


def _incomplete(message: str, reason: Reason = "malformed") -> _Reject:
    return _Reject("IncompleteSignatureException", message, reason)


def _algorithm(name: str) -> Algorithm:
    algorithm = algorithm_named(name)
    if algorithm is None:
        raise _incomplete(
            f"Unsupported AWS 'algorithm': '{name}'. Use '{V4.name}' ({V4.label}) or '{V4A.name}' ({V4A.label}).",
            "algorithm",
        )
    return algorithm


def _region_set(value: str) -> list[str]:
    return [region.strip() for region in value.split(",") if region.strip()]


def _parse_authorization(value: str, items: list[tuple[str, str]]) -> _Parsed:
    name, _, rest = value.partition(" ")
    algorithm = _algorithm(name)
    fields = {}
    for part in rest.split(","):
        key, eq, val = part.strip().partition("=")
        if eq:
            fields[key.strip()] = val.strip()
    missing = [
        f"Authorization header requires '{name}' parameter."
        for name in ("Credential", "Signature", "SignedHeaders")
        if not fields.get(name)
    ]
    amz_date = _header(items, "x-amz-date") or _date_header(_header(items, "date"))
    if not amz_date:
        missing.append("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
    if missing:
        raise _incomplete(" ".join(missing))
    parsed = _parse_credential(algorithm, fields["Credential"], amz_date or "", presigned=False)
    parsed.signed_headers = fields["SignedHeaders"].split(";")
    parsed.signature = fields["Signature"]
    parsed.session_token = _header(items, "x-amz-security-token")
    if algorithm.uses_region_set:
        region_set = _header(items, "x-amz-region-set")
        if not region_set:
            raise _incomplete(f"{algorithm.label} requests require the 'X-Amz-Region-Set' header.")
        parsed.region_set = _region_set(region_set)
    return parsed


def _parse_presigned(params: dict[str, str]) -> _Parsed:
    algorithm = _algorithm(params.get("X-Amz-Algorithm", ""))
    required = ("X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Expires")
    missing = [name for name in required if not params.get(name)]
    if missing:
        raise _incomplete(
            "AWS query-string parameters must include " + ", ".join(f"'{name}'" for name in missing) + "."
        )
    parsed = _parse_credential(algorithm, params["X-Amz-Credential"], params["X-Amz-Date"], presigned=True)
    parsed.signed_headers = params["X-Amz-SignedHeaders"].split(";")
    parsed.signature = params["X-Amz-Signature"]
    parsed.session_token = params.get("X-Amz-Security-Token")
    parsed.expires = _expires(params["X-Amz-Expires"])
    if algorithm.uses_region_set:
        region_set = params.get("X-Amz-Region-Set", "")
        if not region_set:
            raise _incomplete(f"{algorithm.label} presigned URLs require the 'X-Amz-Region-Set' parameter.")
        parsed.region_set = _region_set(region_set)
    return parsed


def _expires(text: str) -> int:
    """X-Amz-Expires: ASCII digits (int() would also take `+9`, ` 9`, `9_0` and other scripts' digits), at most
    a week. A number too long to be a week is not converted (int() of thousands of digits is slow, then fails)."""
    if not _EXPIRES(text):
        raise _incomplete("X-Amz-Expires should be a number", "expires")
    significant = text.lstrip("0")
    if not significant or len(significant) > len(str(MAX_PRESIGN_EXPIRES)) or int(significant) > MAX_PRESIGN_EXPIRES:
        raise _incomplete(
            f"X-Amz-Expires must be less than a week (in seconds) that is {MAX_PRESIGN_EXPIRES}", "expires"
        )
    return int(significant)


def _parse_credential(algorithm: Algorithm, credential: str, amz_date: str, *, presigned: bool) -> _Parsed:
    elements = credential.split("/")
    fields = algorithm.credential_fields(elements)
    if fields is None:
        shown = "/".join([mask_access_key(elements[0]), *elements[1:]])
        raise _incomplete(
            f"Credential must have exactly {algorithm.credential_elements} slash-delimited elements, "
            f"e.g. {algorithm.credential_shape}, got '{shown}'"
        )
    if elements[-1] != "aws4_request":
        raise _incomplete(f"Credential should be scoped with a valid terminator: 'aws4_request', not '{elements[-1]}'.")
    key, date, region, service = fields
    signed_at = parse_amz_date(amz_date)
    if signed_at is None:
        raise _incomplete(MALFORMED_DATE, "malformed_date")
    return _Parsed(algorithm, key, date, region, None, service, [], "", amz_date, presigned, signed_at)


def _date_header(value: str | None) -> str | None:
    """An HTTP `Date` header as an X-Amz-Date, or None when it is not a date (then the request has no date)."""
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
        # "-0000" gives a naive datetime; it means UTC. (astimezone() would read the machine's time zone.)
        moment = _utc(moment).astimezone(timezone.utc)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a date the time zone shifts out of range
        return None
    return format_amz_date(moment)


# --- claims: key, token, date, scope -------------------------------------------------------------------------


def _check_claims(
    parsed: _Parsed,
    credentials_for: CredentialLookup,
    now: datetime,
    region: str | None,
    service: str | None,
    max_skew_seconds: int,
) -> Credentials:
    credentials = credentials_for(parsed.access_key_id)
    if credentials is None:
        raise _Reject(
            "UnrecognizedClientException", "The security token included in the request is invalid.", "unknown_key"
        )
    if parsed.scope_date != parsed.amz_date[:8]:
        raise _Reject(
            "InvalidSignatureException",
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{parsed.scope_date}' != '{parsed.amz_date[:8]}', from '{parsed.amz_date}'.",
            "scope_date",
        )
    _check_time(parsed, now, max_skew_seconds)
    if credentials.session_token:
        if credentials.expiry is not None and _utc(credentials.expiry) <= now:
            raise _Reject(
                "ExpiredTokenException", "The security token included in the request is expired", "expired_token"
            )
        if not parsed.session_token or not same_text(parsed.session_token, credentials.session_token):
            raise _Reject(
                "UnrecognizedClientException", "The security token included in the request is invalid.", "token"
            )
    _check_scope(parsed, region, service)
    if "host" not in parsed.signed_headers:
        raise _incomplete("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.", "missing_host")
    return credentials


def _check_time(parsed: _Parsed, now: datetime, max_skew_seconds: int) -> None:
    # Differences, not sums: signed_at + expires overflows for a date in year 9999; a difference never does.
    signed_at, date = parsed.signed_at, parsed.amz_date
    skew = timedelta(seconds=max_skew_seconds)
    minutes = f"{max_skew_seconds // 60} min." if max_skew_seconds % 60 == 0 else f"{max_skew_seconds} sec."
    if signed_at - now > skew:
        later = f"{format_amz_date(now + skew)} ({format_amz_date(now)} + {minutes})"
        raise _Reject(
            "InvalidSignatureException",
            f"Signature not yet current: {date} is still later than {later}",
            "not_yet_valid",
        )
    if parsed.presigned:
        assert parsed.expires is not None
        lifetime = timedelta(seconds=parsed.expires)
        if now - signed_at > lifetime:
            earlier = f"{format_amz_date(now - lifetime)} ({format_amz_date(now)} - {parsed.expires} sec.)"
            raise _Reject(
                "InvalidSignatureException", f"Signature expired: {date} is now earlier than {earlier}", "expired"
            )
    elif now - signed_at > skew:
        earlier = f"{format_amz_date(now - skew)} ({format_amz_date(now)} - {minutes})"
        raise _Reject(
            "InvalidSignatureException", f"Signature expired: {date} is now earlier than {earlier}", "expired"
        )


def _check_scope(parsed: _Parsed, region: str | None, service: str | None) -> None:
    claimed = parsed.claimed_region
    if region is not None and not parsed.algorithm.covers(claimed, region):
        shown = ",".join(claimed) if isinstance(claimed, list) else claimed
        raise _Reject(
            "InvalidSignatureException",
            f"Credential should be scoped to a valid region, not '{shown}'. ",
            "scope_region",
        )
    if service is not None and parsed.service != service:
        raise _Reject(
            "InvalidSignatureException",
            f"Credential should be scoped to correct service: '{service}'. ",
            "scope_service",
        )


# --- the signature itself -----------------------------------------------------------------------------------


def _payload_hash(parsed: _Parsed, items: list[tuple[str, str]], body: bytes) -> str:
    actual = canonical.payload_sha256(body)
    claimed = _header(items, "x-amz-content-sha256")
    if claimed is None:
        if parsed.presigned and canonical.uses_single_encoding(parsed.service):
            return UNSIGNED_PAYLOAD
        return actual
    if claimed == UNSIGNED_PAYLOAD or claimed.startswith("STREAMING-"):
        return claimed
    if claimed != actual:
        raise _Reject(
            "XAmzContentSHA256Mismatch",
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
            "payload_hash",
            status=400,
        )
    return claimed


def expected_canonical_request(
    parsed_method: str,
    path: str,
    query: list[tuple[str, str]],
    items: list[tuple[str, str]],
    signed_headers: list[str],
    payload_hash: str,
    service: str,
) -> str:
    single = canonical.uses_single_encoding(service)
    uri = canonical.canonical_uri(path, normalize=not single, double_encode=not single)
    header_block, signed = canonical.canonical_headers(items, signed_headers)
    return canonical.canonical_request(
        parsed_method.upper(), uri, canonical.canonical_query(query), header_block, signed, payload_hash
    )


def _check_signature(
    parsed: _Parsed, credentials: Credentials, received: _Received, accept_unsigned_session_token: bool
) -> VerifyResult:
    """Recompute the signature from what was received; on a mismatch say what the server expected."""
    payload_hash = _payload_hash(parsed, received.headers, received.body)
    query = received.query
    signed_query = [(k, v) for k, v in query if k != "X-Amz-Signature"] if parsed.presigned else query
    result = _compare(parsed, credentials, received, signed_query, payload_hash)
    if not result.ok and parsed.presigned and parsed.session_token and accept_unsigned_session_token:
        # Some services (IoT over WebSocket) add the token to a presigned URL after signing; most (DSQL, RDS)
        # reject that form, so it is accepted only when asked for.
        without_token = [(k, v) for k, v in signed_query if k != "X-Amz-Security-Token"]
        retry = _compare(parsed, credentials, received, without_token, payload_hash)
        if retry.ok:
            return retry
    return result


def _compare(
    parsed: _Parsed,
    credentials: Credentials,
    received: _Received,
    signed_query: list[tuple[str, str]],
    payload_hash: str,
) -> VerifyResult:
    algorithm = parsed.algorithm
    try:
        creq = expected_canonical_request(
            received.method,
            received.path,
            signed_query,
            received.headers,
            parsed.signed_headers,
            payload_hash,
            parsed.service,
        )
        scope = algorithm.credential_scope(parsed.scope_date, parsed.region, parsed.service)
        sts = algorithm.string_to_sign(parsed.amz_date, scope, creq)
        good = algorithm.verify(credentials, parsed.amz_date, parsed.region, parsed.service, sts, parsed.signature)
    except UnicodeEncodeError:  # a lone surrogate in the method, path, query, a header, the scope: never signed
        return _refused(_unsignable(), parsed)
    if good:
        return _result(parsed, True, 200, None, "", "ok", creq, sts)
    message = (
        f"{SIGNATURE_MISMATCH}\n\nThe Canonical String for this request should have been\n'{redact(creq)}'\n\n"
        f"The String-to-Sign should have been\n'{sts}'\n"
    )
    return _refused(_Reject("InvalidSignatureException", message, "signature"), parsed, creq, sts)
