"""`doctor`: the troubleshooting guide's "validate the configuration" and "check the basics", automated.

Each check yields one :class:`Check` — pass, fail (with the fix), warn, or skip (with the reason) — in the
order a connection is built: configuration, region/service inference, credentials, caller identity (STS),
the proxy in use (``HTTPS_PROXY``), DNS, TCP, the proxy's CONNECT tunnel, TLS, the target's clock, and one
signed probe (an MCP ``initialize``, or a PostgreSQL connection attempt for an Aurora DSQL host); then, when
their flags ask for them, the standalone event stream (``--sse``) and the warm-start cache (``--warm``).

The configuration comes from :mod:`sigv4_proxy.config` with every flag of the stdio proxy, so the flags,
rules and messages are exactly the proxy's, and the probe behaves as the proxy would: ``--transport`` (the
legacy HTTP+SSE transport, and ``auto``'s fallback to it, by the rules of :mod:`sigv4_proxy.mcp.transport`),
``--retries`` (the policy of :mod:`sigv4_proxy.retry`), ``--timeout``, ``--request-deadline`` and
``--max-message-bytes``. Failures are worded by :mod:`sigv4_proxy.diagnose` and the proxy's own messages,
like everywhere else. The pure checks take their inputs as arguments; the network ones are thin and bounded
by a timeout each (no check can hang the doctor).
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import contextlib
import ipaddress
import json
import random as _random
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import unquote, urlsplit

from sigv4_proxy import endpoints
from sigv4_proxy.clock import format_duration
from sigv4_proxy.errors import ConfigError, CredentialsError
from sigv4_proxy.signing.algorithm import algorithm_for
from sigv4_proxy.signing.amzdate import MAX_SKEW
from sigv4_proxy.terminal import printable

if TYPE_CHECKING:
    import httpx

    from sigv4_proxy.auth import SigV4Auth
    from sigv4_proxy.config import ProxyConfig
    from sigv4_proxy.credentials import CredentialSource
    from sigv4_proxy.diagnose import Diagnosis, ProxyInUse, SigningContext
    from sigv4_proxy.mcp.sse import Event
    from sigv4_proxy.mcp.warm import WarmCache, WarmEntry
    from sigv4_proxy.signing.model import Credentials

Status = Literal["pass", "fail", "warn", "skip"]
PASS: Final[Status] = "pass"
FAIL: Final[Status] = "fail"
WARN: Final[Status] = "warn"
SKIP: Final[Status] = "skip"
MARKS: dict[Status, str] = {PASS: "✓", FAIL: "✗", WARN: "!", SKIP: "-"}
SKEW_WARNING = timedelta(seconds=60)
DEFAULT_TIMEOUT = 5.0
PROBE_PROTOCOL_VERSION = "2025-06-18"
PROBE_ID = "sigv4-proxy-doctor"
MAX_ERROR_BODY = 64 * 1024  # of an error answer: enough for any AWS error document
MAX_HEAD_BYTES = 16 * 1024  # of a proxy's answer to CONNECT
STS_ENDPOINT_ENV = "AWS_ENDPOINT_URL_STS"  # the AWS SDKs' variable for STS's endpoint
# Top-level domains that never name a public host (RFC 6761, RFC 6762 appendix G, RFC 8375, ICANN's .internal).
PRIVATE_TLDS = frozenset(
    {
        "local",
        "localhost",
        "internal",
        "lan",
        "home",
        "corp",
        "intranet",
        "private",
        "test",
        "example",
        "invalid",
        "arpa",
    }
)

CREDENTIAL_SOURCES = {
    "env": "environment variables (AWS_ACCESS_KEY_ID)",
    "shared-credentials-file": "shared credentials file (~/.aws/credentials)",
    "config-file": "AWS config file (~/.aws/config)",
    "sso": "IAM Identity Center (SSO)",
    "assume-role": "assume-role profile",
    "assume-role-with-web-identity": "web identity (OIDC) role",
    "custom-process": "credential_process",
    "iam-role": "EC2 instance metadata (IMDS)",
    "container-role": "container credentials (ECS/EKS)",
    "static": "credentials passed in",
}


@dataclass(frozen=True)
class Check:
    name: str  # stable id: configuration, inference, credentials, identity, dns, tcp, tls, clock, probe
    title: str
    status: Status
    summary: str
    fix: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.name,
            "title": self.title,
            "status": self.status,
            "summary": self.summary,
            "fix": self.fix,
            "details": dict(self.details),
        }


@dataclass(frozen=True)
class DoctorReport:
    target: str | None
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(check.status != FAIL for check in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "target": self.target, "checks": [c.to_dict() for c in self.checks]}

    def render(self) -> str:
        """The human report, one line per check (and one per fix). Summaries quote the target's answers (an
        error body, a server name, a certificate's names): every control character in them is shown as an
        escape (``\\x1b``, ``\\n``), so a hostile server can neither drive the terminal nor forge a line."""
        width = max(len(c.title) for c in self.checks)
        lines = [f"sigv4-proxy doctor{f' — {printable(self.target)}' if self.target else ''}"]
        for check in self.checks:
            lines.append(f"{MARKS[check.status]} {printable(check.title).ljust(width)}  {printable(check.summary)}")
            if check.fix:
                lines.append(f"  {' ' * width}  fix: {printable(check.fix)}")
        failed = sum(c.status == FAIL for c in self.checks)
        lines.append("")
        lines.append("all checks passed" if not failed else f"{failed} check{'s' if failed > 1 else ''} failed")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------- pure checks


# Fixes for the published configuration messages that do not carry their own.
CONFIG_FIXES: tuple[tuple[str, str], ...] = (
    (
        "target URL must use http or https scheme",
        "use https://HOST/PATH (http:// only for loopback or with --allow-http)",
    ),
    ("region is required", "pass --region or set AWS_REGION to the endpoint's region"),
    (
        "service name is required",
        "pass --service-name: execute-api (API Gateway), lambda (function URLs), bedrock-agentcore (AgentCore), ...",
    ),
    ("signature version must be", "use --sig-version v4 (the default) or v4a"),
)


def check_configuration(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[list[Check], ProxyConfig | None]:
    """(one check per problem, or one passing check; the ProxyConfig or None): the proxy's own loader, so the
    lines are exactly the proxy's."""
    from sigv4_proxy.config import load_proxy_config

    try:
        config = load_proxy_config(args, environ, bridge=True)
    except ConfigError as exc:
        return [
            Check(
                "configuration",
                "configuration",
                FAIL,
                problem,
                next((fix for prefix, fix in CONFIG_FIXES if problem.startswith(prefix)), None),
            )
            for problem in _join_hints(exc.problems)
        ], None
    algorithm = algorithm_for(config.sig_version)
    region_set = f" (region set {','.join(config.region_set or ())})" if algorithm.uses_region_set else ""
    signing = config.sig_version + region_set
    summary = f"target {config.target_url}, {signing}"
    options = config.option_summary(changed_only=True)
    if options:
        summary += "; " + ", ".join(options)
    if config.warnings:
        return [
            Check(
                "configuration",
                "configuration",
                WARN,
                summary + "; " + "; ".join(config.warnings),
                details={"warnings": list(config.warnings)},
            )
        ], config
    return [Check("configuration", "configuration", PASS, summary)], config


def _join_hints(problems: list[str]) -> list[str]:
    """Indented hint lines belong to the problem above them."""
    joined: list[str] = []
    for problem in problems:
        if problem.startswith("  ") and joined:
            joined[-1] += " " + problem.strip()
        else:
            joined.append(problem)
    return joined


def check_inference(config: ProxyConfig) -> Check:
    """Region and service: where each came from, and whether the host agrees."""
    implied = endpoints.infer(config.target_url)
    sources = config.sources
    algorithm = algorithm_for(config.sig_version)
    region_text = ",".join(config.region_set or ("*",)) if algorithm.uses_region_set else config.region
    summary = (
        f"service {config.service} ({sources.get('service_name', 'default')}), "
        f"region {region_text} ({sources.get('region', 'default')})"
    )
    problems = []
    if implied.service and implied.service != config.service:
        problems.append(
            f"host {config.host} is an endpoint of service '{implied.service}', but the service name is "
            f"'{config.service}': use --service-name {implied.service}"
        )
    # SigV4a signs for a region set: the host's region need not be named.
    if implied.region and config.region and implied.region != config.region and not algorithm.uses_region_set:
        problems.append(
            f"host {config.host} is in {implied.region}, but the region is {config.region}: "
            f"use --region {implied.region}"
        )
    if problems:
        return Check("inference", "region/service", FAIL, summary, "; ".join(problems))
    if implied.service is None and implied.region is None:
        summary += f"; host {config.host} names neither (nothing to cross-check)"
    return Check("inference", "region/service", PASS, summary)


def check_credentials(provider: CredentialSource, now: datetime) -> tuple[Check, Credentials | None]:
    """(the check, the credentials or None)."""
    try:
        credentials = provider.get()
    except CredentialsError as exc:
        return Check("credentials", "credentials", FAIL, str(exc), _credentials_fix(str(exc), provider)), None
    method = provider.method
    source = CREDENTIAL_SOURCES.get(method or "", method or "an unknown source")
    kind = "temporary key with session token" if credentials.session_token else "long-term key"
    summary = f"{credentials.masked_access_key}: {kind} from {source}"
    details = {
        "access_key": credentials.masked_access_key,
        "method": method,
        "session_token": bool(credentials.session_token),
    }
    if credentials.expiry is None:
        return Check("credentials", "credentials", PASS, summary + ", no expiry", details=details), credentials
    left = credentials.expiry - now
    details["expires_at"] = credentials.expiry.isoformat()
    if left <= timedelta(0):
        return Check(
            "credentials",
            "credentials",
            FAIL,
            summary + f", expired {format_duration(left)} ago",
            _refresh_fix(method, provider),
            details,
        ), credentials
    note = f", expires in {format_duration(left)}"
    if left < timedelta(minutes=5):
        note += " (refreshed automatically before use)"
    return Check("credentials", "credentials", PASS, summary + note, details=details), credentials


def _refresh_fix(method: str | None, provider: CredentialSource) -> str:
    profile = provider.profile
    profile_arg = f" --profile {profile}" if profile else ""
    if method == "sso":
        return f"run `aws sso login{profile_arg}`"
    if method == "env":
        return "export fresh AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN (or use a profile)"
    return f"refresh the credentials (`aws sts get-caller-identity{profile_arg}` shows what the chain finds)"


def _credentials_fix(message: str, provider: CredentialSource) -> str | None:
    # The provider's message already carries the cause and its fix (the published start-up message).
    return (
        None
        if "(ensure AWS credentials" in message or "aws sso login" in message
        else _refresh_fix(provider.method, provider)
    )


def check_clock(date_header: str | None, sent_at: datetime, received_at: datetime) -> Check:
    """The target's `Date` against the local clock (taken halfway through the round trip)."""
    if not date_header:
        return Check("clock", "clock", SKIP, "the target sent no Date header to compare with")
    try:
        server = parsedate_to_datetime(date_header)
    except (TypeError, ValueError):
        return Check("clock", "clock", SKIP, f"the target's Date header is unreadable: {date_header!r}")
    if server.tzinfo is None:
        server = server.replace(tzinfo=timezone.utc)
    local = sent_at + (received_at - sent_at) / 2
    offset = server - local
    details = {"offset_seconds": round(offset.total_seconds(), 1), "date": date_header}
    # The Date header has one-second resolution: allow a second either way before calling it an offset.
    if abs(offset) <= timedelta(seconds=2):
        return Check("clock", "clock", PASS, f"in step with the target's clock (Date: {date_header})", details=details)
    direction = "behind" if offset > timedelta(0) else "ahead of"
    shown = format_duration(offset)
    summary = f"the local clock is {shown} {direction} the target's (Date: {date_header})"
    if abs(offset) > MAX_SKEW:
        return Check(
            "clock",
            "clock",
            FAIL,
            summary,
            "AWS rejects signatures more than 5 minutes off: sync the clock (Linux: `sudo timedatectl "
            "set-ntp true`; macOS: `sudo sntp -sS time.apple.com`); the proxy also corrects for a "
            "skew the server reports",
            details,
        )
    if abs(offset) > SKEW_WARNING:
        return Check("clock", "clock", WARN, summary + "; AWS allows 5 minutes", details=details)
    return Check("clock", "clock", PASS, summary, details=details)


# ------------------------------------------------------------------------------------------ the proxy in use


@dataclass(frozen=True)
class ProxyBypass:
    """A proxy variable covers the URL's scheme, but an entry of NO_PROXY exempts its host."""

    proxy: ProxyInUse
    variable: str  # NO_PROXY or no_proxy
    entry: str  # the entry that matched ("*" turns every proxy off)


def proxy_route(url: str, environ: Mapping[str, str]) -> ProxyInUse | ProxyBypass | None:
    """The proxy a request to `url` goes through (the proxy's own rules: :func:`sigv4_proxy.diagnose.proxy_for`,
    which are httpx's with ``trust_env``), or the NO_PROXY entry that bypasses the one its scheme would use, or
    None when no proxy variable applies."""
    from sigv4_proxy.diagnose import environment_proxies, proxy_for

    proxy = proxy_for(url, environ)
    if proxy is not None:
        return proxy
    exempted = proxy_for(url, environ, honour_no_proxy=False)
    if exempted is None:
        return None
    no_proxy, variable = environment_proxies(environ)["no"]
    entries = [entry.strip() for entry in no_proxy.split(",") if entry.strip()]
    # The entry that does it: the one that alone exempts the URL from this proxy.
    entry = next(
        (entry for entry in entries if proxy_for(url, {exempted.variable: exempted.url, variable: entry}) is None),
        no_proxy,
    )
    return ProxyBypass(exempted, variable, entry)


def check_proxy(url: str, route: ProxyInUse | ProxyBypass) -> Check:
    """Which way the target is reached: through the proxy (named), or directly because NO_PROXY says so."""
    host = endpoints.host_of(url)
    if isinstance(route, ProxyBypass):
        why = (
            f"{route.variable}=* turns every proxy off"
            if route.entry == "*"
            else f"{route.variable} entry '{route.entry}' matches {host}"
        )
        return Check(
            "proxy",
            "proxy",
            PASS,
            f"not used for {host}: {why} ({route.proxy.describe()} serves other hosts); connecting directly",
            details={**_proxy_details(route.proxy), "bypass": route.entry},
        )
    return Check(
        "proxy",
        "proxy",
        PASS,
        f"{route.describe()} for {host}: the checks below go through it",
        details=_proxy_details(route),
    )


def _proxy_details(proxy: ProxyInUse) -> dict[str, Any]:
    return {"proxy": proxy.display, "variable": proxy.variable}


# ------------------------------------------------------------------------------------------ network checks


@dataclass
class _Target:
    url: str
    scheme: str
    host: str
    port: int
    addresses: list[str] = field(default_factory=list)


def _target(url: str) -> _Target:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return _Target(url, scheme, parts.hostname or "", parts.port or (443 if scheme == "https" else 80))


def _bypass_advice(host: str, bypass: ProxyBypass | None, default: str) -> str:
    """Advice about the proxy for a direct connection that failed: never "set HTTPS_PROXY" when it is set."""
    if bypass is None:
        return default
    return (
        f"{bypass.proxy.variable} is set, but {bypass.variable} exempts {host}: remove it from "
        f"{bypass.variable} if only the proxy can reach it"
    )


def _proxy_fix(proxy: ProxyInUse, host: str, what: str) -> str:
    return f"{what}, or unset {proxy.variable} (or add {host} to NO_PROXY) if {host} is reachable without the proxy"


def check_dns(
    target: _Target,
    timeout: float,
    *,
    proxy: ProxyInUse | None = None,
    bypass: ProxyBypass | None = None,
    for_host: str = "",
) -> Check:
    """Resolve the target's host, or, with `proxy`, the proxy's (the proxy resolves the target `for_host`)."""

    def resolve() -> list[str]:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        return list(dict.fromkeys(str(info[4][0]) for info in infos))

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        target.addresses = pool.submit(resolve).result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        if proxy is not None:
            return Check(
                "dns",
                "DNS",
                FAIL,
                f"no answer for {target.host}, the host of {proxy.describe()}, within {timeout:g} s",
                _proxy_fix(proxy, for_host, "check the DNS server / VPN"),
                _proxy_details(proxy),
            )
        return Check(
            "dns",
            "DNS",
            FAIL,
            f"no answer for {target.host} within {timeout:g} s",
            "check the DNS server / VPN; try `nslookup " + target.host + "`",
        )
    except OSError as exc:
        if proxy is not None:
            return Check(
                "dns",
                "DNS",
                FAIL,
                f"cannot resolve {target.host}, the host of {proxy.describe()}: {exc.strerror or exc}",
                _proxy_fix(proxy, for_host, f"check the proxy's host name in {proxy.variable}"),
                _proxy_details(proxy),
            )
        advice = _bypass_advice(target.host, bypass, "behind a corporate proxy set HTTPS_PROXY")
        return Check(
            "dns",
            "DNS",
            FAIL,
            f"cannot resolve {target.host}: {exc.strerror or exc}",
            "check the target URL's host name for typos; `nslookup " + target.host + "`; " + advice,
        )
    finally:
        pool.shutdown(wait=False)
    shown = ", ".join(target.addresses[:4]) + (" …" if len(target.addresses) > 4 else "")
    if proxy is not None:
        return Check(
            "dns",
            "DNS",
            PASS,
            f"{target.host} → {shown}: {proxy.describe()}; it resolves {for_host} itself",
            details={"addresses": target.addresses, **_proxy_details(proxy)},
        )
    return Check("dns", "DNS", PASS, f"{target.host} → {shown}", details={"addresses": target.addresses})


def check_tcp(
    target: _Target,
    timeout: float,
    *,
    proxy: ProxyInUse | None = None,
    bypass: ProxyBypass | None = None,
    for_host: str = "",
) -> Check:
    """Connect to each resolved address in turn (as HTTP clients do); the first that answers is used later.
    With `proxy`, `target` is the proxy (reached on the way to `for_host`)."""
    candidates = target.addresses or [target.host]
    failures: list[tuple[str, OSError]] = []
    for address in candidates:
        started = time.perf_counter()
        try:
            with socket.create_connection((address, target.port), timeout=timeout):
                pass
        except OSError as exc:
            failures.append((address, exc))
            continue
        elapsed = (time.perf_counter() - started) * 1000
        target.addresses = [address, *(a for a in candidates if a != address)]
        if proxy is not None:
            return Check(
                "tcp",
                "TCP",
                PASS,
                f"connected to {proxy.describe()} at {endpoints.host_port(address, target.port)} in {elapsed:.0f} ms",
                details=_proxy_details(proxy),
            )
        return Check(
            "tcp", "TCP", PASS, f"connected to {endpoints.host_port(address, target.port)} in {elapsed:.0f} ms"
        )
    address, error = failures[0]
    if proxy is not None:
        return _proxy_tcp_failure(endpoints.host_port(address, target.port), error, timeout, proxy, for_host)
    shown = endpoints.host_port(address, target.port)
    if isinstance(error, ConnectionRefusedError):
        return Check(
            "tcp",
            "TCP",
            FAIL,
            f"connection to {shown} refused: nothing is listening",
            "check that the server is running and the target URL's port; on AWS check security groups and network ACLs",
        )
    if isinstance(error, TimeoutError):
        return Check(
            "tcp",
            "TCP",
            FAIL,
            f"no answer from {shown} within {timeout:g} s",
            "a firewall is dropping the traffic, or the host is down; check outbound rules and "
            + (
                "HTTPS_PROXY"
                if bypass is None
                else f"{bypass.variable} (it exempts {target.host} from "
                f"{bypass.proxy.variable}: remove it there if only the proxy can reach it)"
            ),
        )
    return Check(
        "tcp",
        "TCP",
        FAIL,
        f"cannot connect to {shown}: {error.strerror or error}",
        "check the network route to the host (VPN, proxy, firewall)",
    )


def _proxy_tcp_failure(shown: str, exc: OSError, timeout: float, proxy: ProxyInUse, for_host: str) -> Check:
    details = _proxy_details(proxy)
    if isinstance(exc, ConnectionRefusedError):
        summary = f"connection to {proxy.describe()} at {shown} refused: nothing is listening"
        what = f"check that the proxy is running and that {proxy.variable} names its host and port"
    elif isinstance(exc, TimeoutError):
        summary = f"no answer from {proxy.describe()} at {shown} within {timeout:g} s"
        what = f"check that the proxy is up and {proxy.variable} names it (a firewall may drop the traffic)"
    else:
        summary = f"cannot connect to {proxy.describe()} at {shown}: {exc.strerror or exc}"
        what = "check the network route to the proxy (VPN, firewall)"
    return Check("tcp", "TCP", FAIL, summary, _proxy_fix(proxy, for_host, what), details)


class _TunnelRefused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"HTTP {status} {reason}".rstrip())
        self.status = status
        self.reason = reason


def open_tunnel(
    proxy_target: _Target, proxy: ProxyInUse, target: _Target, context: ssl.SSLContext, timeout: float
) -> tuple[socket.socket, str]:
    """A socket tunnelled through the proxy to the target (``CONNECT host:port``, with the proxy URL's user and
    password as ``Proxy-Authorization: Basic``, as httpx sends them), and the proxy's status line. Raises
    _TunnelRefused for a status other than 2xx, OSError for a broken connection or an unreadable answer."""
    address = proxy_target.addresses[0] if proxy_target.addresses else proxy_target.host
    raw = socket.create_connection((address, proxy_target.port), timeout=timeout)
    try:
        sock: socket.socket = raw
        if proxy_target.scheme == "https":
            sock = context.wrap_socket(raw, server_hostname=proxy_target.host)
        authority = endpoints.host_port(target.host, target.port)
        request = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"
        parts = urlsplit(proxy.url)
        if parts.username is not None:
            secret = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            request += f"Proxy-Authorization: Basic {base64.b64encode(secret).decode()}\r\n"
        sock.sendall((request + "\r\n").encode("latin-1"))
        status, reason = _read_status(sock)
    except BaseException:
        raw.close()
        raise
    if not 200 <= status < 300:
        raw.close()
        raise _TunnelRefused(status, reason)
    return sock, f"HTTP {status} {reason}".rstrip()


def _read_status(sock: socket.socket) -> tuple[int, str]:
    """The status of a proxy's answer to CONNECT; reads its head only (the tunnel's bytes follow it)."""
    head = bytearray()
    while b"\r\n\r\n" not in head:
        if len(head) > MAX_HEAD_BYTES:
            raise OSError("the proxy's answer to CONNECT has no end of headers")
        byte = sock.recv(1)
        if not byte:
            raise OSError("the proxy closed the connection without answering CONNECT")
        head += byte
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    match = re.match(r"HTTP/\d(?:\.\d)? (\d{3}) ?(.*)", status_line)
    if match is None:
        raise OSError(f"the proxy's answer to CONNECT is not HTTP: {status_line[:80]!r}")
    return int(match.group(1)), match.group(2).strip()


def check_tunnel(
    proxy_target: _Target, proxy: ProxyInUse, target: _Target, context: ssl.SSLContext, timeout: float
) -> tuple[Check, socket.socket | None]:
    """(the check, the open tunnel for the TLS check or None)."""
    authority = endpoints.host_port(target.host, target.port)
    details = _proxy_details(proxy)
    try:
        sock, status = open_tunnel(proxy_target, proxy, target, context, timeout)
    except _TunnelRefused as refused:
        details["status"] = refused.status
        summary = f"CONNECT {authority} through {proxy.describe()}: {refused}"
        return Check("tunnel", "proxy tunnel", FAIL, summary, _tunnel_fix(refused.status, proxy, target), details), None
    except TimeoutError:
        return Check(
            "tunnel",
            "proxy tunnel",
            FAIL,
            f"CONNECT {authority}: {proxy.describe()} did not answer within {timeout:g} s",
            _proxy_fix(proxy, target.host, "check the proxy"),
            details,
        ), None
    except (OSError, ssl.SSLError) as exc:
        return Check(
            "tunnel",
            "proxy tunnel",
            FAIL,
            f"CONNECT {authority} through {proxy.describe()} failed: {exc}",
            _proxy_fix(proxy, target.host, f"is {proxy.variable} an HTTP proxy?"),
            details,
        ), None
    return Check(
        "tunnel", "proxy tunnel", PASS, f"CONNECT {authority} through {proxy.describe()}: {status}", details=details
    ), sock


def _tunnel_fix(status: int, proxy: ProxyInUse, target: _Target) -> str:
    if status == 407:
        return (
            f"the proxy wants a user name and password: put them in {proxy.variable} "
            "(http://USER:PASSWORD@host:port, special characters percent-encoded)"
        )
    if status == 403:
        return _proxy_fix(
            proxy,
            target.host,
            f"the proxy does not allow tunnels to {target.host}:{target.port}: "
            "ask its administrators to allow the host",
        )
    if status in (502, 503, 504):
        return (
            f"the proxy could not reach {target.host}:{target.port} (its DNS, its route, or the server is down): "
            "check the target URL, then the proxy's logs"
        )
    return _proxy_fix(proxy, target.host, "check the proxy's configuration and logs")


def ssl_context(environ: Mapping[str, str]) -> ssl.SSLContext:
    """The trust store httpx (and so the proxy) uses: SSL_CERT_FILE / SSL_CERT_DIR, else certifi."""
    if environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=environ["SSL_CERT_FILE"])
    if environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=environ["SSL_CERT_DIR"])
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def check_tls(
    target: _Target,
    context: ssl.SSLContext,
    timeout: float,
    *,
    tunnel: socket.socket | None = None,
    proxy: ProxyInUse | None = None,
) -> Check:
    """The handshake with SNI and certificate verification; over `tunnel` (through `proxy`) when given."""
    if target.scheme != "https":
        return _plain_http(target)
    address = target.addresses[0] if target.addresses else target.host
    where = f"{target.host}:{target.port}" + (f" through {proxy.describe()}" if proxy is not None else "")
    try:
        raw = tunnel if tunnel is not None else socket.create_connection((address, target.port), timeout=timeout)
        with raw, context.wrap_socket(raw, server_hostname=target.host) as tls:
            version, cert = tls.version(), tls.getpeercert() or {}
    except ssl.SSLCertVerificationError as exc:
        return _tls_verify_failure(target, exc)
    except ssl.SSLError as exc:
        return Check(
            "tls",
            "TLS",
            FAIL,
            f"TLS handshake with {where} failed: {exc.reason or exc}",
            "is this port speaking TLS? use http:// for a plain listener, or check for a TLS-inspecting proxy",
        )
    except OSError as exc:
        return Check(
            "tls", "TLS", FAIL, f"TLS connection to {where} failed: {exc}", "check the network route to the host"
        )
    subject = _name(cert.get("subject", ()))
    issuer = _name(cert.get("issuer", ()))
    expires = cert.get("notAfter", "?")
    summary = f"{version}, certificate {subject} (SNI {target.host}) issued by {issuer}, valid until {expires}"
    details: dict[str, Any] = {"version": version, "subject": subject, "issuer": issuer}
    if proxy is not None:
        summary += f", through {proxy.describe()}"
        details.update(_proxy_details(proxy))
    return Check("tls", "TLS", PASS, summary, details=details)


def _plain_http(target: _Target) -> Check:
    note = "loopback" if endpoints.is_loopback(target.host) else "--allow-http"
    return Check("tls", "TLS", SKIP, f"plain http ({note}): no TLS to check")


def _name(rdns: Any) -> str:
    for rdn in rdns:
        for key, value in rdn:
            if key == "commonName":
                return f"CN={value}"
    return "(no CN)"


def _tls_verify_failure(target: _Target, exc: ssl.SSLCertVerificationError) -> Check:
    reason = exc.verify_message or str(exc)
    summary = f"certificate of {target.host}:{target.port} not accepted: {reason}"
    if "hostname" in reason.lower() or "ip address mismatch" in reason.lower():
        fix = (
            f"the certificate does not name {target.host} (SNI {target.host}): use the host name the certificate "
            "was issued for"
        )
    elif "expired" in reason.lower():
        fix = "the server's certificate has expired (or this clock is far off): renew it on the server"
    else:
        fix = (
            "the certificate is signed by a CA this machine does not trust (a private CA, or a TLS-inspecting "
            "corporate proxy): point SSL_CERT_FILE at a CA bundle that includes it; inspect with `openssl "
            f"s_client -connect {target.host}:{target.port} -servername {target.host}`"
        )
    return Check("tls", "TLS", FAIL, summary, fix, {"verify_code": exc.verify_code})


# ------------------------------------------------------------------------------------- identity and probe


def default_sts_endpoint(region: str) -> str:
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://sts.{region}.{suffix}/"


def not_aws_reason(host: str) -> str | None:
    """Why `host` cannot be an AWS endpoint — loopback, a private or link-local address, a private name — or None
    when it may be one (an AWS host name, or a public custom domain, which may front API Gateway or CloudFront)."""
    if not host:
        return None
    if endpoints.is_loopback(host):
        return f"{host} is not an AWS endpoint"
    if endpoints.is_ip(host):
        address = ipaddress.ip_address(host)
        private = address.is_private or address.is_link_local or address.is_unspecified or address.is_reserved
        return f"{host} is not an AWS endpoint" if private else None
    if endpoints.infer(host) != endpoints.Endpoint(None, None):
        return None
    labels = host.rstrip(".").split(".")
    if len(labels) == 1 or labels[-1] in PRIVATE_TLDS:
        return f"{host} is not an AWS endpoint"
    return None


def check_identity(
    provider: CredentialSource,
    region: str,
    endpoint: str,
    verify: ssl.SSLContext | bool,
    timeout: float,
    *,
    proxy: ProxyInUse | None = None,
) -> Check:
    """STS GetCallerIdentity, signed like every request (through `proxy` when the environment names one for STS);
    unreachable STS is a skip, not a failure."""
    import httpx

    from sigv4_proxy.diagnose import diagnose_response
    from sigv4_proxy.upstream import Destination, signer, signing_context

    sts = Destination(endpoint, region, "sts")
    host = endpoints.host_of(endpoint)
    reachable = _reachable(proxy.url if proxy is not None else endpoint, timeout)
    if reachable is not None:
        where = f"STS at {host}" if proxy is None else f"{proxy.describe()} on the way to STS at {host}"
        return Check(
            "identity",
            "caller identity",
            SKIP,
            f"skipped: {where} is unreachable ({reachable}); the other checks do not need it",
            details={"endpoint": endpoint},
        )
    body = b"Action=GetCallerIdentity&Version=2011-06-15"
    headers = {"content-type": "application/x-www-form-urlencoded; charset=utf-8", "accept": "application/json"}
    try:
        with httpx.Client(
            timeout=timeout, verify=verify, trust_env=False, proxy=proxy.url if proxy is not None else None
        ) as client:
            response = client.post(endpoint, content=body, headers=headers, auth=signer(sts, provider))
    except httpx.HTTPError as exc:
        return Check(
            "identity",
            "caller identity",
            SKIP,
            f"skipped: STS at {host} did not answer ({exc})",
            details={"endpoint": endpoint},
        )
    if response.status_code >= 400:
        context = signing_context(sts)  # STS's answer is diagnosed by what it says, whatever the credentials
        diagnosis = diagnose_response(
            response.status_code, list(response.headers.multi_items()), response.content, context=context
        )
        return Check(
            "identity",
            "caller identity",
            FAIL,
            _head(diagnosis),
            diagnosis.hint,
            {"status": response.status_code, "error_type": diagnosis.error_type},
        )
    arn, account = _caller_identity(response)
    return Check(
        "identity", "caller identity", PASS, f"{arn} (account {account})", details={"arn": arn, "account": account}
    )


def _identity(
    provider: CredentialSource,
    credentials: Credentials | None,
    region: str,
    target_host: str,
    environ: Mapping[str, str],
    sts_endpoint: str | None,
    sts: bool,
    context: ssl.SSLContext | None,
    timeout: float,
) -> Check:
    """The caller-identity check, or why it is skipped: no credentials, or a target that is not AWS's (its
    credentials need not be AWS's: an emulator, a local test server) unless --sts or --sts-endpoint asks."""
    if credentials is None:
        return _skipped("identity", "caller identity", "no credentials")
    local = not_aws_reason(target_host)
    if local is not None and not sts and sts_endpoint is None:
        return _skipped(
            "identity",
            "caller identity",
            f"{local}, so its credentials need not be AWS's; pass --sts to check them with STS anyway",
        )
    endpoint = sts_endpoint or environ.get(STS_ENDPOINT_ENV) or default_sts_endpoint(region)
    route = proxy_route(endpoint, environ)
    return check_identity(
        provider,
        region,
        endpoint,
        context if context is not None else True,
        timeout,
        proxy=None if isinstance(route, ProxyBypass) else route,
    )


def _reachable(url: str, timeout: float) -> str | None:
    """None when a TCP connection opens within `timeout`, else why not (DNS included: it can hang too)."""
    target = _target(url)

    def connect() -> None:
        with socket.create_connection((target.host, target.port), timeout=timeout):
            pass

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        pool.submit(connect).result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        return f"no answer within {timeout:g} s"
    except OSError as exc:
        return exc.strerror or str(exc)
    finally:
        pool.shutdown(wait=False)
    return None


def _caller_identity(response: httpx.Response) -> tuple[str, str]:
    text = response.text
    if response.headers.get("content-type", "").startswith("application/json"):
        result = json.loads(text).get("GetCallerIdentityResponse", {}).get("GetCallerIdentityResult", {})
        return str(result.get("Arn", "?")), str(result.get("Account", "?"))
    arn = re.search(r"<Arn>([^<]*)</Arn>", text)
    account = re.search(r"<Account>([^<]*)</Account>", text)
    return (arn.group(1) if arn else "?"), (account.group(1) if account else "?")


def _head(diagnosis: Diagnosis) -> str:
    """The server's part of a diagnosis (status, type, message); the hint goes on the fix line."""
    message = diagnosis.message()
    return message.split(" Diagnosis: ", 1)[0] if diagnosis.hint else message


def _split_problem(problem: str) -> tuple[str, str | None]:
    """One of the proxy's "cause. Diagnosis: fix" texts as (summary, fix)."""
    cause, separator, fix = problem.partition(". Diagnosis: ")
    return (cause, fix) if separator else (problem, None)


@dataclass
class ProbeResult:
    check: Check
    date_header: str | None = None
    sent_at: datetime | None = None
    received_at: datetime | None = None
    extra: list[Check] = field(default_factory=list)  # the standalone event stream's check (--sse)


@dataclass
class _Budget:
    """The probe's time limits, as the proxy applies them to a request."""

    connect: float  # --check-timeout
    read: float  # --timeout when given (a stream that keeps delivering is never cut), else --check-timeout
    deadline: float | None  # --request-deadline: the whole request, retries included
    started: float = field(default_factory=time.monotonic)

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - (time.monotonic() - self.started)

    def expired(self) -> bool:
        remaining = self.remaining()
        return remaining is not None and remaining <= 0.01  # a read timeout set to the rest fires right at it

    def timeout(self) -> httpx.Timeout:
        import httpx

        remaining = self.remaining()
        limit = (lambda seconds: max(0.01, min(seconds, remaining))) if remaining is not None else (lambda s: s)
        return httpx.Timeout(
            limit(self.connect), read=limit(self.read), write=limit(self.connect), pool=limit(self.connect)
        )

    def problem(self) -> str:
        from sigv4_proxy.mcp.bridge import PROBLEM_DEADLINE

        return PROBLEM_DEADLINE.format(seconds=self.deadline)


@dataclass
class _Exchange:
    """One attempt at the probe's initialize, as far as it got."""

    transport: str  # "streamable-http" or "sse" (the legacy HTTP+SSE transport)
    status: int | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""  # the start of an error answer (status >= 400)
    error: Exception | None = None  # no HTTP answer, or it broke off
    problem: str | None = None  # an unusable answer, in the proxy's own words ("cause. Diagnosis: fix")
    answer: dict[str, Any] | None = None  # the JSON-RPC answer to the probe
    opened: bool = False  # legacy: the event stream is open and its endpoint known (auto's test for falling back)
    session_id: str | None = None
    date: str | None = None
    sent_at: datetime | None = None
    received_at: datetime | None = None

    def record_head(self, response: httpx.Response, received_at: datetime) -> None:
        self.received_at = received_at
        self.status = response.status_code
        self.headers = list(response.headers.multi_items())
        self.date = response.headers.get("date")
        self.session_id = response.headers.get("mcp-session-id")

    def record_error(self, exc: Exception, budget: _Budget) -> None:
        import httpx

        if isinstance(exc, httpx.TimeoutException) and budget.expired():
            self.problem = budget.problem()
        else:
            self.error = exc


@dataclass(frozen=True)
class _Probe:
    """What every step of the probe sends with: the client, the configuration, the signer, the body of the
    initialize, the time limits, the clock, and what the diagnosis of a failure knows."""

    client: httpx.Client
    config: ProxyConfig
    auth: SigV4Auth
    body: bytes
    budget: _Budget
    clock: Callable[[], datetime]
    context: SigningContext


def probe_mcp(
    config: ProxyConfig,
    provider: CredentialSource,
    verify: ssl.SSLContext | bool,
    timeout: float,
    clock: Callable[[], datetime],
    *,
    proxy: ProxyInUse | None = None,
    sleep: Callable[[float], None] = time.sleep,
    random: Callable[[], float] = _random.random,
) -> ProbeResult:
    """One signed MCP `initialize` (raw JSON-RPC: the proxy's own path never loads the mcp SDK), sent the way the
    proxy would send it: over ``--transport`` (``auto`` falls back to the legacy transport on 400/404/405, like
    the proxy), retried as ``--retries`` allows, bounded by ``--timeout``, ``--request-deadline`` and
    ``--max-message-bytes``, through `proxy` when the environment names one. With ``--sse``, the standalone
    event stream is tried in the session the probe opened."""
    import httpx

    from sigv4_proxy import __version__
    from sigv4_proxy.upstream import signer, signing_context

    message = {
        "jsonrpc": "2.0",
        "id": PROBE_ID,
        "method": "initialize",
        "params": {
            "protocolVersion": PROBE_PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "sigv4-proxy-doctor", "version": __version__},
        },
    }
    auth = signer(config, provider)
    context = signing_context(config, provider)  # what the proxy's diagnosis would know
    budget = _Budget(timeout, config.timeout or timeout, config.request_deadline)
    try:
        client = httpx.Client(
            timeout=timeout, verify=verify, trust_env=False, proxy=proxy.url if proxy is not None else None
        )
    except ImportError as exc:  # a socks5:// proxy without the socksio package
        assert proxy is not None
        return ProbeResult(
            Check(
                "probe",
                "signed probe",
                FAIL,
                f"cannot use {proxy.describe()}: {exc}",
                "install the SOCKS support (pip install 'httpx[socks]'), or use an HTTP proxy",
            )
        )
    with client:
        probe = _Probe(client, config, auth, json.dumps(message).encode(), budget, clock, context)
        exchange, check = _probe_with_retries(probe, timeout, sleep, random)
        extra = [_standalone_stream(probe, exchange)] if config.sse else []
        if exchange.transport == "streamable-http":
            _close_session(probe, exchange.session_id)
    return ProbeResult(check, exchange.date, exchange.sent_at, exchange.received_at, extra)


def _probe_with_retries(
    probe: _Probe,
    timeout: float,
    sleep: Callable[[float], None],
    random: Callable[[], float],
) -> tuple[_Exchange, Check]:
    """Attempt the probe until it gets an answer or the proxy's retry policy gives up; the last exchange and its
    check. The policy's other recoveries (a corrected clock, refreshed credentials) are not tried: the clock and
    credentials checks report what they would hide."""
    from sigv4_proxy import retry
    from sigv4_proxy.mcp.transport import FALLBACK_STATUSES

    config, budget = probe.config, probe.budget
    policy, state = retry.RetryPolicy(retries=config.retries), retry.RetryState()
    transport, fell_back_on = config.transport, None
    retried: list[str] = []
    while True:
        exchange, fallback = _attempt(probe, transport)
        if fallback is not None:
            transport, fell_back_on = "sse", fallback
        elif transport == "auto" and exchange.status is not None and exchange.status < 300:
            transport = "streamable-http"  # decided, as the proxy's AutoTransport decides on its first answer
        elif transport == "auto" and exchange.status in FALLBACK_STATUSES:
            transport = "streamable-http"  # the GET opened no legacy stream: the proxy stays with Streamable HTTP
        diagnosis = _diagnosis(exchange, probe.context)
        if diagnosis is None:
            return exchange, _answer_check(exchange, config, fell_back_on, retried, state.attempts)
        outcome = retry.Outcome.from_diagnosis(
            diagnosis,
            headers=exchange.headers,
            request_sent=True if exchange.status is not None else None,
            replay_safe=retry.mcp_replay_safe("initialize"),
        )
        decision = policy.decide(state, outcome, random=random, now=datetime.now(timezone.utc))
        if decision.action != retry.RETRY:
            reason = decision.reason if decision.action == retry.GIVE_UP else ""
            if reason.startswith("gave up after") and state.attempts == 1:
                reason = "--retries is 0"
            return exchange, _failure_check(exchange, diagnosis, reason)
        remaining = budget.remaining()
        if remaining is not None and decision.delay >= remaining:
            exchange.problem = budget.problem()
            return exchange, _problem_check(exchange.problem)
        if decision.delay > timeout:
            return exchange, _failure_check(
                exchange, diagnosis, f"{decision.reason}; the doctor waits at most {timeout:g} s (--check-timeout)"
            )
        retried.append(f"HTTP {diagnosis.status}" if diagnosis.status is not None else diagnosis.kind.replace("_", " "))
        sleep(decision.delay)


def _attempt(probe: _Probe, transport: str) -> tuple[_Exchange, int | None]:
    """One initialize over `transport`, and the status that made ``auto`` fall back (else None). The proxy's rule
    for ``auto``: an initialize POST answered 400, 404 or 405 is tried the legacy way, and the legacy exchange
    counts when a GET on the URL opened its event stream (else the POST's answer stands)."""
    from sigv4_proxy.mcp.transport import FALLBACK_STATUSES

    if transport == "sse":
        return _legacy_initialize(probe), None
    exchange = _post_initialize(probe)
    if transport != "auto" or exchange.error is not None or exchange.status not in FALLBACK_STATUSES:
        return exchange, None
    legacy = _legacy_initialize(probe)
    return (legacy, exchange.status) if legacy.opened else (exchange, None)


def _post_initialize(probe: _Probe) -> _Exchange:
    """Streamable HTTP: POST the initialize, read a JSON answer or events until the one that answers it."""
    import httpx

    config, budget = probe.config, probe.budget
    exchange = _Exchange("streamable-http")
    headers = [*config.headers, ("content-type", "application/json"), ("accept", "application/json, text/event-stream")]
    exchange.sent_at = probe.clock()
    try:
        with probe.client.stream(
            "POST", config.target_url, headers=headers, content=probe.body, auth=probe.auth, timeout=budget.timeout()
        ) as response:
            exchange.record_head(response, probe.clock())
            if response.status_code >= 400:
                exchange.body = _read_some(response, MAX_ERROR_BODY)
            elif _media_type(response) == "text/event-stream":
                exchange.answer = next(
                    filter(None, map(_probe_answer, _events(response, config, budget, exchange))), None
                )
            else:
                _read_json_answer(response, config.max_message_bytes, budget, exchange)
    except httpx.HTTPError as exc:
        exchange.record_error(exc, budget)
    return exchange


def _legacy_initialize(probe: _Probe) -> _Exchange:
    """The 2024-11-05 HTTP+SSE transport: GET the event stream, wait for its ``endpoint`` event, POST the initialize
    there, and read the answer on the stream. Problems are worded as the proxy's legacy transport words them."""
    import httpx

    from sigv4_proxy.mcp import legacy
    from sigv4_proxy.mcp.transport import PROBLEM_REDIRECT

    config, budget = probe.config, probe.budget
    exchange = _Exchange("sse")
    url = config.target_url
    waiting_for_endpoint = True
    exchange.sent_at = probe.clock()
    try:
        with probe.client.stream(
            "GET",
            url,
            headers=[*config.headers, ("accept", "text/event-stream")],
            auth=probe.auth,
            timeout=budget.timeout(),
        ) as response:
            exchange.record_head(response, probe.clock())
            if response.status_code >= 400:
                exchange.body = _read_some(response, MAX_ERROR_BODY)
                return exchange
            if response.status_code >= 300:
                exchange.problem = PROBLEM_REDIRECT.format(
                    status=response.status_code, location=response.headers.get("location", "?")
                )
                return exchange
            if _media_type(response) != "text/event-stream":
                exchange.problem = legacy.PROBLEM_NO_STREAM.format(
                    status=response.status_code, content_type=_media_type(response) or "none"
                )
                return exchange
            events = _events(response, config, budget, exchange)
            endpoint = next(
                (
                    legacy.endpoint_url(url, event.data)
                    for event in events
                    if event.event == "endpoint" and event.has_data
                ),
                None,
            )
            if exchange.problem is not None:
                return exchange
            if endpoint is None:
                exchange.problem = legacy.PROBLEM_NO_ENDPOINT.format(seconds=budget.read)
                return exchange
            exchange.problem = legacy.foreign_endpoint_problem(url, endpoint)
            if exchange.problem is not None:
                return exchange
            exchange.opened, waiting_for_endpoint = True, False
            if not _acknowledged(probe, endpoint, exchange):
                return exchange
            exchange.answer = next(filter(None, map(_probe_answer, events)), None)
            if exchange.answer is None and exchange.problem is None:
                exchange.problem = legacy.PROBLEM_LEGACY_STREAM_ENDED
    except httpx.HTTPError as exc:
        if waiting_for_endpoint and isinstance(exc, httpx.ReadTimeout) and not budget.expired():
            exchange.problem = legacy.PROBLEM_NO_ENDPOINT.format(seconds=budget.read)
        else:
            exchange.record_error(exc, budget)
    return exchange


def _acknowledged(probe: _Probe, endpoint: str, exchange: _Exchange) -> bool:
    """POST the initialize to the legacy endpoint; False (with the refusal in `exchange`) unless it was accepted."""
    from sigv4_proxy.mcp.transport import PROBLEM_REDIRECT

    with probe.client.stream(
        "POST",
        endpoint,
        headers=[*probe.config.headers, ("content-type", "application/json")],
        content=probe.body,
        auth=probe.auth,
        timeout=probe.budget.timeout(),
    ) as ack:
        error_body = _read_some(ack, MAX_ERROR_BODY)  # a short body is read to its end; a long one does not matter
        if ack.status_code >= 400:
            exchange.status, exchange.body = ack.status_code, error_body
            exchange.headers = list(ack.headers.multi_items())
            return False
        if ack.status_code >= 300:
            location = ack.headers.get("location", "?")
            exchange.problem = PROBLEM_REDIRECT.format(status=ack.status_code, location=location)
            return False
    return True


def _events(response: httpx.Response, config: ProxyConfig, budget: _Budget, exchange: _Exchange) -> Iterator[Event]:
    """The events of an event stream as they arrive; ends early, with the proxy's problem in `exchange`, at an
    event larger than --max-message-bytes or at the request deadline."""
    from sigv4_proxy.mcp.sse import SSEParser
    from sigv4_proxy.mcp.transport import PROBLEM_TOO_LARGE

    parser = SSEParser(config.max_message_bytes)
    for chunk in response.iter_bytes():
        yield from parser.feed(chunk)
        if parser.too_large:
            exchange.problem = PROBLEM_TOO_LARGE.format(limit=config.max_message_bytes)
            return
        if budget.expired():
            exchange.problem = budget.problem()
            return
    yield from parser.close()


def _read_json_answer(response: httpx.Response, limit: int, budget: _Budget, exchange: _Exchange) -> None:
    from sigv4_proxy.mcp.transport import PROBLEM_TOO_LARGE

    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > limit:
            exchange.problem = PROBLEM_TOO_LARGE.format(limit=limit)
            return
        if budget.expired():
            exchange.problem = budget.problem()
            return
    exchange.answer = _answer_to_probe(bytes(body))


def _probe_answer(event: Event) -> dict[str, Any] | None:
    """The JSON-RPC answer to the probe an event carries, or None (another message, a keep-alive, not JSON)."""
    return _answer_to_probe(bytes(event.data)) if event.has_data else None


def _answer_to_probe(data: bytes) -> dict[str, Any] | None:
    """The JSON-RPC message in `data` when it answers the probe (its id), else None."""
    try:
        message = json.loads(data.decode("utf-8", "replace"))
    except ValueError:
        return None
    return message if isinstance(message, dict) and message.get("id") == PROBE_ID else None


def _read_some(response: httpx.Response, limit: int) -> bytes:
    data = bytearray()
    for chunk in response.iter_bytes():
        data += chunk[: limit - len(data)]
        if len(data) >= limit:
            break
    return bytes(data)


def _media_type(response: httpx.Response) -> str:
    return str(response.headers.get("content-type", "")).split(";", 1)[0].strip().lower()


def _diagnosis(exchange: _Exchange, context: SigningContext) -> Diagnosis | None:
    """The diagnosis of a failed exchange (no answer, or an HTTP error), or None when there is something else to
    report: an answer, or a problem the proxy words itself (those are never retried)."""
    from sigv4_proxy.diagnose import diagnose_exception, diagnose_response

    if exchange.problem is not None:
        return None
    if exchange.error is not None:
        return diagnose_exception(exchange.error, context=context)
    if exchange.status is not None and exchange.status >= 400:
        return diagnose_response(exchange.status, exchange.headers, exchange.body, context=context)
    return None


def _failure_check(exchange: _Exchange, diagnosis: Diagnosis, reason: str) -> Check:
    """The failed probe's line: the server's answer (or the network's), and the retry policy's last word."""
    head = _head(diagnosis)
    if reason:
        head = f"{head.rstrip('.')} ({reason})"
    if exchange.status is None:
        return Check("probe", "signed probe", FAIL, head, diagnosis.hint)
    return Check(
        "probe",
        "signed probe",
        FAIL,
        "initialize: " + head,
        diagnosis.hint,
        {"status": exchange.status, "error_type": diagnosis.error_type, "kind": diagnosis.kind},
    )


def _problem_check(problem: str) -> Check:
    summary, fix = _split_problem(problem)
    return Check("probe", "signed probe", FAIL, summary, fix)


def _answer_check(
    exchange: _Exchange, config: ProxyConfig, fell_back_on: int | None, retried: list[str], attempts: int
) -> Check:
    if exchange.problem is not None:
        return _problem_check(exchange.problem)
    elapsed = (exchange.received_at - exchange.sent_at) if exchange.received_at and exchange.sent_at else timedelta()
    check = _initialize_check(exchange.status or 0, exchange.answer, elapsed)
    if check.status != PASS:
        return check
    notes = ""
    details = dict(check.details)
    if exchange.transport == "sse":
        notes += " over the legacy HTTP+SSE transport " + (
            f"(the initialize POST got HTTP {fell_back_on}: --transport auto falls back to it, as the proxy does)"
            if fell_back_on is not None
            else "(--transport sse)"
        )
        details["transport"] = "sse"
    if retried:
        notes += (
            f", on attempt {attempts} (--retries {config.retries}: retried after {', '.join(retried)}, as the "
            "proxy would)"
        )
        details["attempts"] = attempts
    return Check(check.name, check.title, check.status, check.summary + notes, check.fix, details)


def _standalone_stream(probe: _Probe, exchange: _Exchange) -> Check:
    """--sse: open the standalone GET event stream in the probe's session, as the proxy would, and close it."""
    import httpx

    from sigv4_proxy.diagnose import diagnose_exception, diagnose_response
    from sigv4_proxy.mcp.routing import MCP_PROTOCOL_VERSION, MCP_SESSION_ID

    config, context = probe.config, probe.context
    title = "event stream"
    if exchange.answer is None or "result" not in exchange.answer:
        return _skipped("stream", title, "no MCP session to open it in (the probe did not get through)")
    if exchange.transport == "sse":
        return _skipped(
            "stream",
            title,
            "the legacy HTTP+SSE transport has no standalone stream: server messages arrive on its one stream",
        )
    if not exchange.session_id:
        return _skipped(
            "stream",
            title,
            "the server gave no session id (a stateless server), so the proxy opens no standalone stream",
        )
    headers = [*config.headers, ("accept", "text/event-stream"), (MCP_SESSION_ID, exchange.session_id)]
    result = exchange.answer.get("result")
    version = result.get("protocolVersion") if isinstance(result, dict) else None
    if isinstance(version, str):
        headers.append((MCP_PROTOCOL_VERSION, version))
    try:
        with probe.client.stream(
            "GET", config.target_url, headers=headers, auth=probe.auth, timeout=probe.budget.timeout()
        ) as response:
            status, media_type = response.status_code, _media_type(response)
            error_body = _read_some(response, MAX_ERROR_BODY) if status >= 400 else b""
            headers_in = list(response.headers.multi_items())
    except httpx.HTTPError as exc:
        diagnosis = diagnose_exception(exc, context=context)
        return Check("stream", title, FAIL, "GET: " + _head(diagnosis), diagnosis.hint)
    if status == 405:
        return Check(
            "stream",
            title,
            PASS,
            "the server offers no standalone event stream (HTTP 405): the proxy does without it, as MCP allows",
            details={"status": status},
        )
    if status >= 400:
        diagnosis = diagnose_response(status, headers_in, error_body, context=context)
        return Check(
            "stream",
            title,
            FAIL,
            "GET: " + _head(diagnosis),
            diagnosis.hint,
            {"status": status, "error_type": diagnosis.error_type},
        )
    if media_type != "text/event-stream":
        shown = media_type or "no content type"
        return Check(
            "stream",
            title,
            FAIL,
            f"the server answered the GET with HTTP {status} ({shown}) instead of an event stream",
            "is the target URL the MCP endpoint itself?",
            {"status": status},
        )
    return Check(
        "stream",
        title,
        PASS,
        f"the server opened the standalone event stream (HTTP {status}): its own "
        "messages (list changes, requests) reach the client",
        details={"status": status},
    )


def _close_session(probe: _Probe, session_id: str | None) -> None:
    """Be a good client: end the session the probe opened (best effort)."""
    if not session_id:
        return
    # The probe's verdict is already known; a failed goodbye changes nothing.
    with contextlib.suppress(Exception):
        probe.client.delete(probe.config.target_url, headers={"mcp-session-id": session_id}, auth=probe.auth)


def _initialize_check(status: int, answer: dict[str, Any] | None, elapsed: timedelta) -> Check:
    took = f"{elapsed.total_seconds() * 1000:.0f} ms"
    if answer is None:
        return Check(
            "probe",
            "signed probe",
            FAIL,
            f"HTTP {status} but no JSON-RPC answer to initialize in the response",
            "is the target URL the MCP endpoint itself (often ending in /mcp)?",
        )
    if "error" in answer:
        error = answer["error"] if isinstance(answer["error"], dict) else {}
        return Check(
            "probe",
            "signed probe",
            FAIL,
            f"initialize rejected: JSON-RPC error {error.get('code')}: {error.get('message')}",
            "the signature was accepted; the MCP server refused the request itself",
        )
    result = answer.get("result") or {}
    info = result.get("serverInfo") or {}
    summary = (
        f"initialize answered by {info.get('name', '?')} {info.get('version', '')}".rstrip()
        + f" (protocol {result.get('protocolVersion', '?')}) in {took}"
    )
    return Check("probe", "signed probe", PASS, summary, details={"server": info})


def probe_dsql(config: ProxyConfig, credentials: Credentials, db_user: str, timeout: float) -> ProbeResult:
    """A PostgreSQL connection with a fresh token, when psycopg is installed (it is optional)."""
    try:
        import psycopg
    except ImportError:
        return ProbeResult(
            Check(
                "probe",
                "signed probe",
                SKIP,
                "skipped: install psycopg (pip install 'psycopg[binary]') to try a PostgreSQL connection with a token",
            )
        )
    from sigv4_proxy.tokens import dsql_token

    host = endpoints.host_of(config.target_url)
    token = dsql_token(host, config.region, admin=db_user == "admin", credentials=credentials)
    try:
        with psycopg.connect(
            host=host,
            port=5432,
            user=db_user,
            password=token,
            dbname="postgres",
            sslmode="require",
            connect_timeout=max(1, int(timeout)),
        ) as connection:
            version = connection.execute("select version()").fetchone()
    except Exception as exc:  # psycopg's errors carry the server's message; the token is never in them
        return ProbeResult(
            Check(
                "probe",
                "signed probe",
                FAIL,
                f"PostgreSQL connection as {db_user} failed: {exc}",
                f'run `sigv4-proxy inspect "$(sigv4-proxy dsql-token --hostname {host}'
                f'{" --admin" if db_user == "admin" else ""})" --user {db_user} --verify`',
            )
        )
    return ProbeResult(Check("probe", "signed probe", PASS, f"connected as {db_user}: {version[0] if version else ''}"))


# ---------------------------------------------------------------------------------------------- the run


def _skipped(name: str, title: str, why: str) -> Check:
    return Check(name, title, SKIP, f"skipped: {why}")


def _credential_source(
    args: argparse.Namespace, config: ProxyConfig | None, environ: Mapping[str, str]
) -> CredentialSource:
    """The source the proxy itself would sign with (environment keys over ``AWS_PROFILE``, ``--profile`` over
    both): doctor checks that one, not a profile the proxy would not use. An invalid configuration falls back to
    the chain for the profile named."""
    if config is not None:
        from sigv4_proxy.upstream import credential_provider

        return credential_provider(config, environ)
    from sigv4_proxy.credentials import CredentialProvider

    return CredentialProvider(getattr(args, "profile", None) or environ.get("AWS_PROFILE") or None)


def run_doctor(
    args: argparse.Namespace,
    environ: Mapping[str, str],
    *,
    provider: CredentialSource | None = None,
    sts_endpoint: str | None = None,
    sts: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    clock: Callable[[], datetime] | None = None,
    db_user: str = "admin",
) -> DoctorReport:
    """Run every check. `args` holds the proxy's flags (see :func:`sigv4_proxy.config.add_proxy_arguments`, with
    ``bridge=True``: the stdio proxy's complete set).

    `provider` defaults to the credential chain for the configured profile; `sts_endpoint` to
    ``AWS_ENDPOINT_URL_STS``, else STS in the configured region. The caller-identity check is skipped for a target
    that cannot be AWS's (loopback, a private address or name) unless `sts` or `sts_endpoint` is given. `clock`
    (for tests) defaults to the system clock. Proxies come from `environ` (``HTTPS_PROXY``, ``NO_PROXY``, ...).
    """
    now = clock or (lambda: datetime.now(timezone.utc))
    checks: list[Check] = []
    config_checks, config = check_configuration(args, environ)
    checks.extend(config_checks)
    if config is None:
        checks.append(_skipped("inference", "region/service", "the configuration is invalid"))
    else:
        checks.append(check_inference(config))
    if provider is None:
        provider = _credential_source(args, config, environ)
    credentials_check, credentials = check_credentials(provider, now())
    checks.append(credentials_check)
    context = _safe_ssl_context(environ, checks)
    region = (config.region if config is not None else None) or environ.get("AWS_REGION") or "us-east-1"
    target_url = (
        config.target_url
        if config is not None
        else (getattr(args, "target_url", None) or environ.get("MCP_TARGET_URL"))
    )
    target_host = endpoints.host_of(target_url) if target_url else ""
    checks.append(_identity(provider, credentials, region, target_host, environ, sts_endpoint, sts, context, timeout))
    if config is None:
        for name, title in (
            ("dns", "DNS"),
            ("tcp", "TCP"),
            ("tls", "TLS"),
            ("clock", "clock"),
            ("probe", "signed probe"),
        ):
            checks.append(_skipped(name, title, "fix the configuration first"))
        return DoctorReport(target_url, tuple(checks))
    checks.extend(_network_checks(config, provider, credentials, context, timeout, now, db_user, environ))
    if config.sse and not any(check.name == "stream" for check in checks):
        checks.append(_skipped("stream", "event stream", "no MCP session to open it in (the probe did not run)"))
    if config.warm:
        checks.append(check_warm(config, environ, now()))
    return DoctorReport(config.target_url, tuple(checks))


def _safe_ssl_context(environ: Mapping[str, str], checks: list[Check]) -> ssl.SSLContext | None:
    try:
        return ssl_context(environ)
    except (OSError, ssl.SSLError) as exc:
        checks.append(
            Check(
                "tls",
                "TLS trust store",
                FAIL,
                f"cannot load the CA bundle: {exc}",
                "point SSL_CERT_FILE at a readable PEM bundle (or unset it)",
            )
        )
        return None


class _Steps:
    """The network checks in order, so that after a failure each later one is skipped with the reason."""

    def __init__(self, proxied: bool) -> None:
        self.order = [
            ("dns", "DNS"),
            ("tcp", "TCP"),
            *([("tunnel", "proxy tunnel")] if proxied else []),
            ("tls", "TLS"),
            ("clock", "clock"),
            ("probe", "signed probe"),
        ]

    def skipped_after(self, name: str, why: str) -> list[Check]:
        names = [step for step, _ in self.order]
        return [_skipped(step, title, why) for step, title in self.order[names.index(name) + 1 :]]


def _network_checks(
    config: ProxyConfig,
    provider: CredentialSource,
    credentials: Credentials | None,
    context: ssl.SSLContext | None,
    timeout: float,
    now: Callable[[], datetime],
    db_user: str,
    environ: Mapping[str, str],
) -> list[Check]:
    target = _target(config.target_url)
    # PostgreSQL connections (Aurora DSQL) do not go through HTTP proxies.
    route = None if config.service == "dsql" else proxy_route(config.target_url, environ)
    bypass = route if isinstance(route, ProxyBypass) else None
    proxy = None if isinstance(route, ProxyBypass) else route
    steps = _Steps(proxied=proxy is not None)
    checks = [check_proxy(config.target_url, route)] if route is not None else []
    if proxy is None:
        checks.append(check_dns(target, timeout, bypass=bypass))
        if checks[-1].status == FAIL:
            return [*checks, *steps.skipped_after("dns", "DNS failed")]
        checks.append(check_tcp(target, timeout, bypass=bypass))
        if checks[-1].status == FAIL:
            return [*checks, *steps.skipped_after("tcp", "no TCP connection")]
        checks.append(
            _skipped("tls", "TLS", "no usable CA bundle") if context is None else check_tls(target, context, timeout)
        )
    else:
        proxy_target = _target(proxy.url)
        checks.append(check_dns(proxy_target, timeout, proxy=proxy, for_host=target.host))
        if checks[-1].status == FAIL:
            return [*checks, *steps.skipped_after("dns", "the proxy's host does not resolve")]
        checks.append(check_tcp(proxy_target, timeout, proxy=proxy, for_host=target.host))
        if checks[-1].status == FAIL:
            return [*checks, *steps.skipped_after("tcp", "no connection to the proxy")]
        tunnel, tls = _through_proxy(proxy_target, proxy, target, context, timeout)
        checks.append(tunnel)
        if tls is None:
            return [*checks, *steps.skipped_after("tunnel", "no tunnel through the proxy")]
        checks.append(tls)
    if checks[-1].status == FAIL:
        return [*checks, *steps.skipped_after("tls", "no TLS connection")]
    if credentials is None:
        return [
            *checks,
            _skipped("clock", "clock", "no credentials to sign the probe"),
            _skipped("probe", "signed probe", "no credentials"),
        ]
    if config.service == "dsql":
        probe = probe_dsql(config, credentials, db_user, timeout)
        return [*checks, _skipped("clock", "clock", "PostgreSQL has no Date header"), probe.check]
    # Without a usable CA bundle (already reported) httpx's default trust store is what the probe can use.
    verify = (context or True) if target.scheme == "https" else True
    probe = probe_mcp(config, provider, verify, timeout, now, proxy=proxy)
    if probe.sent_at is None or probe.received_at is None:
        clock_check = _skipped("clock", "clock", "no answer from the target")
    else:
        clock_check = check_clock(probe.date_header, probe.sent_at, probe.received_at)
    return [*checks, clock_check, probe.check, *probe.extra]


def _through_proxy(
    proxy_target: _Target, proxy: ProxyInUse, target: _Target, context: ssl.SSLContext | None, timeout: float
) -> tuple[Check, Check | None]:
    """(the tunnel check, the TLS check through the tunnel, or None when there is no tunnel)."""
    if target.scheme != "https":
        return (
            _skipped(
                "tunnel", "proxy tunnel", f"plain http: {proxy.describe()} forwards each request (no CONNECT tunnel)"
            ),
            _plain_http(target),
        )
    if proxy_target.scheme not in ("http", "https"):
        return (
            _skipped(
                "tunnel",
                "proxy tunnel",
                f"{proxy.describe()} is not an HTTP proxy: the doctor's own "
                "checks speak HTTP CONNECT only; the signed probe goes through it",
            ),
            _skipped("tls", "TLS", "the signed probe checks it through the proxy"),
        )
    check, tunnel = check_tunnel(proxy_target, proxy, target, context or ssl.create_default_context(), timeout)
    if tunnel is None:
        return check, None
    if proxy_target.scheme == "https" or context is None:
        tunnel.close()
        why = (
            "TLS inside the TLS connection to an https:// proxy: the signed probe checks it"
            if context is not None
            else "no usable CA bundle"
        )
        return check, _skipped("tls", "TLS", why)
    return check, check_tls(target, context, timeout, tunnel=tunnel, proxy=proxy)


# --------------------------------------------------------------------------------------------- warm start


def check_warm(config: ProxyConfig, environ: Mapping[str, str], now: datetime) -> Check:
    """--warm: whether the proxy has an initialize answer cached for this target (it answers from it at once)."""
    from sigv4_proxy.mcp.warm import WarmCache, parse_saved, user_cache_dir

    cache = WarmCache(user_cache_dir(environ), config.target_url)
    entries = list(_warm_entries(cache))
    if not entries:
        return Check(
            "warm",
            "warm start",
            WARN,
            f"no initialize answer cached for this target yet (in {cache.directory}): the proxy's next start "
            "waits for the server's answer, then caches it",
            details={"directory": str(cache.directory)},
        )
    version, entry = max(entries, key=lambda item: item[1].saved)
    result = json.loads(entry.result)
    info = result.get("serverInfo") if isinstance(result.get("serverInfo"), dict) else {}
    server = f"{info.get('name', '?')} {info.get('version', '')}".rstrip()
    saved = parse_saved(entry.saved)
    age = f"{format_duration(now - saved)} ago" if saved is not None else "at an unknown time"
    return Check(
        "warm",
        "warm start",
        PASS,
        f"the answer of {server} (protocol {version or 'not named'}) is cached since {entry.saved} ({age}): "
        "the proxy answers initialize from it at once",
        details={"directory": str(cache.directory), "saved": entry.saved, "protocol_version": version},
    )


def _warm_entries(cache: WarmCache) -> Iterator[tuple[str | None, WarmEntry]]:
    """(requested protocol version, entry) of every answer cached for the cache's target. The file names hash the
    target URL with the version, so a file is this target's when its own version leads back to its name."""
    from sigv4_proxy.mcp.warm import MAX_ENTRY_BYTES

    try:
        files = sorted(cache.directory.glob("*.json"))
    except OSError:
        return
    for path in files:
        try:
            with path.open("rb") as file:
                data = json.loads(file.read(MAX_ENTRY_BYTES + 1))
        except (OSError, ValueError):
            continue
        version = data.get("protocolVersion") if isinstance(data, dict) else 0
        if (version is None or isinstance(version, str)) and cache.path(version) == path:
            entry = cache.load(version)
            if entry is not None:
                yield version, entry
