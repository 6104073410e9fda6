"""`doctor`: the troubleshooting guide's "validate the configuration" and "check the basics", automated.

Each check yields one :class:`Check` — pass, fail (with the fix), warn, or skip (with the reason) — in the
order a connection is built: configuration, region/service inference, credentials, caller identity (STS),
DNS, TCP, TLS, the target's clock, and one signed probe (an MCP ``initialize``, or a PostgreSQL connection
attempt for an Aurora DSQL host). The configuration comes from :mod:`sigv4_proxy.config`, so the flags,
rules and messages are exactly the proxy's; failures are worded by :mod:`sigv4_proxy.diagnose`, like
everywhere else. The pure checks take their inputs as arguments; the network ones are thin and bounded by
a timeout each (no check can hang the doctor).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from sigv4_proxy import endpoints
from sigv4_proxy.errors import ConfigError, CredentialsError
from sigv4_proxy.terminal import printable

PASS, FAIL, WARN, SKIP = "pass", "fail", "warn", "skip"
MARKS = {PASS: "✓", FAIL: "✗", WARN: "!", SKIP: "-"}
MAX_SKEW = timedelta(minutes=5)  # AWS rejects signatures dated further than this from its clock
SKEW_WARNING = timedelta(seconds=60)
DEFAULT_TIMEOUT = 5.0
PROBE_PROTOCOL_VERSION = "2025-06-18"
MAX_PROBE_BYTES = 1024 * 1024

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
    status: str
    summary: str
    fix: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.name, "title": self.title, "status": self.status, "summary": self.summary,
                "fix": self.fix, "details": dict(self.details)}


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
    ("target URL must use http or https scheme", "use https://HOST/PATH (http:// only for loopback or with "
     "--allow-http)"),
    ("region is required", "pass --region or set AWS_REGION to the endpoint's region"),
    ("service name is required", "pass --service-name: execute-api (API Gateway), lambda (function URLs), "
     "bedrock-agentcore (AgentCore), ..."),
    ("signature version must be", "use --sig-version v4 (the default) or v4a"),
)


def check_configuration(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[list[Check], Any]:
    """(one check per problem, or one passing check; the ProxyConfig or None): the proxy's own loader, so the
    lines are exactly the proxy's."""
    from sigv4_proxy.config import load_proxy_config

    try:
        config = load_proxy_config(args, environ)
    except ConfigError as exc:
        return [
            Check("configuration", "configuration", FAIL, problem,
                  next((fix for prefix, fix in CONFIG_FIXES if problem.startswith(prefix)), None))
            for problem in _join_hints(exc.problems)
        ], None
    signing = config.sig_version + (f" (region set {','.join(config.region_set or ())})"
                                    if config.sig_version == "v4a" else "")
    summary = f"target {config.target_url}, {signing}"
    if config.warnings:
        return [Check("configuration", "configuration", WARN, summary + "; " + "; ".join(config.warnings),
                      details={"warnings": list(config.warnings)})], config
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


def check_inference(config: Any) -> Check:
    """Region and service: where each came from, and whether the host agrees."""
    implied = endpoints.infer(config.target_url)
    sources = config.sources
    region_text = config.region if config.sig_version != "v4a" else ",".join(config.region_set or ("*",))
    summary = (f"service {config.service} ({sources.get('service_name', 'default')}), "
               f"region {region_text} ({sources.get('region', 'default')})")
    problems = []
    if implied.service and implied.service != config.service:
        problems.append(f"host {config.host} is an endpoint of service '{implied.service}', but the service name is "
                        f"'{config.service}': use --service-name {implied.service}")
    if implied.region and config.region and implied.region != config.region and config.sig_version == "v4":
        problems.append(f"host {config.host} is in {implied.region}, but the region is {config.region}: "
                        f"use --region {implied.region}")
    if problems:
        return Check("inference", "region/service", FAIL, summary, "; ".join(problems))
    if implied.service is None and implied.region is None:
        summary += f"; host {config.host} names neither (nothing to cross-check)"
    return Check("inference", "region/service", PASS, summary)


def check_credentials(provider: Any, now: datetime) -> tuple[Check, Any]:
    """(the check, the credentials or None)."""
    try:
        credentials = provider.get()
    except CredentialsError as exc:
        return Check("credentials", "credentials", FAIL, str(exc), _credentials_fix(str(exc), provider)), None
    method = getattr(provider, "method", None)
    source = CREDENTIAL_SOURCES.get(method or "", method or "an unknown source")
    kind = "temporary key with session token" if credentials.session_token else "long-term key"
    summary = f"{credentials.masked_access_key}: {kind} from {source}"
    details = {"access_key": credentials.masked_access_key, "method": method,
               "session_token": bool(credentials.session_token)}
    if credentials.expiry is None:
        return Check("credentials", "credentials", PASS, summary + ", no expiry", details=details), credentials
    left = credentials.expiry - now
    details["expires_at"] = credentials.expiry.isoformat()
    if left <= timedelta(0):
        return Check("credentials", "credentials", FAIL, summary + f", expired {_duration(-left)} ago",
                     _refresh_fix(method, provider), details), credentials
    note = f", expires in {_duration(left)}"
    if left < timedelta(minutes=5):
        note += " (refreshed automatically before use)"
    return Check("credentials", "credentials", PASS, summary + note, details=details), credentials


def _refresh_fix(method: str | None, provider: Any) -> str:
    profile = getattr(provider, "profile", None)
    profile_arg = f" --profile {profile}" if profile else ""
    if method == "sso":
        return f"run `aws sso login{profile_arg}`"
    if method == "env":
        return "export fresh AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN (or use a profile)"
    return f"refresh the credentials (`aws sts get-caller-identity{profile_arg}` shows what the chain finds)"


def _credentials_fix(message: str, provider: Any) -> str | None:
    # The provider's message already carries the cause and its fix (the published start-up message).
    return None if "(ensure AWS credentials" in message or "aws sso login" in message else _refresh_fix(
        getattr(provider, "method", None), provider)


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
    summary = f"the local clock is {_duration(abs(offset))} {direction} the target's (Date: {date_header})"
    if abs(offset) > MAX_SKEW:
        return Check("clock", "clock", FAIL, summary,
                     "AWS rejects signatures more than 5 minutes off: sync the clock (Linux: `sudo timedatectl "
                     "set-ntp true`; macOS: `sudo sntp -sS time.apple.com`); the proxy also corrects for a "
                     "skew the server reports", details)
    if abs(offset) > SKEW_WARNING:
        return Check("clock", "clock", WARN, summary + "; AWS allows 5 minutes", details=details)
    return Check("clock", "clock", PASS, summary, details=details)


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


def check_dns(target: _Target, timeout: float) -> Check:
    def resolve() -> list[str]:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        return list(dict.fromkeys(str(info[4][0]) for info in infos))

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        target.addresses = pool.submit(resolve).result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        return Check("dns", "DNS", FAIL, f"no answer for {target.host} within {timeout:g} s",
                     "check the DNS server / VPN; try `nslookup " + target.host + "`")
    except OSError as exc:
        return Check("dns", "DNS", FAIL, f"cannot resolve {target.host}: {exc.strerror or exc}",
                     "check the target URL's host name for typos; `nslookup " + target.host + "`; behind a "
                     "corporate proxy set HTTPS_PROXY")
    finally:
        pool.shutdown(wait=False)
    shown = ", ".join(target.addresses[:4]) + (" …" if len(target.addresses) > 4 else "")
    return Check("dns", "DNS", PASS, f"{target.host} → {shown}", details={"addresses": target.addresses})


def check_tcp(target: _Target, timeout: float) -> Check:
    """Connect to each resolved address in turn (as HTTP clients do); the first that answers is used later."""
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
        return Check("tcp", "TCP", PASS, f"connected to {_hostport(address, target.port)} in {elapsed:.0f} ms")
    address, exc = failures[0]
    shown = _hostport(address, target.port)
    if isinstance(exc, ConnectionRefusedError):
        return Check("tcp", "TCP", FAIL, f"connection to {shown} refused: nothing is listening",
                     "check that the server is running and the target URL's port; on AWS check security groups "
                     "and network ACLs")
    if isinstance(exc, TimeoutError):
        return Check("tcp", "TCP", FAIL, f"no answer from {shown} within {timeout:g} s",
                     "a firewall is dropping the traffic, or the host is down; check outbound rules and "
                     "HTTPS_PROXY")
    return Check("tcp", "TCP", FAIL, f"cannot connect to {shown}: {exc.strerror or exc}",
                 "check the network route to the host (VPN, proxy, firewall)")


def _hostport(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def ssl_context(environ: Mapping[str, str]) -> ssl.SSLContext:
    """The trust store httpx (and so the proxy) uses: SSL_CERT_FILE / SSL_CERT_DIR, else certifi."""
    if environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=environ["SSL_CERT_FILE"])
    if environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=environ["SSL_CERT_DIR"])
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def check_tls(target: _Target, context: ssl.SSLContext, timeout: float) -> Check:
    if target.scheme != "https":
        note = "loopback" if endpoints.is_loopback(target.host) else "--allow-http"
        return Check("tls", "TLS", SKIP, f"plain http ({note}): no TLS to check")
    address = target.addresses[0] if target.addresses else target.host
    try:
        with socket.create_connection((address, target.port), timeout=timeout) as raw, context.wrap_socket(
            raw, server_hostname=target.host
        ) as tls:
            version, cert = tls.version(), tls.getpeercert() or {}
    except ssl.SSLCertVerificationError as exc:
        return _tls_verify_failure(target, exc)
    except ssl.SSLError as exc:
        return Check("tls", "TLS", FAIL, f"TLS handshake with {target.host}:{target.port} failed: {exc.reason or exc}",
                     "is this port speaking TLS? use http:// for a plain listener, or check for a TLS-inspecting "
                     "proxy")
    except OSError as exc:
        return Check("tls", "TLS", FAIL, f"TLS connection to {target.host}:{target.port} failed: {exc}",
                     "check the network route to the host")
    subject = _name(cert.get("subject", ()))
    issuer = _name(cert.get("issuer", ()))
    expires = cert.get("notAfter", "?")
    summary = f"{version}, certificate {subject} (SNI {target.host}) issued by {issuer}, valid until {expires}"
    return Check("tls", "TLS", PASS, summary, details={"version": version, "subject": subject, "issuer": issuer})


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
        fix = (f"the certificate does not name {target.host} (SNI {target.host}): use the host name the certificate "
               "was issued for")
    elif "expired" in reason.lower():
        fix = "the server's certificate has expired (or this clock is far off): renew it on the server"
    else:
        fix = ("the certificate is signed by a CA this machine does not trust (a private CA, or a TLS-inspecting "
               "corporate proxy): point SSL_CERT_FILE at a CA bundle that includes it; inspect with `openssl "
               f"s_client -connect {target.host}:{target.port} -servername {target.host}`")
    return Check("tls", "TLS", FAIL, summary, fix, {"verify_code": exc.verify_code})


# ------------------------------------------------------------------------------------- identity and probe


def default_sts_endpoint(region: str) -> str:
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://sts.{region}.{suffix}/"


def check_identity(provider: Any, region: str, endpoint: str, verify: Any, timeout: float) -> Check:
    """STS GetCallerIdentity, signed like every request; unreachable STS is a skip, not a failure."""
    import httpx

    from sigv4_proxy.auth import SigV4Auth
    from sigv4_proxy.diagnose import SigningContext, diagnose_response

    host = endpoints.host_of(endpoint)
    reachable = _reachable(endpoint, timeout)
    if reachable is not None:
        return Check("identity", "caller identity", SKIP,
                     f"skipped: STS at {host} is unreachable ({reachable}); the other checks do not need it",
                     details={"endpoint": endpoint})
    body = b"Action=GetCallerIdentity&Version=2011-06-15"
    headers = {"content-type": "application/x-www-form-urlencoded; charset=utf-8", "accept": "application/json"}
    try:
        with httpx.Client(timeout=timeout, verify=verify) as client:
            response = client.post(endpoint, content=body, headers=headers,
                                   auth=SigV4Auth(provider, region, "sts"))
    except httpx.HTTPError as exc:
        return Check("identity", "caller identity", SKIP, f"skipped: STS at {host} did not answer ({exc})",
                     details={"endpoint": endpoint})
    if response.status_code >= 400:
        context = SigningContext(url=endpoint, region=region, service="sts")
        diagnosis = diagnose_response(response.status_code, list(response.headers.multi_items()),
                                      response.content, context=context)
        return Check("identity", "caller identity", FAIL, _head(diagnosis), diagnosis.hint,
                     {"status": response.status_code, "error_type": diagnosis.error_type})
    arn, account = _caller_identity(response)
    return Check("identity", "caller identity", PASS, f"{arn} (account {account})",
                 details={"arn": arn, "account": account})


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


def _caller_identity(response: Any) -> tuple[str, str]:
    text = response.text
    if response.headers.get("content-type", "").startswith("application/json"):
        result = json.loads(text).get("GetCallerIdentityResponse", {}).get("GetCallerIdentityResult", {})
        return str(result.get("Arn", "?")), str(result.get("Account", "?"))
    import re

    arn = re.search(r"<Arn>([^<]*)</Arn>", text)
    account = re.search(r"<Account>([^<]*)</Account>", text)
    return (arn.group(1) if arn else "?"), (account.group(1) if account else "?")


def _head(diagnosis: Any) -> str:
    """The server's part of a diagnosis (status, type, message); the hint goes on the fix line."""
    message = diagnosis.message()
    return message.split(" Diagnosis: ", 1)[0] if diagnosis.hint else message


@dataclass
class ProbeResult:
    check: Check
    date_header: str | None = None
    sent_at: datetime | None = None
    received_at: datetime | None = None


def probe_mcp(config: Any, provider: Any, verify: Any, timeout: float, clock: Callable[[], datetime]) -> ProbeResult:
    """One signed MCP `initialize` (raw JSON-RPC: the proxy's own path never loads the mcp SDK)."""
    import httpx

    from sigv4_proxy import __version__
    from sigv4_proxy.auth import SigV4Auth
    from sigv4_proxy.diagnose import SigningContext, diagnose_exception, diagnose_response

    message = {"jsonrpc": "2.0", "id": "sigv4-proxy-doctor", "method": "initialize", "params": {
        "protocolVersion": PROBE_PROTOCOL_VERSION, "capabilities": {},
        "clientInfo": {"name": "sigv4-proxy-doctor", "version": __version__}}}
    headers = [*config.headers, ("content-type", "application/json"),
               ("accept", "application/json, text/event-stream")]
    auth = SigV4Auth(provider, config.signing_region, config.service, algorithm=config.sig_version)
    context = SigningContext(url=config.target_url, region=config.signing_region, service=config.service,
                             algorithm=config.sig_version, credential_method=getattr(provider, "method", None),
                             profile=config.profile)
    sent_at = clock()
    try:
        with httpx.Client(timeout=timeout, verify=verify) as client:
            with client.stream("POST", config.target_url, headers=headers, content=json.dumps(message).encode(),
                               auth=auth) as response:
                received_at = clock()
                body = _read_until_answer(response, message["id"])
            _close_session(client, config.target_url, response.headers.get("mcp-session-id"), auth)
    except httpx.HTTPError as exc:
        diagnosis = diagnose_exception(exc, context=context)
        return ProbeResult(Check("probe", "signed probe", FAIL, _head(diagnosis), diagnosis.hint))
    date = response.headers.get("date")
    if response.status_code >= 400:
        diagnosis = diagnose_response(response.status_code, list(response.headers.multi_items()), body,
                                      context=context)
        check = Check("probe", "signed probe", FAIL, "initialize: " + _head(diagnosis), diagnosis.hint,
                      {"status": response.status_code, "error_type": diagnosis.error_type, "kind": diagnosis.kind})
        return ProbeResult(check, date, sent_at, received_at)
    return ProbeResult(_initialize_check(response, body, received_at - sent_at), date, sent_at, received_at)


def _read_until_answer(response: Any, request_id: str) -> bytes:
    """Read a JSON body, or SSE events until the one answering `request_id` (the stream may stay open)."""
    content_type = response.headers.get("content-type", "")
    data = bytearray()
    for chunk in response.iter_bytes():
        data += chunk
        if len(data) > MAX_PROBE_BYTES:
            break
        complete_event = b"\n\n" in data.replace(b"\r\n", b"\n")
        if content_type.startswith("text/event-stream") and complete_event and _jsonrpc_answer(
            bytes(data), content_type
        ):
            break
    return bytes(data)


def _close_session(client: Any, url: str, session_id: str | None, auth: Any) -> None:
    """Be a good client: end the session the probe opened (best effort)."""
    if not session_id:
        return
    # The probe's verdict is already known; a failed goodbye changes nothing.
    with contextlib.suppress(Exception):
        client.delete(url, headers={"mcp-session-id": session_id}, auth=auth)


def _initialize_check(response: Any, body: bytes, elapsed: timedelta) -> Check:
    answer = _jsonrpc_answer(body, response.headers.get("content-type", ""))
    took = f"{elapsed.total_seconds() * 1000:.0f} ms"
    if answer is None:
        return Check("probe", "signed probe", FAIL,
                     f"HTTP {response.status_code} but no JSON-RPC answer to initialize in the response",
                     "is the target URL the MCP endpoint itself (often ending in /mcp)?")
    if "error" in answer:
        error = answer["error"] if isinstance(answer["error"], dict) else {}
        return Check("probe", "signed probe", FAIL,
                     f"initialize rejected: JSON-RPC error {error.get('code')}: {error.get('message')}",
                     "the signature was accepted; the MCP server refused the request itself")
    result = answer.get("result") or {}
    info = result.get("serverInfo") or {}
    summary = (f"initialize answered by {info.get('name', '?')} {info.get('version', '')}".rstrip()
               + f" (protocol {result.get('protocolVersion', '?')}) in {took}")
    return Check("probe", "signed probe", PASS, summary, details={"server": info})


def _jsonrpc_answer(body: bytes, content_type: str) -> dict[str, Any] | None:
    text = body.decode("utf-8", "replace")
    candidates: list[str] = []
    if content_type.startswith("text/event-stream"):
        for event in text.replace("\r\n", "\n").split("\n\n"):
            data = "\n".join(line[5:].lstrip() for line in event.split("\n") if line.startswith("data:"))
            if data:
                candidates.append(data)
    else:
        candidates.append(text)
    for candidate in candidates:
        try:
            message = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(message, dict) and message.get("id") == "sigv4-proxy-doctor":
            return message
    return None


def probe_dsql(config: Any, credentials: Any, db_user: str, timeout: float) -> ProbeResult:
    """A PostgreSQL connection with a fresh token, when psycopg is installed (it is optional)."""
    try:
        import psycopg  # type: ignore[import-not-found]
    except ImportError:
        return ProbeResult(Check("probe", "signed probe", SKIP,
                                 "skipped: install psycopg (pip install 'psycopg[binary]') to try a PostgreSQL "
                                 "connection with a token"))
    from sigv4_proxy.tokens import dsql_token

    host = endpoints.host_of(config.target_url)
    token = dsql_token(host, config.region, admin=db_user == "admin", credentials=credentials)
    try:
        with psycopg.connect(host=host, port=5432, user=db_user, password=token, dbname="postgres",
                             sslmode="require", connect_timeout=max(1, int(timeout))) as connection:
            version = connection.execute("select version()").fetchone()
    except Exception as exc:  # psycopg's errors carry the server's message; the token is never in them
        return ProbeResult(Check("probe", "signed probe", FAIL, f"PostgreSQL connection as {db_user} failed: {exc}",
                                 f"run `sigv4-proxy inspect \"$(sigv4-proxy dsql-token --hostname {host}"
                                 f"{' --admin' if db_user == 'admin' else ''})\" --user {db_user} --verify`"))
    return ProbeResult(Check("probe", "signed probe", PASS, f"connected as {db_user}: {version[0] if version else ''}"))


# ---------------------------------------------------------------------------------------------- the run


def _skipped(name: str, title: str, why: str) -> Check:
    return Check(name, title, SKIP, f"skipped: {why}")


def run_doctor(
    args: argparse.Namespace,
    environ: Mapping[str, str],
    *,
    provider: Any = None,
    sts_endpoint: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    clock: Callable[[], datetime] | None = None,
    db_user: str = "admin",
) -> DoctorReport:
    """Run every check. `args` holds the proxy's flags (see :func:`sigv4_proxy.config.add_proxy_arguments`).

    `provider` defaults to the credential chain for the configured profile; `sts_endpoint` to STS in the
    configured region; `clock` (for tests) to the system clock.
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
        from sigv4_proxy.credentials import CredentialProvider

        profile = config.profile if config is not None else getattr(args, "profile", None)
        provider = CredentialProvider(profile or environ.get("AWS_PROFILE") or None)
    credentials_check, credentials = check_credentials(provider, now())
    checks.append(credentials_check)
    context = _safe_ssl_context(environ, checks)
    region = (config.region if config is not None else None) or environ.get("AWS_REGION") or "us-east-1"
    if credentials is None:
        checks.append(_skipped("identity", "caller identity", "no credentials"))
    else:
        checks.append(check_identity(provider, region, sts_endpoint or default_sts_endpoint(region),
                                     context if context is not None else True, timeout))
    if config is None:
        for name, title in (("dns", "DNS"), ("tcp", "TCP"), ("tls", "TLS"), ("clock", "clock"),
                            ("probe", "signed probe")):
            checks.append(_skipped(name, title, "fix the configuration first"))
        return DoctorReport(getattr(args, "target_url", None) or environ.get("MCP_TARGET_URL"), tuple(checks))
    checks.extend(_network_checks(config, provider, credentials, context, timeout, now, db_user))
    return DoctorReport(config.target_url, tuple(checks))


def _safe_ssl_context(environ: Mapping[str, str], checks: list[Check]) -> ssl.SSLContext | None:
    try:
        return ssl_context(environ)
    except (OSError, ssl.SSLError) as exc:
        checks.append(Check("tls", "TLS trust store", FAIL, f"cannot load the CA bundle: {exc}",
                            "point SSL_CERT_FILE at a readable PEM bundle (or unset it)"))
        return None


def _network_checks(config: Any, provider: Any, credentials: Any, context: ssl.SSLContext | None,
                    timeout: float, now: Callable[[], datetime], db_user: str) -> list[Check]:
    target = _target(config.target_url)
    checks = [check_dns(target, timeout)]
    if checks[-1].status == FAIL:
        return [*checks, *(_skipped(n, t, "DNS failed") for n, t in
                           (("tcp", "TCP"), ("tls", "TLS"), ("clock", "clock"), ("probe", "signed probe")))]
    checks.append(check_tcp(target, timeout))
    if checks[-1].status == FAIL:
        return [*checks, *(_skipped(n, t, "no TCP connection") for n, t in
                           (("tls", "TLS"), ("clock", "clock"), ("probe", "signed probe")))]
    if context is None:
        checks.append(_skipped("tls", "TLS", "no usable CA bundle"))
    else:
        checks.append(check_tls(target, context, timeout))
    if checks[-1].status == FAIL:
        return [*checks, _skipped("clock", "clock", "no TLS connection"),
                _skipped("probe", "signed probe", "no TLS connection")]
    if credentials is None:
        return [*checks, _skipped("clock", "clock", "no credentials to sign the probe"),
                _skipped("probe", "signed probe", "no credentials")]
    if config.service == "dsql":
        probe = probe_dsql(config, credentials, db_user, timeout)
        return [*checks, _skipped("clock", "clock", "PostgreSQL has no Date header"), probe.check]
    probe = probe_mcp(config, provider, context if target.scheme == "https" else True, timeout, now)
    if probe.sent_at is None or probe.received_at is None:
        clock_check = _skipped("clock", "clock", "no answer from the target")
    else:
        clock_check = check_clock(probe.date_header, probe.sent_at, probe.received_at)
    return [*checks, clock_check, probe.check]


def _duration(delta: timedelta) -> str:
    seconds = int(abs(delta.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {seconds} s"
    return f"{seconds} s"
