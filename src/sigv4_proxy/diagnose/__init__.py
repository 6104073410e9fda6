"""Turn any upstream failure into one message: what the server said, and what to do about it.

This is the single place where a failed signed request becomes words for the user. Every door (the MCP
bridge, the HTTP listener, ``request``, ``doctor``) calls one of two functions:

    diagnose_response(status, headers, body, context=ctx)  # the server answered 4xx/5xx
    diagnose_exception(exc, context=ctx)                   # no usable answer: DNS, TCP, TLS, timeout, reset

and shows ``Diagnosis.message()``: ``HTTP 403 InvalidSignatureException: <AWS's message>. Diagnosis: <cause
and fix>``. The knowledge lives in :data:`RULES`, an ordered table (first match wins), so a new AWS error
shape is one row plus one test row.

Pure: standard library only, no I/O, cheap to import (the HTTP listener imports it at start-up; httpx's
exception classes are imported when the first failure is classified). Nothing a server echoes back (session
tokens, signatures, bearer tokens, access key ids) survives into a message.

One module per concern; import from the package (these modules are its private parts):

* :mod:`.kinds` — :data:`Kind`, the closed set of diagnosis kinds, and one constant per kind;
* :mod:`.model` — :class:`SigningContext`, :class:`Diagnosis`, :func:`header_value`;
* :mod:`.parse` — every AWS error body shape -> :class:`AwsError`;
* :mod:`.rules` — the knowledge table :data:`RULES` and :func:`diagnose_response`;
* :mod:`.exceptions` — the exception table :func:`exception_rules` and :func:`diagnose_exception`;
* :mod:`.proxies` — the environment proxy a request went through (:func:`proxy_for`, :class:`ProxyInUse`);
* :mod:`.patterns` — regexes compiled on first use. Redaction is :mod:`sigv4_proxy.redact`'s (``redact`` is
  re-exported here for the callers that import it from this package).

What to do about a kind besides backing off (refresh the credentials, correct the clock) is the retry policy's
vocabulary: :attr:`Diagnosis.recovery` answers with :data:`sigv4_proxy.retry.REFRESH_CREDENTIALS` or
:data:`sigv4_proxy.retry.CORRECT_CLOCK`.
"""

from __future__ import annotations

from sigv4_proxy.diagnose.exceptions import diagnose_exception
from sigv4_proxy.diagnose.kinds import (
    ACCESS_DENIED,
    BAD_REQUEST,
    CLIENT_ERROR,
    CLOCK_SKEW,
    COLD_START,
    CONNECT_TIMEOUT,
    CONNECTION_CLOSED,
    CONNECTION_REFUSED,
    CONNECTION_RESET,
    CREDENTIALS,
    DNS,
    DNS_TEMPORARY,
    EXPIRED_TOKEN,
    FORBIDDEN,
    GATEWAY_TIMEOUT,
    INCOMPLETE_SIGNATURE,
    INVALID_TOKEN,
    METHOD_NOT_ALLOWED,
    MISSING_AUTH,
    MISSING_SESSION_TOKEN,
    NETWORK_ERROR,
    NETWORK_UNREACHABLE,
    NOT_FOUND,
    PAYLOAD_TOO_LARGE,
    POOL_TIMEOUT,
    PROXY_REFUSED,
    READ_TIMEOUT,
    SERVER_ERROR,
    SIGNATURE_MISMATCH,
    THROTTLED,
    TIMEOUT,
    TLS,
    TLS_CERTIFICATE,
    UNAUTHORIZED,
    UNAVAILABLE,
    UNEXPECTED_RESPONSE,
    UNEXPECTED_SESSION_TOKEN,
    UNKNOWN_ACCESS_KEY,
    UNSUPPORTED_ALGORITHM,
    WRITE_FAILED,
    WRONG_REGION,
    WRONG_SERVICE,
    Kind,
)
from sigv4_proxy.diagnose.model import MAX_DIAGNOSED_BODY, Diagnosis, Headers, SigningContext, header_value
from sigv4_proxy.diagnose.parse import AwsError, normalize_error_type, parse_aws_error
from sigv4_proxy.diagnose.proxies import ProxyInUse, environment_proxies, proxy_for
from sigv4_proxy.diagnose.rules import RULES, Rule, diagnose_response, host_facts

__all__ = [
    "ACCESS_DENIED",
    "BAD_REQUEST",
    "CLIENT_ERROR",
    "CLOCK_SKEW",
    "COLD_START",
    "CONNECTION_CLOSED",
    "CONNECTION_REFUSED",
    "CONNECTION_RESET",
    "CONNECT_TIMEOUT",
    "CREDENTIALS",
    "DNS",
    "DNS_TEMPORARY",
    "EXPIRED_TOKEN",
    "FORBIDDEN",
    "GATEWAY_TIMEOUT",
    "INCOMPLETE_SIGNATURE",
    "INVALID_TOKEN",
    "MAX_DIAGNOSED_BODY",
    "METHOD_NOT_ALLOWED",
    "MISSING_AUTH",
    "MISSING_SESSION_TOKEN",
    "NETWORK_ERROR",
    "NETWORK_UNREACHABLE",
    "NOT_FOUND",
    "PAYLOAD_TOO_LARGE",
    "POOL_TIMEOUT",
    "PROXY_REFUSED",
    "READ_TIMEOUT",
    "RULES",
    "SERVER_ERROR",
    "SIGNATURE_MISMATCH",
    "THROTTLED",
    "TIMEOUT",
    "TLS",
    "TLS_CERTIFICATE",
    "UNAUTHORIZED",
    "UNAVAILABLE",
    "UNEXPECTED_RESPONSE",
    "UNEXPECTED_SESSION_TOKEN",
    "UNKNOWN_ACCESS_KEY",
    "UNSUPPORTED_ALGORITHM",
    "WRITE_FAILED",
    "WRONG_REGION",
    "WRONG_SERVICE",
    "AwsError",
    "Diagnosis",
    "Headers",
    "Kind",
    "ProxyInUse",
    "Rule",
    "SigningContext",
    "diagnose_exception",
    "diagnose_response",
    "environment_proxies",
    "header_value",
    "host_facts",
    "normalize_error_type",
    "parse_aws_error",
    "proxy_for",
]
