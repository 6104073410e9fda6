"""`verify()`: decide about a received request the way AWS does, and say why when it fails.

Sans-IO: the request (method, target, headers, body), a credential lookup and `now` are passed in. The checks
run in AWS's order and the first failure is returned with AWS's error type and message (API Gateway's
wording), plus the canonical request and string to sign the server expected — what a user needs to find the
difference. Used by the local verifying endpoints (`emulate`) and by `inspect --verify`.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

from sigv4_proxy.signing import canonical, v4, v4a
from sigv4_proxy.signing.model import MAX_PRESIGN_EXPIRES, UNSIGNED_PAYLOAD, V4, V4A, Credentials

CredentialLookup = Callable[[str], Credentials | None]

SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
    "Access Key and signing method. Consult the service documentation for details."
)
# ASCII digits only (`\d` would take any Unicode digit), the whole value (`$` would allow a trailing newline).
_AMZ_DATE = re.compile(r"[0-9]{8}T[0-9]{6}Z").fullmatch
_EXPIRES = re.compile(r"[0-9]+").fullmatch
MALFORMED_DATE = "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\""
_TOKEN_LINE = re.compile(r"(?im)^(x-amz-security-token:).*$")
_TOKEN_PARAM = re.compile(r"(X-Amz-Security-Token=)[^&\s']*")


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    status: int
    error_type: str | None
    message: str
    reason: str
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
    def __init__(self, error_type: str, message: str, reason: str, status: int = 403) -> None:
        super().__init__(message)
        self.error_type, self.message, self.reason, self.status = error_type, message, reason, status


@dataclass
class _Parsed:
    """What the request claims: from the Authorization header or from the presigned query."""

    algorithm: str
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
    max_skew_seconds: int = 300,
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
        return _check_signature(
            parsed, credentials, method, path, query, items, body or b"", accept_unsigned_session_token
        )
    except _Reject as rejection:
        return _result_from(rejection, parsed)


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


def _result_from(rejection: _Reject, parsed: _Parsed | None, **extra: object) -> VerifyResult:
    result = VerifyResult(False, rejection.status, rejection.error_type, rejection.message, rejection.reason)
    if parsed is not None:
        result = replace(
            result,
            access_key_id=parsed.access_key_id,
            algorithm=parsed.algorithm,
            service=parsed.service,
            region=parsed.region_set if parsed.algorithm == V4A else parsed.region,
            amz_date=parsed.amz_date,
            presigned=parsed.presigned,
            signed_headers=parsed.signed_headers,
        )
    return replace(result, **extra) if extra else result  # type: ignore[arg-type]


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


def _incomplete(message: str, reason: str = "malformed") -> _Reject:
    return _Reject("IncompleteSignatureException", message, reason)


def _check_algorithm(algorithm: str) -> None:
    if algorithm not in (V4, V4A):
        raise _incomplete(
            f"Unsupported AWS 'algorithm': '{algorithm}'. Use '{V4}' (SigV4) or '{V4A}' (SigV4a).", "algorithm"
        )


def _parse_authorization(value: str, items: list[tuple[str, str]]) -> _Parsed:
    algorithm, _, rest = value.partition(" ")
    _check_algorithm(algorithm)
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
    if algorithm == V4A:
        region_set = _header(items, "x-amz-region-set")
        if not region_set:
            raise _incomplete("SigV4a requests require the 'X-Amz-Region-Set' header.")
        parsed.region_set = [r.strip() for r in region_set.split(",") if r.strip()]
    return parsed


def _parse_presigned(params: dict[str, str]) -> _Parsed:
    algorithm = params.get("X-Amz-Algorithm", "")
    _check_algorithm(algorithm)
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
    if algorithm == V4A:
        region_set = params.get("X-Amz-Region-Set", "")
        if not region_set:
            raise _incomplete("SigV4a presigned URLs require the 'X-Amz-Region-Set' parameter.")
        parsed.region_set = [r.strip() for r in region_set.split(",") if r.strip()]
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


def _parse_credential(algorithm: str, credential: str, amz_date: str, *, presigned: bool) -> _Parsed:
    elements = credential.split("/")
    expected = 5 if algorithm == V4 else 4
    if len(elements) != expected:
        shape = "keyid/date/region/service/term" if algorithm == V4 else "keyid/date/service/term"
        shown = "/".join([_mask(elements[0]), *elements[1:]])
        raise _incomplete(
            f"Credential must have exactly {expected} slash-delimited elements, e.g. {shape}, got '{shown}'"
        )
    if elements[-1] != "aws4_request":
        raise _incomplete(f"Credential should be scoped with a valid terminator: 'aws4_request', not '{elements[-1]}'.")
    if algorithm == V4:
        key, date, region, service, _ = elements
    else:
        key, date, service, _ = elements
        region = None
    signed_at = _amz_datetime(amz_date)
    if signed_at is None:
        raise _incomplete(MALFORMED_DATE, "malformed_date")
    return _Parsed(algorithm, key, date, region, None, service, [], "", amz_date, presigned, signed_at)


def _amz_datetime(text: str) -> datetime | None:
    """`yyyyMMddTHHmmssZ` -> an aware UTC datetime; None when it is not one, including dates of the right
    shape that no calendar has (month 13, hour 99, year 0000), which datetime() refuses with ValueError."""
    if not _AMZ_DATE(text):
        return None
    try:
        return datetime(
            int(text[0:4]),
            int(text[4:6]),
            int(text[6:8]),
            int(text[9:11]),
            int(text[11:13]),
            int(text[13:15]),
            tzinfo=timezone.utc,
        )
    except ValueError:
        return None


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
    return _format_amz(moment)


def _format_amz(moment: datetime) -> str:
    # Not strftime: %Y is not zero-padded below year 1000 on every platform.
    return (
        f"{moment.year:04d}{moment.month:02d}{moment.day:02d}T{moment.hour:02d}{moment.minute:02d}{moment.second:02d}Z"
    )


def _mask(key: str) -> str:
    from sigv4_proxy.signing.model import mask_key

    return mask_key(key)


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
        if not parsed.session_token or not _same(parsed.session_token, credentials.session_token):
            raise _Reject(
                "UnrecognizedClientException", "The security token included in the request is invalid.", "token"
            )
    _check_scope(parsed, region, service)
    if "host" not in parsed.signed_headers:
        raise _incomplete("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.", "missing_host")
    return credentials


def _fmt(moment: datetime) -> str:
    return _format_amz(moment.astimezone(timezone.utc))


def _check_time(parsed: _Parsed, now: datetime, max_skew_seconds: int) -> None:
    # Differences, not sums: signed_at + expires overflows for a date in year 9999; a difference never does.
    signed_at = parsed.signed_at
    skew = timedelta(seconds=max_skew_seconds)
    minutes = f"{max_skew_seconds // 60} min." if max_skew_seconds % 60 == 0 else f"{max_skew_seconds} sec."
    if signed_at - now > skew:
        raise _Reject(
            "InvalidSignatureException",
            f"Signature not yet current: {parsed.amz_date} is still later than {_fmt(now + skew)} "
            f"({_fmt(now)} + {minutes})",
            "not_yet_valid",
        )
    if parsed.presigned:
        assert parsed.expires is not None
        if now - signed_at > timedelta(seconds=parsed.expires):
            raise _Reject(
                "InvalidSignatureException",
                f"Signature expired: {parsed.amz_date} is now earlier than "
                f"{_fmt(now - timedelta(seconds=parsed.expires))} ({_fmt(now)} - {parsed.expires} sec.)",
                "expired",
            )
    elif now - signed_at > skew:
        raise _Reject(
            "InvalidSignatureException",
            f"Signature expired: {parsed.amz_date} is now earlier than {_fmt(now - skew)} ({_fmt(now)} - {minutes})",
            "expired",
        )


def region_matches(region_set: Sequence[str], region: str) -> bool:
    """SigV4a region sets may hold `*` or prefix wildcards such as `us-*`."""
    for pattern in region_set:
        if pattern == "*" or pattern == region:
            return True
        if pattern.endswith("*") and region.startswith(pattern[:-1]):
            return True
    return False


def _check_scope(parsed: _Parsed, region: str | None, service: str | None) -> None:
    if region is not None:
        if parsed.algorithm == V4 and parsed.region != region:
            raise _Reject(
                "InvalidSignatureException",
                f"Credential should be scoped to a valid region, not '{parsed.region}'. ",
                "scope_region",
            )
        if parsed.algorithm == V4A and not region_matches(parsed.region_set or [], region):
            raise _Reject(
                "InvalidSignatureException",
                f"Credential should be scoped to a valid region, not '{','.join(parsed.region_set or [])}'. ",
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
    parsed: _Parsed,
    credentials: Credentials,
    method: str,
    path: str,
    query: list[tuple[str, str]],
    items: list[tuple[str, str]],
    body: bytes,
    accept_unsigned_session_token: bool,
) -> VerifyResult:
    """Recompute the signature from what was received; on a mismatch say what the server expected."""
    payload_hash = _payload_hash(parsed, items, body)
    signed_query = [(k, v) for k, v in query if k != "X-Amz-Signature"] if parsed.presigned else query
    result = _compare(parsed, credentials, method, path, signed_query, items, payload_hash)
    if not result.ok and parsed.presigned and parsed.session_token and accept_unsigned_session_token:
        # Some services (IoT over WebSocket) add the token to a presigned URL after signing; most (DSQL, RDS)
        # reject that form, so it is accepted only when asked for.
        without_token = [(k, v) for k, v in signed_query if k != "X-Amz-Security-Token"]
        retry = _compare(parsed, credentials, method, path, without_token, items, payload_hash)
        if retry.ok:
            return retry
    return result


def _compare(
    parsed: _Parsed,
    credentials: Credentials,
    method: str,
    path: str,
    signed_query: list[tuple[str, str]],
    items: list[tuple[str, str]],
    payload_hash: str,
) -> VerifyResult:
    try:
        creq = expected_canonical_request(
            method, path, signed_query, items, parsed.signed_headers, payload_hash, parsed.service
        )
        sts, good = _expected_string_to_sign(parsed, credentials, creq)
    except UnicodeEncodeError:  # a lone surrogate in the method, path, query, a header, the scope: never signed
        return _result_from(_unsignable(), parsed)
    extra = {"expected_canonical_request": creq, "expected_string_to_sign": sts}
    if good:
        return _result_from(_Reject("", "", "ok", 200), parsed, ok=True, error_type=None, message="", **extra)
    message = (
        f"{SIGNATURE_MISMATCH}\n\nThe Canonical String for this request should have been\n'{_redact(creq)}'\n\n"
        f"The String-to-Sign should have been\n'{sts}'\n"
    )
    return _result_from(_Reject("InvalidSignatureException", message, "signature"), parsed, **extra)


def _expected_string_to_sign(parsed: _Parsed, credentials: Credentials, creq: str) -> tuple[str, bool]:
    """(the string to sign the server computes, whether the request's signature signs it)."""
    if parsed.algorithm == V4:
        assert parsed.region is not None
        scope = v4.credential_scope(parsed.scope_date, parsed.region, parsed.service)
        sts = v4.string_to_sign(V4, parsed.amz_date, scope, creq)
        expected = v4.sign_with(credentials, parsed.amz_date, parsed.region, parsed.service, sts)
        return sts, _same(expected, parsed.signature.lower())
    scope = v4a.credential_scope(parsed.scope_date, parsed.service)
    sts = v4.string_to_sign(V4A, parsed.amz_date, scope, creq)
    key = v4a.private_key(credentials.access_key_id, credentials.secret_access_key).public_key()
    return sts, v4a.verify_signature(key, sts, parsed.signature)


def _same(received: str, expected: str) -> bool:
    """Constant-time comparison that also takes any text a client may send (compare_digest on str accepts ASCII
    only and would raise instead of rejecting; surrogatepass encodes even a lone surrogate)."""
    return hmac.compare_digest(received.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


def _redact(text: str) -> str:
    """Error bodies travel into logs and clients: the session token never goes with them."""
    return _TOKEN_PARAM.sub(r"\1****", _TOKEN_LINE.sub(r"\1****", text))
