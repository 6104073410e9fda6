"""`verify()` never raises: whatever arrives, the answer is a `VerifyResult` (a 403 for anything malformed).

A server hands `verify()` bytes from the network; an exception there is a 500 from `emulate mcp` instead of
AWS's 403. The explicit cases are the inputs that used to raise (calendar-impossible dates, an out-of-range
`Date:` header, lone surrogates, a naive credential expiry); the properties throw arbitrary methods, paths,
header names and values and query parameters at signed requests of every form and check that an answer
always comes back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from urllib.parse import quote, unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sigv4_proxy import Credentials, VerifyResult, sign, verify
from sigv4_proxy.signing.amzdate import AUTH_QUERY_PARAMS
from sigv4_proxy.signing.model import V4, V4A
from tests.core.test_verify_tamper import (
    FORMS,
    KNOWN,
    NOW,
    REGION,
    SERVICE,
    SESSION,
    Form,
    Received,
    check,
    edit_header,
    edit_param,
    signed_request,
)

INCOMPLETE = "IncompleteSignatureException"
MALFORMED_DATE = "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\""
NO_DATE = "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
HEADER_FORMS = [f for f in FORMS if not f.presigned]
PRESIGNED_FORMS = [f for f in FORMS if f.presigned]


def with_date(amz_date: str) -> object:
    """Set X-Amz-Date *and* the credential scope's date to `amz_date`, so the scope-date check passes and the
    date itself is what is judged."""

    def apply(r: Received) -> Received:
        if r.presigned:
            r = _set_param("X-Amz-Date", amz_date, raw=False)(r)  # type: ignore[operator]
        else:
            r = edit_header("x-amz-date", lambda _: amz_date)(r)
        return _set_credential_part(1, amz_date[:8])(r)  # type: ignore[operator]

    return apply


# -------------------------------------------------------------------------------------------- the dates
# Of the right shape, but no calendar has them: datetime() refuses them with ValueError.
IMPOSSIBLE_DATES = [
    pytest.param("20261301T000000Z", id="month-13"),
    pytest.param("20261200T000000Z", id="day-0"),
    pytest.param("20260230T000000Z", id="february-30"),
    pytest.param("20260101T990000Z", id="hour-99"),
    pytest.param("20260101T246000Z", id="hour-24-minute-60"),
    pytest.param("20260101T000060Z", id="second-60"),
    pytest.param("00000101T000000Z", id="year-0000"),
    pytest.param("00001301T990000Z", id="everything-wrong"),
]
# Not of the right shape, although a looser parser would take them.
LOOKALIKE_DATES = [
    pytest.param(
        "\uff12\uff10\uff12\uff14\uff10\uff15\uff10\uff16T\uff10\uff17\uff10\uff18\uff10\uff19Z", id="fullwidth-digits"
    ),
    pytest.param(
        "\u0662\u0660\u0662\u0664\u0660\u0665\u0660\u0666T\u0660\u0667\u0660\u0668\u0660\u0669Z", id="arabic-digits"
    ),
]


@pytest.mark.parametrize("amz_date", IMPOSSIBLE_DATES + LOOKALIKE_DATES)
@pytest.mark.parametrize("form", FORMS, ids=lambda f: f.id)
def test_malformed_x_amz_date_is_a_403(form: Form, amz_date: str) -> None:
    result = check(with_date(amz_date)(signed_request(form)))
    assert (result.ok, result.status, result.error_type) == (False, 403, INCOMPLETE)
    assert (result.reason, result.message) == ("malformed_date", MALFORMED_DATE)


@pytest.mark.parametrize("form", PRESIGNED_FORMS, ids=lambda f: f.id)
def test_x_amz_date_parameter_with_a_trailing_newline_is_a_403(form: Form) -> None:
    """A query value is taken as is (a header value is trimmed, as signers trim it): `$` in a regex matches
    before a final newline, and the parse behind it then raised."""
    result = check(with_date("20240506T070809Z\n")(signed_request(form)))
    assert (result.status, result.reason, result.message) == (403, "malformed_date", MALFORMED_DATE)


@pytest.mark.parametrize(
    "date",
    [
        pytest.param("Fri, 31 Dec 9999 23:59:59 -0100", id="after-year-9999-in-utc"),
        pytest.param("Mon, 01 Feb 99999999999999999999 00:00:00 GMT", id="year-overflows"),
        pytest.param("Mon, 32 Jan 2024 00:00:00 GMT", id="day-32"),
        pytest.param("Mon, 01 Jan 2024 99:00:00 GMT", id="hour-99"),
        pytest.param("yesterday", id="not-a-date"),
    ],
)
@pytest.mark.parametrize("form", HEADER_FORMS, ids=lambda f: f.id)
def test_date_header_out_of_range_is_a_403(form: Form, date: str) -> None:
    """Without X-Amz-Date, the `Date:` header dates the request; one that is no date is no date at all."""
    received = edit_header("x-amz-date", lambda _: None)(signed_request(form))
    result = check(replace(received, headers=[*received.headers, ("Date", date)]))
    assert (result.ok, result.status, result.error_type) == (False, 403, INCOMPLETE)
    assert (result.reason, result.message) == ("malformed", NO_DATE)


@pytest.fixture
def new_york() -> Iterator[None]:
    """The machine's time zone is not UTC (it must not matter: the core reads no environment)."""
    saved = time.tzname
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TZ", "America/New_York")
        time.tzset()
        yield
    time.tzset()
    assert time.tzname == saved


@pytest.mark.usefixtures("new_york")
def test_date_header_minus_0000_is_utc_not_the_machines_time_zone() -> None:
    """RFC 2822's `-0000` ("UTC, local zone unknown") gives a naive datetime; it is UTC, never local time."""
    received = edit_header("x-amz-date", lambda _: None)(signed_request(HEADER_FORMS[0]))
    result = check(replace(received, headers=[*received.headers, ("Date", "Mon, 06 May 2024 07:08:09 -0000")]))
    assert result.amz_date == "20240506T070809Z"
    assert result.reason == "signature"  # x-amz-date was signed and is gone: judged, and refused


def test_year_9999_presigned_url_never_overflows() -> None:
    """A URL dated at the end of the calendar, checked at the end of the calendar: signed_at + expires would
    overflow datetime; the check compares differences instead."""
    end = datetime(9999, 12, 31, 23, 59, 0, tzinfo=timezone.utc)
    received = with_date("99991231T235900Z")(signed_request(PRESIGNED_FORMS[0]))
    received = edit_param("X-Amz-Expires", lambda _: "604800")(received)
    result = check(received, now=end)
    assert (result.reason, result.status) == ("signature", 403)  # date and scope edited: judged, refused
    assert check(received, now=end - timedelta(days=1)).reason == "not_yet_valid"


def test_a_request_signed_in_the_last_microsecond_of_9999_is_dated_in_its_own_second() -> None:
    """A float timestamp cannot hold 23:59:59.999999 of year 9999 and rounds up: the date formatter used to sign
    it as `100000101T000000Z`, which no verifier parses."""
    now = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc)
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    signed = sign("GET", "https://h.example/", credentials=credentials, region=REGION, service=SERVICE, now=now)
    assert (signed.amz_date, signed.credential_scope[:9]) == ("99991231T235959Z", "99991231/")
    result = verify("GET", "/", signed.headers, b"", credentials_for={"AKIDEXAMPLE": credentials}.get, now=now)
    assert result.ok, result.message


# ---------------------------------------------------------------------------------------- X-Amz-Expires
@pytest.mark.parametrize(
    ("expires", "message"),
    [
        ("9" * 5000, "X-Amz-Expires must be less than a week (in seconds) that is 604800"),
        ("0" * 5000 + "900", None),  # leading zeros: 900
        ("99999999999", "X-Amz-Expires must be less than a week (in seconds) that is 604800"),
        ("0", "X-Amz-Expires must be less than a week (in seconds) that is 604800"),
        ("+900", "X-Amz-Expires should be a number"),
        (" 900", "X-Amz-Expires should be a number"),
        ("9_00", "X-Amz-Expires should be a number"),
        ("\u0669\u0660\u0660", "X-Amz-Expires should be a number"),  # Arabic-Indic 900
        ("-1", "X-Amz-Expires should be a number"),
    ],
)
def test_x_amz_expires_is_ascii_digits_at_most_a_week(expires: str, message: str | None) -> None:
    result = check(edit_param("X-Amz-Expires", lambda _: expires)(signed_request(PRESIGNED_FORMS[0])))
    if message is None:
        assert result.reason == "signature"  # parsed as 900; the edited text no longer matches the signature
    else:
        assert (result.reason, result.error_type, result.message) == ("expires", INCOMPLETE, message)


# ------------------------------------------------------------------------------------- lone surrogates
def everywhere(old: str, new: str) -> object:
    """Replace `old` by `new` in every header value and every raw (still encoded) query value."""

    def apply(r: Received) -> Received:
        headers = [(k, v.replace(old, new)) for k, v in r.headers]
        query = [(k, v.replace(old, new)) for k, v in r.query]
        return replace(r, headers=headers, query=query)

    return apply


# Text no client can send (it has no UTF-8 form), as a caller that decoded bytes loosely may pass it.
SURROGATE_EDITS = [
    pytest.param(edit_header("x-custom", lambda v: v + "\ud800"), id="signed-header-value"),
    pytest.param(edit_header("content-type", lambda v: "\udcff"), id="signed-header-escape"),
    pytest.param(lambda r: replace(r, path=r.path + "\ud800"), id="path"),
    pytest.param(lambda r: replace(r, method="P\ud800ST"), id="method"),
    pytest.param(lambda r: replace(r, query=[*r.query, ("%41\ud800", "1")]), id="query-name-with-escape"),
    pytest.param(lambda r: replace(r, query=[*r.query, ("q", "\ud800")]), id="query-value"),
    pytest.param(everywhere("IQoJ", "IQ\ud800J"), id="session-token"),
    pytest.param(
        lambda r: everywhere("execute-api/", "exec\ud800/")(everywhere("execute-api%2F", "exec\ud800%2F")(r)),
        id="credential-scope",
    ),
    pytest.param(everywhere("AWS4-", "AWS\ud800-"), id="algorithm"),
]


@pytest.mark.parametrize("edit", SURROGATE_EDITS)
@pytest.mark.parametrize("form", [f for f in FORMS if f.credentials is SESSION], ids=lambda f: f.id)
def test_lone_surrogates_are_a_403(form: Form, edit: object) -> None:
    result = check(edit(signed_request(form)), region=None, service=None)  # type: ignore[operator]
    assert not result.ok
    assert result.status == 403


def test_naive_credential_expiry_is_utc() -> None:
    """A credential lookup may hand back a naive expiry; comparing it with an aware `now` must not raise."""
    naive = replace(SESSION, expiry=datetime(2024, 5, 6, 7, 0, 0))  # before NOW
    received = signed_request(next(f for f in HEADER_FORMS if f.credentials is SESSION))
    result = verify(
        received.method,
        received.target,
        received.headers,
        received.body,
        credentials_for={SESSION.access_key_id: naive}.get,
        now=NOW,
    )
    assert (result.reason, result.error_type) == ("expired_token", "ExpiredTokenException")


# ------------------------------------------------------------------------------------------ properties
ROBUST = settings(
    max_examples=600,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

_AUTH_NAMES = ["Authorization", "X-Amz-Date", "Date", "X-Amz-Security-Token", "X-Amz-Content-Sha256"]
_HEADER_NAMES = [*_AUTH_NAMES, "X-Amz-Region-Set", "Host", "Content-Type", "X-Custom", "authorization"]
_PARAM_NAMES = sorted(AUTH_QUERY_PARAMS)
_WHITESPACE = " \t\n\r\x0b\x0c\x1c\x1f\x85\xa0\u2028\u3000"
# Any text (surrogates included), plus the shapes that reach deep into the checks: date-like values (most of
# them calendar-impossible), numbers of any length, algorithm names, whitespace of every kind.
_values = st.one_of(
    st.text(max_size=30),
    st.from_regex(r"[0-9]{8}T[0-9]{6}Z", fullmatch=True),
    st.from_regex(r"[0-9]{1,40}", fullmatch=True),
    st.text(st.sampled_from(list(_WHITESPACE + "ab,;=/")), max_size=8),
    st.sampled_from(["", V4, V4A, "aws4_request", "*", "us-*", "UNSIGNED-PAYLOAD", "STREAMING-X", "host"]),
    st.sampled_from(["Fri, 31 Dec 9999 23:59:59 -0100", "Mon, 06 May 2024 07:08:09 -0000", "99991231T235959Z"]),
)
_header_names = st.one_of(st.sampled_from(_HEADER_NAMES), st.text(max_size=12))
_param_names = st.one_of(st.sampled_from(_PARAM_NAMES), st.text(max_size=12))
_fields = st.sampled_from(["Credential", "SignedHeaders", "Signature", "Algorithm"])


def _set_header(name: str, value: str, keep_old: bool) -> object:
    def apply(r: Received) -> Received:
        kept = r.headers if keep_old else [(k, v) for k, v in r.headers if k.lower() != name.lower()]
        return replace(r, headers=[*kept, (name, value)])

    return apply


def _param(r: Received, name: str) -> str:
    values = [unquote(v, errors="surrogatepass") for k, v in r.query if k == name]
    return values[0] if values else ""


def _set_param(name: str, value: str, raw: bool) -> object:
    """Set a query parameter, percent-encoded as a client would, or raw (whatever the text holds)."""

    def apply(r: Received) -> Received:
        encoded = (name, value) if raw else (quote(name, safe=""), quote(value, safe="", errors="surrogatepass"))
        return replace(r, query=[(k, v) for k, v in r.query if k != encoded[0]] + [encoded])

    return apply


def _set_credential_part(index: int, value: str) -> object:
    """Replace one slash-separated element of the credential, whatever shape earlier edits left it in."""

    def change(credential: str) -> str:
        elements = credential.split("/")
        elements += [""] * (index + 1 - len(elements))
        elements[index] = value
        return "/".join(elements)

    return lambda r: _set_auth_field("Credential", None, change)(r)  # type: ignore[operator]


def _set_auth_field(field: str, value: str | None, change: object = None) -> object:
    def new(old: str) -> str:
        return value if value is not None else change(old)  # type: ignore[operator]

    def apply(r: Received) -> Received:
        if r.presigned:
            name = "X-Amz-Algorithm" if field == "Algorithm" else f"X-Amz-{field}"
            return _set_param(name, new(_param(r, name)), raw=False)(r)  # type: ignore[operator]

        def rewrite(authorization: str) -> str:
            algorithm, _, rest = authorization.partition(" ")
            if field == "Algorithm":
                return f"{new(algorithm)} {rest}"
            parts = rest.split(", ")
            parts = [f"{field}={new(p.partition('=')[2])}" if p.startswith(field + "=") else p for p in parts]
            return f"{algorithm} {', '.join(parts)}"

        return edit_header("authorization", rewrite)(r)

    return apply


_edits = st.one_of(
    st.builds(_set_header, _header_names, _values, st.booleans()),
    st.builds(_set_param, _param_names, _values, st.booleans()),
    st.builds(_set_auth_field, _fields, _values),
    st.builds(_set_credential_part, st.integers(0, 5), _values),
    st.builds(with_date, _values),
    st.builds(lambda text: lambda r: replace(r, method=text), st.text(max_size=8)),
    st.builds(lambda text: lambda r: replace(r, path=text), st.text(max_size=20)),
    st.builds(lambda body: lambda r: replace(r, body=body), st.binary(max_size=20)),
)


def _assert_an_answer(result: object) -> None:
    assert isinstance(result, VerifyResult)
    assert result.status in (200, 400, 403)
    assert result.ok is (result.status == 200)
    status, _headers, body = result.to_response()  # what a server sends must serialise too
    assert status == result.status
    assert json.loads(body) == {"message": result.message}


@ROBUST
@given(
    form=st.sampled_from(FORMS),
    edits=st.lists(_edits, min_size=1, max_size=4),
    pinned=st.booleans(),
    lookup_expiry=st.sampled_from([None, datetime(2024, 5, 6), NOW + timedelta(hours=1)]),
)
def test_verify_never_raises_on_an_edited_signed_request(
    form: Form, edits: list[object], pinned: bool, lookup_expiry: datetime | None
) -> None:
    received = signed_request(form)
    for edit in edits:
        received = edit(received)  # type: ignore[operator]
    known = {key: replace(c, expiry=lookup_expiry) if c.session_token else c for key, c in KNOWN.items()}
    result = verify(
        received.method,
        received.target,
        received.headers,
        received.body,
        credentials_for=known.get,
        now=NOW,
        region=REGION if pinned else None,
        service=SERVICE if pinned else None,
    )
    _assert_an_answer(result)


# Built from parts, so that arbitrary text lands in every field of a claim, not only in its first token.
def _either(valid: str) -> st.SearchStrategy[str]:
    return st.one_of(st.just(valid), _values)


_credential = st.one_of(
    st.lists(_values, min_size=0, max_size=6).map("/".join),
    st.lists(
        st.one_of(_either("ANYKEY"), _either("20240506"), _either("us-east-1"), _either("aws4_request")),
        min_size=4,
        max_size=5,
    ).map("/".join),
)
_authorization = st.builds(
    lambda algorithm, credential, signed, signature: (
        f"{algorithm} Credential={credential}, SignedHeaders={signed}, Signature={signature}"
    ),
    st.one_of(st.sampled_from([V4, V4A]), st.sampled_from([V4, V4A]), _values),
    _credential,
    st.one_of(st.just("host;x-amz-date"), _values),
    _values,
)
_targets = st.one_of(
    st.text(max_size=60),
    st.builds(
        lambda path, pairs: path + "?" + "&".join(f"{name}={value}" for name, value in pairs),
        st.text(max_size=10),
        st.lists(st.tuples(_param_names, st.one_of(_values, _credential)), max_size=8),
    ),
)
_arbitrary_headers = st.lists(
    st.one_of(
        st.tuples(_header_names.filter(lambda name: name.lower() != "authorization"), _values),
        st.tuples(st.just("Authorization"), _authorization),
        st.tuples(st.just("X-Amz-Date"), st.one_of(st.just("20240506T070809Z"), _values)),
    ),
    max_size=8,
)


@ROBUST
@given(
    method=st.text(max_size=10),
    target=_targets,
    headers=_arbitrary_headers,
    body=st.one_of(st.none(), st.binary(max_size=30)),
    now=st.datetimes(timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=-11))]))
    .filter(lambda d: datetime.min.replace(tzinfo=timezone.utc) + timedelta(days=8) < d)
    .filter(lambda d: d < datetime.max.replace(tzinfo=timezone.utc) - timedelta(days=8)),
)
def test_verify_never_raises_on_arbitrary_input(
    method: str, target: str, headers: list[tuple[str, str]], body: bytes | None, now: datetime
) -> None:
    anyone = Credentials("ANYKEY", "any-secret", "any-token")
    result = verify(method, target, headers, body, credentials_for=lambda key: anyone, now=now)
    _assert_an_answer(result)
