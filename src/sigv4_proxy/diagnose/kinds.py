"""Diagnosis kinds: the stable machine-readable names of what went wrong (``Diagnosis.kind``, the ``kind`` of the
HTTP listener's JSON error body). The retry policy (:mod:`sigv4_proxy.retry`) and the doors key on these.

:data:`Kind` is the closed set; each name below is one of its values (``Final``, so a type checker reads it as
that literal).
"""

from __future__ import annotations

from typing import Final, Literal

Kind = Literal[
    # Answers from the server
    "signature_mismatch",
    "wrong_service",
    "wrong_region",
    "clock_skew",
    "expired_token",
    "invalid_token",
    "missing_session_token",
    "unexpected_session_token",
    "unknown_access_key",
    "access_denied",
    "forbidden",
    "missing_auth",
    "incomplete_signature",
    "unsupported_algorithm",
    "unauthorized",
    "not_found",
    "method_not_allowed",
    "payload_too_large",
    "bad_request",
    "cold_start",
    "throttled",
    "unavailable",
    "gateway_timeout",
    "server_error",
    "client_error",
    "unexpected_response",
    # No usable answer
    "dns",
    "dns_temporary",
    "connection_refused",
    "network_unreachable",
    "tls_certificate",
    "tls",
    "connect_timeout",
    "pool_timeout",
    "write_failed",
    "read_timeout",
    "timeout",
    "connection_reset",
    "connection_closed",
    "credentials",
    "network_error",
    "proxy_refused",
]

# Answers from the server
SIGNATURE_MISMATCH: Final = "signature_mismatch"
WRONG_SERVICE: Final = "wrong_service"
WRONG_REGION: Final = "wrong_region"
CLOCK_SKEW: Final = "clock_skew"
EXPIRED_TOKEN: Final = "expired_token"
INVALID_TOKEN: Final = "invalid_token"
MISSING_SESSION_TOKEN: Final = "missing_session_token"
UNEXPECTED_SESSION_TOKEN: Final = "unexpected_session_token"
UNKNOWN_ACCESS_KEY: Final = "unknown_access_key"
ACCESS_DENIED: Final = "access_denied"
FORBIDDEN: Final = "forbidden"
MISSING_AUTH: Final = "missing_auth"
INCOMPLETE_SIGNATURE: Final = "incomplete_signature"
UNSUPPORTED_ALGORITHM: Final = "unsupported_algorithm"
UNAUTHORIZED: Final = "unauthorized"
NOT_FOUND: Final = "not_found"
METHOD_NOT_ALLOWED: Final = "method_not_allowed"
PAYLOAD_TOO_LARGE: Final = "payload_too_large"
BAD_REQUEST: Final = "bad_request"
COLD_START: Final = "cold_start"
THROTTLED: Final = "throttled"
UNAVAILABLE: Final = "unavailable"
GATEWAY_TIMEOUT: Final = "gateway_timeout"
SERVER_ERROR: Final = "server_error"
CLIENT_ERROR: Final = "client_error"
UNEXPECTED_RESPONSE: Final = "unexpected_response"
# No usable answer
DNS: Final = "dns"
DNS_TEMPORARY: Final = "dns_temporary"
CONNECTION_REFUSED: Final = "connection_refused"
NETWORK_UNREACHABLE: Final = "network_unreachable"
TLS_CERTIFICATE: Final = "tls_certificate"
TLS: Final = "tls"
CONNECT_TIMEOUT: Final = "connect_timeout"
POOL_TIMEOUT: Final = "pool_timeout"
WRITE_FAILED: Final = "write_failed"
READ_TIMEOUT: Final = "read_timeout"
TIMEOUT: Final = "timeout"
CONNECTION_RESET: Final = "connection_reset"
CONNECTION_CLOSED: Final = "connection_closed"
CREDENTIALS: Final = "credentials"
NETWORK_ERROR: Final = "network_error"
PROXY_REFUSED: Final = "proxy_refused"
