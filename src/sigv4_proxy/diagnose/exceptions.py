"""Failures without an HTTP answer (DNS, TCP, TLS, proxies, timeouts, resets, credentials) -> a kind, a cause
and a fix. :data:`EXCEPTION_RULES` is the table, in order (first match wins), matched with ``isinstance`` against
the exception classes anywhere in the exception's chain (``__cause__``/``__context__``: httpx wraps the socket
and ssl errors), the chain's text, or its ``errno``. :func:`diagnose_exception` applies it.

httpx, ssl and socket are imported when the first failure is classified, not with this module (the HTTP
listener imports :mod:`sigv4_proxy.diagnose` at start-up; whoever has a failure to classify has loaded them).
"""

from __future__ import annotations

import errno
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import TypeVar
from urllib.parse import urlsplit

from sigv4_proxy.diagnose.kinds import (
    CONNECT_TIMEOUT,
    CONNECTION_CLOSED,
    CONNECTION_REFUSED,
    CONNECTION_RESET,
    CREDENTIALS,
    DNS,
    DNS_TEMPORARY,
    NETWORK_ERROR,
    NETWORK_UNREACHABLE,
    POOL_TIMEOUT,
    PROXY_REFUSED,
    READ_TIMEOUT,
    TIMEOUT,
    TLS,
    TLS_CERTIFICATE,
    WRITE_FAILED,
    Kind,
)
from sigv4_proxy.diagnose.model import Diagnosis, SigningContext
from sigv4_proxy.diagnose.patterns import LazyPattern, lazy_re
from sigv4_proxy.diagnose.proxies import ProxyInUse, proxy_for
from sigv4_proxy.errors import CredentialsError
from sigv4_proxy.redact import redact

E = TypeVar("E", bound=BaseException)

_DNS_TEXT = lazy_re(
    r"Name or service not known|nodename nor servname|No address associated|getaddrinfo failed|"
    r"no such host|Name does not resolve|Temporary failure in name resolution",
    re.I,
)
_REFUSED_TEXT = lazy_re(r"Connection refused|actively refused|ECONNREFUSED", re.I)
_RESET_TEXT = lazy_re(r"Connection reset|ECONNRESET|Broken pipe|connection aborted", re.I)
_CLOSED_TEXT = lazy_re(
    r"Server disconnected|peer closed connection|incomplete chunked read|"
    r"without sending a (?:complete )?(?:response|message)",
    re.I,
)
_CERT_TEXT = lazy_re(
    r"CERTIFICATE_VERIFY_FAILED|certificate verify failed|hostname mismatch|"
    r"self[- ]signed certificate|unable to get local issuer",
    re.I,
)
# OpenSSL's answer when the server speaks plain HTTP on the port.
_PLAIN_HTTP_TEXT = lazy_re(r"WRONG_VERSION_NUMBER|(?i:wrong version number)")
_UNREACHABLE_ERRNOS = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH})
_PROXY_STATUS = lazy_re(r"^\s*(\d{3})\b")


@dataclass(frozen=True)
class Failure:
    """What the rows look at: the exception chain, its text (redacted, each distinct text once), where the
    request went and the environment proxy it went through (None: a direct connection)."""

    exc: BaseException
    chain: tuple[BaseException, ...]
    text: str
    context: SigningContext
    environ: Mapping[str, str] | None
    proxy: ProxyInUse | None

    @classmethod
    def of(cls, exc: BaseException, context: SigningContext, environ: Mapping[str, str] | None) -> Failure:
        chain = _chain(exc)
        text = " | ".join(dict.fromkeys(redact(str(e)) for e in chain if str(e)))
        return cls(exc, chain, text, context, environ, proxy_for(context.request_url or context.url, environ))

    def first(self, kind: type[E]) -> E | None:
        """The first exception of the chain that is a `kind`."""
        return next((e for e in self.chain if isinstance(e, kind)), None)

    @property
    def where(self) -> str:
        return self.context.host_port

    @property
    def host(self) -> str:
        return self.context.host or self.where

    @property
    def short_text(self) -> str:
        return _short(self.text)

    @property
    def undo_proxy(self) -> str:
        """How to stop going through the proxy, for hosts reachable directly."""
        unset = f"unset {self.proxy.variable} / " if self.proxy is not None else ""
        return f"{unset}add {self.context.host} to NO_PROXY"

    def proxy_described(self) -> str:
        return self.proxy.describe() if self.proxy is not None else "the proxy in use"


Text = Callable[[Failure], str]


@dataclass(frozen=True)
class ExceptionRule:
    """One row: matches when any exception of the chain is one of `types`, the chain's text matches `text`, or
    an OSError of the chain has one of `errnos` — and `when` (if given) holds; `via_proxy` rows apply only
    to a connection through an environment proxy (a failure to connect is then the proxy's)."""

    kind: Kind
    retryable: bool
    cause: Text
    hint: Text
    types: tuple[type[BaseException], ...] = ()
    text: LazyPattern | None = None
    errnos: frozenset[int] = frozenset()
    when: Callable[[Failure], bool] | None = None
    via_proxy: bool = False

    def matches(self, failure: Failure) -> bool:
        if self.via_proxy and failure.proxy is None:
            return False
        found = (
            any(isinstance(e, self.types) for e in failure.chain)
            or (self.text is not None and self.text.search(failure.text) is not None)
            or any(isinstance(e, OSError) and e.errno in self.errnos for e in failure.chain)
        )
        return found and (self.when is None or self.when(failure))


def _chain(exc: BaseException) -> tuple[BaseException, ...]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not known for known in seen) and len(seen) < 16:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return tuple(seen)


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _temporary_dns(failure: Failure) -> bool:
    import socket

    dns = failure.first(socket.gaierror)
    return (dns is not None and dns.errno == socket.EAI_AGAIN) or "Temporary failure" in failure.text


def _ssl_reason(failure: Failure) -> str:
    import ssl

    for e in failure.chain:
        if isinstance(e, ssl.SSLCertVerificationError) and e.verify_message:
            return str(e.verify_message)
        if isinstance(e, ssl.SSLError) and e.reason:
            return str(e.reason)
    return failure.short_text


def _openssl_advice(failure: Failure) -> str:
    return f"`openssl s_client -connect {failure.where} -servername {failure.host}`"


def _corporate_proxy_advice(failure: Failure, default: str) -> str:
    """`default` (set HTTPS_PROXY) unless a proxy is configured and NO_PROXY makes this host bypass it."""
    ctx = failure.context
    bypassed = proxy_for(ctx.request_url or ctx.url, failure.environ, honour_no_proxy=False)
    if bypassed is None:
        return default
    return (
        f"the host may have to be reached through {bypassed.describe()}, which NO_PROXY makes it bypass: "
        f"remove {ctx.host} from NO_PROXY if so"
    )


def _proxy_refusal_hint(failure: Failure) -> str:
    """The proxy answered the CONNECT for the target with an error status (httpx.ProxyError "407 ...")."""
    status = _PROXY_STATUS.search(_proxy_said(failure))
    code = int(status.group(1)) if status else None
    host_port, undo = failure.context.host_port, failure.undo_proxy
    if code == 407:
        setting = f"{failure.proxy.variable}=" if failure.proxy is not None else ""
        return (
            f"the proxy wants credentials: put them in the proxy URL ({setting}http://USER:PASSWORD@HOST:PORT), "
            f"or {undo} if the host is reachable directly"
        )
    if code == 403:
        return (
            f"the proxy's rules forbid connections to {host_port}: ask for it to be allowed, or {undo} if the "
            "host is reachable directly"
        )
    if code in (502, 503, 504):
        return (
            f"the proxy could not reach {host_port} itself (name resolution, firewall, or the server is down): "
            f"check the target URL; for a host inside your network, {undo}"
        )
    return f"check the proxy's logs, or {undo} if the host is reachable directly"


def _proxy_said(failure: Failure) -> str:
    return _short(redact(str(failure.first(_httpx_proxy_error()))))


def _proxy_refusal_cause(failure: Failure) -> str:
    said = _proxy_said(failure)
    reason = f": {said}" if said else ""
    return f"{failure.proxy_described()} refused the connection to {failure.context.host_port}{reason}"


def _network_error_cause(failure: Failure) -> str:
    name = type(failure.exc).__name__
    description = f"{name}: {failure.short_text}" if failure.text else name
    return f"request to {failure.where} failed ({description})"


def _httpx_proxy_error() -> type[BaseException]:
    import httpx

    return httpx.ProxyError


_NOT_RESENT = "the request may have been executed, so it was not resent"


@cache
def exception_rules() -> tuple[ExceptionRule, ...]:
    """The table (built on first use: it names httpx's, ssl's and socket's classes)."""
    import socket
    import ssl

    import httpx

    dns, refused, unreachable = (socket.gaierror,), (ConnectionRefusedError,), _UNREACHABLE_ERRNOS
    return (
        ExceptionRule(
            CREDENTIALS,
            False,
            lambda f: redact(str(f.first(CredentialsError))),
            lambda f: "fix the credential source named above; the request was not sent",
            types=(CredentialsError,),
        ),
        ExceptionRule(PROXY_REFUSED, False, _proxy_refusal_cause, _proxy_refusal_hint, types=(httpx.ProxyError,)),
        # Through a proxy every connection goes to the proxy: a failure to connect is the proxy's, never the target's.
        ExceptionRule(
            DNS_TEMPORARY,
            True,
            _proxy_dns_cause,
            _proxy_dns_hint,
            types=dns,
            text=_DNS_TEXT,
            when=_temporary_dns,
            via_proxy=True,
        ),
        ExceptionRule(
            DNS,
            False,
            _proxy_dns_cause,
            _proxy_dns_hint,
            types=dns,
            text=_DNS_TEXT,
            via_proxy=True,
        ),
        ExceptionRule(
            CONNECTION_REFUSED,
            True,
            lambda f: f"could not connect to {f.proxy_described()}: connection refused",
            lambda f: (
                "nothing is listening at the proxy's address: check that the proxy is running and the port "
                f"in {_proxy_variable(f)}, or {f.undo_proxy} if the host is reachable directly"
            ),
            types=refused,
            text=_REFUSED_TEXT,
            via_proxy=True,
        ),
        ExceptionRule(
            NETWORK_UNREACHABLE,
            True,
            lambda f: f"could not connect to {f.proxy_described()}: no route to it",
            lambda f: (
                "the network cannot reach the proxy: check VPN and network connection, or "
                f"{f.undo_proxy} if the host is reachable directly"
            ),
            errnos=unreachable,
            via_proxy=True,
        ),
        ExceptionRule(
            CONNECT_TIMEOUT,
            True,
            lambda f: f"connecting through {f.proxy_described()} to {f.where} timed out",
            lambda f: (
                "no answer in time from the proxy, or through it from the server: check the proxy's "
                f"address in {_proxy_variable(f)} and the network, or {f.undo_proxy} if the host is reachable directly"
            ),
            types=(httpx.ConnectTimeout,),
            via_proxy=True,
        ),
        ExceptionRule(
            TLS_CERTIFICATE,
            False,
            lambda f: f"TLS certificate of {f.where} not accepted ({_ssl_reason(f)})",
            lambda f: (
                "check that the target URL's host is the certificate's name; behind a TLS-inspecting "
                f"corporate proxy point SSL_CERT_FILE at its CA bundle; inspect with {_openssl_advice(f)}"
            ),
            types=(ssl.SSLCertVerificationError,),
            text=_CERT_TEXT,
        ),
        ExceptionRule(
            TLS,
            False,
            lambda f: f"TLS handshake with {f.where} failed (the server does not speak TLS)",
            lambda f: (
                "the server answers plain HTTP on that port: use an http:// target URL (non-loopback hosts "
                "also need --allow-http), or the right HTTPS port"
            ),
            text=_PLAIN_HTTP_TEXT,
        ),
        ExceptionRule(
            TLS,
            False,
            lambda f: f"TLS handshake with {f.where} failed ({_ssl_reason(f)})",
            lambda f: (
                "is the target really HTTPS on that port? A firewall or TLS-inspecting proxy may interfere; "
                f"inspect with {_openssl_advice(f)}"
            ),
            types=(ssl.SSLError,),
        ),
        ExceptionRule(DNS_TEMPORARY, True, _dns_cause, _dns_hint, types=dns, text=_DNS_TEXT, when=_temporary_dns),
        ExceptionRule(DNS, False, _dns_cause, _dns_hint, types=dns, text=_DNS_TEXT),
        ExceptionRule(
            CONNECTION_REFUSED,
            True,
            lambda f: f"connection to {f.where} refused",
            lambda f: (
                f"nothing is listening at {f.where}: check that the server is running and the target URL's "
                "port; on AWS check security groups and network ACLs"
            ),
            types=refused,
            text=_REFUSED_TEXT,
        ),
        ExceptionRule(
            NETWORK_UNREACHABLE,
            True,
            lambda f: f"no route to {f.where}",
            lambda f: "the network cannot reach the host: check VPN, network connection and routes",
            errnos=unreachable,
        ),
        ExceptionRule(
            CONNECT_TIMEOUT,
            True,
            lambda f: f"connecting to {f.where} timed out",
            lambda f: (
                "no answer to the connection attempt: a firewall drops the packets, the host/port is wrong, "
                "or " + _corporate_proxy_advice(f, "a corporate proxy is required (HTTPS_PROXY)")
            ),
            types=(httpx.ConnectTimeout,),
        ),
        ExceptionRule(
            POOL_TIMEOUT,
            True,
            lambda f: f"no free connection to {f.where} in time",
            lambda f: (
                "every pooled connection is busy with a long request: the request was not sent; retry, or "
                "raise the time limit"
            ),
            types=(httpx.PoolTimeout,),
        ),
        ExceptionRule(
            WRITE_FAILED,
            True,
            lambda f: f"sending the request to {f.where} failed ({f.short_text})",
            lambda f: "the connection broke before the whole request was sent, so the server cannot have executed it",
            types=(httpx.WriteTimeout, httpx.WriteError),
        ),
        ExceptionRule(
            READ_TIMEOUT,
            False,
            lambda f: f"no response from {f.where} within the time limit",
            lambda f: (
                "the server accepted the request but did not answer in time; it may still be executing it, "
                "so it was not resent; raise --timeout for slow operations"
            ),
            types=(httpx.ReadTimeout,),
        ),
        ExceptionRule(
            CONNECTION_CLOSED,
            False,
            lambda f: f"{f.where} closed the connection before the response was complete",
            lambda f: (
                "the server or a load balancer dropped the connection (crash, restart, idle or duration "
                f"limit); {_NOT_RESENT}"
            ),
            types=(httpx.RemoteProtocolError,),
            text=_CLOSED_TEXT,
        ),
        ExceptionRule(
            CONNECTION_RESET,
            False,
            lambda f: f"connection to {f.where} reset",
            lambda f: (
                "the connection was reset after the request was sent (server crash or restart, a load "
                f"balancer or firewall dropping it); {_NOT_RESENT}"
            ),
            types=(ConnectionResetError, BrokenPipeError, ConnectionAbortedError, httpx.ReadError),
            text=_RESET_TEXT,
        ),
        ExceptionRule(
            TIMEOUT,
            False,
            lambda f: f"request to {f.where} timed out",
            lambda f: f"no complete answer within the time limit; {_NOT_RESENT}; raise --timeout for slow operations",
            types=(TimeoutError, httpx.TimeoutException),
        ),
    )


def _proxy_dns_cause(failure: Failure) -> str:
    host = (urlsplit(failure.proxy.url).hostname if failure.proxy is not None else None) or "?"
    return f"could not connect to {failure.proxy_described()}: DNS lookup of {host} failed ({failure.short_text})"


def _proxy_dns_hint(failure: Failure) -> str:
    return (
        f"check the proxy's host name in {_proxy_variable(failure)}, or {failure.undo_proxy} if the host is "
        "reachable directly"
    )


def _proxy_variable(failure: Failure) -> str:
    return failure.proxy.variable if failure.proxy is not None else "the proxy settings"


def _dns_cause(failure: Failure) -> str:
    return f"DNS lookup of {failure.host} failed ({failure.short_text})"


def _dns_hint(failure: Failure) -> str:
    return (
        f"check the host name in the target URL (typo, wrong region or API id?); `nslookup {failure.host}` tests "
        "it; a private API Gateway or VPC endpoint resolves only inside its VPC/VPN; "
        + _corporate_proxy_advice(failure, "behind a corporate proxy set HTTPS_PROXY")
    )


_FALLBACK = ExceptionRule(
    NETWORK_ERROR,
    False,
    _network_error_cause,
    lambda f: f"check connectivity to {f.where} (`curl -v {f.context.url}`)",
)


def diagnose_exception(
    exc: BaseException, *, context: SigningContext, environ: Mapping[str, str] | None = None
) -> Diagnosis:
    """Diagnose a failure with no HTTP answer (httpx, socket, ssl and asyncio exceptions, CredentialsError).

    `environ` is where the request's client took its proxy settings from (HTTPS_PROXY, NO_PROXY, ...): None
    means os.environ, as httpx with trust_env (every door's client); pass ``{}`` for a client without
    environment proxies. A failure to connect through a proxy names the proxy, not the target."""
    failure = Failure.of(exc, context, environ)
    rule = next((row for row in exception_rules() if row.matches(failure)), _FALLBACK)
    return Diagnosis(
        status=None,
        error_type=None,
        aws_message=None,
        hint=rule.hint(failure),
        kind=rule.kind,
        retryable=rule.retryable,
        cause=rule.cause(failure),
    )
