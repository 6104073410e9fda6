"""The MCP proxy's configuration: flags, environment variables, defaults and every rule that checks them.

One place decides what the proxy runs with, so the proxy, ``doctor`` and ``http`` agree exactly:

    parser = argparse.ArgumentParser()
    add_proxy_arguments(parser)
    config = load_proxy_config(parser.parse_args(argv), os.environ)   # raises ConfigError

Precedence: a flag wins over its environment variable, which wins over what the target URL implies
(region, service), which wins over the default. Empty environment variables count as unset. All problems
are collected and raised together as one :class:`~sigv4_proxy.errors.ConfigError` (one line each; the CLI
prints ``ERROR: configuration error: <first line>`` and the rest below it). The messages are a published
interface (users follow a troubleshooting guide that quotes them): change them only deliberately.

The other commands check their own flags with the same rules and words: :func:`url_problem` (an http(s) URL
with a valid host and port), :func:`duration_setting`, :func:`retries_setting`.

Standard library only: the proxy reads its configuration before anything heavy is imported (the signing
algorithm, ours and stdlib-only, is imported when the configuration is resolved, not when flags are added).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple, TypeVar
from urllib.parse import urlsplit

from sigv4_proxy import endpoints
from sigv4_proxy.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from sigv4_proxy.signing.algorithm import Algorithm, SigVersion

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "ProxyConfig",
    "add_proxy_arguments",
    "duration_setting",
    "load_proxy_config",
    "parse_bool",
    "parse_duration",
    "parse_headers",
    "parse_size",
    "retries_setting",
    "url_problem",
]

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
DEFAULT_RETRIES = 2  # the same as sigv4_proxy.retry.DEFAULT_RETRIES (not imported: start-up cost)
MAX_RETRIES = 20
TRANSPORTS = ("auto", "streamable-http", "sse")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")

# Headers that signing or HTTP framing owns; a user value would break the signature or the request.
RESERVED_HEADERS = frozenset(
    {
        "authorization",
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "x-amz-date",
        "x-amz-security-token",
        "x-amz-content-sha256",
        "x-amz-region-set",
    }
)


@dataclass(frozen=True)
class ProxyConfig:
    """Everything the proxy runs with, validated. ``sources`` says where each value came from."""

    target_url: str
    service: str
    region: str | None
    sig_version: SigVersion = "v4"
    region_set: tuple[str, ...] | None = None
    profile: str | None = None
    sse: bool = False
    timeout: float | None = None
    headers: tuple[tuple[str, str], ...] = ()
    log_level: str = "info"
    log_format: str = "text"
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    allow_http: bool = False
    # The stdio bridge's own settings (add_proxy_arguments(..., bridge=True)); other doors keep the defaults.
    transport: str = "auto"
    retries: int = DEFAULT_RETRIES
    warm: bool = False
    request_deadline: float | None = None
    sources: Mapping[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def algorithm(self) -> Algorithm:
        """The signing algorithm ``sig_version`` names (imported here: the signing core is off the parser's path)."""
        from sigv4_proxy.signing.algorithm import algorithm_for

        return algorithm_for(self.sig_version)

    @property
    def signing_region(self) -> str | list[str]:
        """What to sign with: the region (v4) or the region set (v4a)."""
        if self.algorithm.uses_region_set:
            return list(self.region_set or ("*",))
        assert self.region is not None
        return self.region

    @property
    def host(self) -> str:
        return endpoints.host_of(self.target_url)

    def option_summary(self, *, changed_only: bool = False) -> list[str]:
        """The run's options in the words of the proxy's start-up log line (``Options: ...``). With
        ``changed_only`` (``doctor``), only those that make the proxy behave otherwise than by default."""
        options = []
        if self.timeout or not changed_only:
            options.append(f"timeout {self.timeout:g}s" if self.timeout else "no timeout")
        if self.transport != "auto" or not changed_only:
            options.append(f"transport {self.transport}")
        if self.retries != DEFAULT_RETRIES or not changed_only:
            options.append(f"{self.retries} retr{'y' if self.retries == 1 else 'ies'}")
        if self.request_deadline:
            options.append(f"request deadline {self.request_deadline:g}s")
        if self.max_message_bytes != DEFAULT_MAX_MESSAGE_BYTES:
            options.append(f"max message {self.max_message_bytes} bytes")
        if self.warm:
            options.append("warm start")
        if self.sse:
            options.append("standalone event stream on")
        if self.headers:
            options.append("extra headers: " + ", ".join(name for name, _ in self.headers))
        return options


# --- argparse -----------------------------------------------------------------------------------------

_UNSET = None


def add_proxy_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, bridge: bool = False) -> None:
    """Add the proxy's flags (the published set) to ``parser``. Every default is None: see load_proxy_config.

    ``bridge=True`` adds the stdio bridge's own flags too (``--transport``, ``--retries``, ``--warm``,
    ``--request-deadline``). ``http`` leaves them out (it has its own ``--retries``); ``doctor`` takes them, to
    check a configuration exactly as an MCP client passes it.
    """
    group = parser.add_argument_group("proxy options") if isinstance(parser, argparse.ArgumentParser) else parser
    add = group.add_argument
    add("--target-url", metavar="URL", help="the IAM-protected MCP endpoint, http(s) (env MCP_TARGET_URL; required)")
    add(
        "--region",
        metavar="REGION",
        help="AWS region to sign for (env AWS_REGION, then AWS_DEFAULT_REGION; default: inferred from the "
        "target URL, required when it cannot be)",
    )
    add(
        "--service-name",
        metavar="NAME",
        help="SigV4 service name, e.g. execute-api, lambda, bedrock-agentcore (env AWS_SERVICE_NAME; default: "
        "inferred from the target URL, required when it cannot be)",
    )
    add(
        "--sig-version",
        metavar="{v4,v4a}",
        help="signature version: v4 (HMAC, one region) or v4a (ECDSA, a region set) (env AWS_SIG_VERSION; default v4)",
    )
    add(
        "--region-set",
        metavar="R1,R2",
        help="v4a only: comma-separated regions the signature is valid in, wildcards allowed "
        "(env AWS_SIGV4A_SIGNING_REGION_SET; default: the region, else *)",
    )
    add("--profile", metavar="NAME", help="AWS profile for credentials (env AWS_PROFILE; default: the default chain)")
    add(
        "--sse",
        action=argparse.BooleanOptionalAction,
        default=_UNSET,
        help="open the standalone GET event stream for server-initiated messages (env MCP_ENABLE_SSE; default off)",
    )
    add(
        "--timeout",
        metavar="DURATION",
        help="how long to wait for a response: 30s, 1m, 1h30m or plain seconds; a stream that is still "
        "delivering is never cut (env MCP_TIMEOUT; default none)",
    )
    add(
        "--headers",
        metavar="K=V,K2=V2",
        help="extra headers added to every request and signed; a value may contain '=' (env MCP_HEADERS)",
    )
    add(
        "--log-level",
        metavar="LEVEL",
        help="debug, info, warning or error; logs go to stderr (env MCP_LOG_LEVEL; default info)",
    )
    add("--log-format", metavar="{text,json}", help="log line format (env MCP_LOG_FORMAT; default text)")
    add(
        "--max-message-bytes",
        metavar="SIZE",
        help="largest JSON-RPC message accepted, bytes or 64MiB-style: a line on stdin, and from the server a JSON "
        "body, an event-stream event or a decompressed body; a request whose answer is larger gets an error and "
        "its stream is closed (env MCP_MAX_MESSAGE_BYTES; default 64MiB)",
    )
    add(
        "--allow-http",
        action=argparse.BooleanOptionalAction,
        default=_UNSET,
        help="allow a plain-http target URL on a non-loopback host: signed requests travel unencrypted "
        "(env MCP_ALLOW_HTTP; default off)",
    )
    if bridge:
        _add_bridge_arguments(add)


def _add_bridge_arguments(add: Callable[..., argparse.Action]) -> None:
    add(
        "--transport",
        metavar="{auto,streamable-http,sse}",
        help="upstream MCP transport: streamable-http (2025-03-26 and later), sse (the legacy 2024-11-05 "
        "HTTP+SSE transport: GET the event stream, POST to its endpoint), or auto: Streamable HTTP, falling "
        "back to sse when the server answers the first initialize POST with 400, 404 or 405 "
        "(env MCP_TRANSPORT; default auto)",
    )
    add(
        "--retries",
        metavar="N",
        help="extra attempts for connection failures, 429, 502, 503, 504 and 424 (cold start), with "
        "exponential backoff and jitter, honouring Retry-After; a request the server may have started "
        f"executing is never resent; 0-{MAX_RETRIES} (env MCP_RETRIES; default {DEFAULT_RETRIES})",
    )
    add(
        "--warm",
        action=argparse.BooleanOptionalAction,
        default=_UNSET,
        help="answer initialize at once from the last successful answer cached for this target URL (in the "
        "user cache directory) while the real initialize completes; for backends whose cold start exceeds "
        "the client's initialize time limit. The client may see capabilities that are out of date until its "
        "next start (env MCP_WARM_START; default off)",
    )
    add(
        "--request-deadline",
        metavar="DURATION",
        help="the longest a request may wait for its response, in total, like 30s, 5m, 1h or plain seconds; "
        "unlike --timeout it also ends a request whose stream keeps delivering (progress notifications) but "
        "never its response. The client gets an error; the request is not resent "
        "(env MCP_REQUEST_DEADLINE; default off)",
    )


# --- parsing helpers (pure) ----------------------------------------------------------------------------

_T = TypeVar("_T")
_D = TypeVar("_D")

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in ``30s``, ``1m``, ``1h30m``, ``1.5s``, ``250ms`` or plain seconds (``45``, ``2.5``).

    Raises ValueError for anything else, including negative values.
    """
    value = text.strip()
    if not value:
        raise ValueError(text)
    try:
        seconds = float(value)
    except ValueError:
        position, seconds = 0, 0.0
        for match in _DURATION_PART.finditer(value):
            if match.start() != position:
                raise ValueError(text) from None
            seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
            position = match.end()
        if position != len(value) or position == 0:
            raise ValueError(text) from None
    if seconds < 0 or seconds != seconds or seconds == float("inf"):
        raise ValueError(text)
    return seconds


_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]?)(?:i?b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(text: str) -> int:
    """Bytes in ``67108864``, ``64MiB``, ``64M``, ``512k`` (binary multiples). Raises ValueError."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(text)
    size = int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]
    if size <= 0:
        raise ValueError(text)
    return size


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_bool(text: str) -> bool:
    """``1/true/yes/on`` or ``0/false/no/off`` (any case). Raises ValueError."""
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(text)


_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def parse_headers(text: str) -> tuple[list[tuple[str, str]], list[str]]:
    """``k=v,k2=v2`` -> ([(k, v), (k2, v2)], problems). A value may contain ``=``; blanks are ignored."""
    headers: list[tuple[str, str]] = []
    problems: list[str] = []
    for item in text.split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name:
            problems.append(f"headers must be key=value pairs separated by commas, got: {item.strip()}")
        elif not _HEADER_NAME.match(name):
            problems.append(f"header name is not a valid HTTP token: {name!r}")
        elif any(ch in value for ch in "\r\n\x00"):
            problems.append(f"header {name} has a value with a line break or NUL character")
        elif (bad := unsendable_character(value)) is not None:
            position, char = bad
            problems.append(
                f"header {name} has a value with a non-ASCII or control character ({char!r} at position "
                f"{position}): HTTP header values must be printable ASCII"
            )
        elif name.lower() in RESERVED_HEADERS:
            problems.append(f"header {name} is set by the proxy when signing and cannot be overridden in headers")
        else:
            headers.append((name, value))
    return headers, problems


def unsendable_character(value: str) -> tuple[int, str] | None:
    """(position, character) of the first character HTTP/1.1 cannot carry in a header value, or None.

    httpx encodes header values as ASCII and h11 refuses control characters: caught here, such a value would
    fail every request instead of once, at start-up."""
    for position, char in enumerate(value):
        if not (" " <= char <= "~" or char == "\t"):
            return position, char
    return None


# --- resolution -----------------------------------------------------------------------------------------


class _Resolver:
    """Looks each setting up flag-first, then in the environment, and remembers where it came from."""

    def __init__(self, args: argparse.Namespace, environ: Mapping[str, str]) -> None:
        self.args = args
        self.environ = environ
        self.sources: dict[str, str] = {}

    def get(self, key: str, flag: str, *env_names: str) -> str | None:
        value = getattr(self.args, key, None)
        if value is not None and value != "":
            self.sources[key] = flag
            return str(value) if not isinstance(value, bool) else ("true" if value else "false")
        for name in env_names:
            env_value = self.environ.get(name)
            if env_value is not None and env_value.strip() != "":
                self.sources[key] = name
                return env_value.strip()
        return None

    def from_flag(self, key: str) -> bool:
        return self.sources.get(key, "").startswith("--")


def load_proxy_config(args: argparse.Namespace, environ: Mapping[str, str], *, bridge: bool = False) -> ProxyConfig:
    """Resolve and validate the proxy's configuration. Raises ConfigError listing every problem.

    ``bridge=True`` (the stdio proxy, and ``doctor``) also resolves ``--transport``, ``--retries``, ``--warm`` and
    ``--request-deadline``; other commands keep their defaults (``http`` reads its own ``--retries``)."""
    get = _Resolver(args, environ)
    problems: list[str] = []
    warnings: list[str] = []

    target_url = get.get("target_url", "--target-url", "MCP_TARGET_URL")
    host = ""
    allow_http = _bool_setting(get, "allow_http", "--allow-http", "MCP_ALLOW_HTTP", problems)
    if target_url is None:
        problems.append("target URL is required (set MCP_TARGET_URL or --target-url)")
    else:
        host = _check_target_url(target_url, allow_http, problems)

    implied = endpoints.infer(target_url) if target_url is not None and host else endpoints.Endpoint(None, None)

    raw_sig_version = get.get("sig_version", "--sig-version", "AWS_SIG_VERSION") or "v4"
    algorithm = _algorithm(raw_sig_version)  # None: not a version, reported after the region and the service
    uses_region_set = algorithm is not None and algorithm.uses_region_set

    region = _setting_or_inferred(get, _REGION, implied.region, host, warnings)
    region_set = _region_set(get, uses_region_set, region, problems)
    if region is None and not uses_region_set:
        _required(_REGION, host, implied, problems)

    service = _setting_or_inferred(get, _SERVICE, implied.service, host, warnings)
    if service is None:
        _required(_SERVICE, host, implied, problems)
    # The published order is URL, scheme, region, service, version.
    if algorithm is None:
        problems.append(f"signature version must be 'v4' or 'v4a', got: {raw_sig_version}")

    timeout = _timeout(get, problems)
    headers = _headers(get, problems)
    log_level = _log_level(get, problems)
    log_format = (get.get("log_format", "--log-format", "MCP_LOG_FORMAT") or "text").lower()
    if log_format not in LOG_FORMATS:
        problems.append(f"log format must be 'text' or 'json', got: {log_format}")
    max_message_bytes = _max_message_bytes(get, problems)
    sse = _bool_setting(get, "sse", "--sse", "MCP_ENABLE_SSE", problems)
    profile = get.get("profile", "--profile", "AWS_PROFILE")
    transport, retries, warm, request_deadline = (
        _bridge_settings(get, problems) if bridge else ("auto", DEFAULT_RETRIES, False, None)
    )

    if problems:
        raise ConfigError(problems)
    assert target_url is not None and service is not None and algorithm is not None
    return ProxyConfig(
        target_url=target_url,
        service=service,
        region=region,
        sig_version=algorithm.version,
        region_set=region_set,
        profile=profile,
        sse=sse,
        timeout=timeout,
        headers=tuple(headers),
        log_level=log_level,
        log_format=log_format,
        max_message_bytes=max_message_bytes,
        allow_http=allow_http,
        transport=transport,
        retries=retries,
        warm=warm,
        request_deadline=request_deadline,
        sources=dict(get.sources),
        warnings=tuple(warnings),
    )


def _check_target_url(url: str, allow_http: bool, problems: list[str]) -> str:
    """Append the URL's problems; return its host when it has a usable one."""
    problem = url_problem(url)
    if problem is not None:
        problems.append(problem)
        return ""
    host = endpoints.host_of(url)
    if urlsplit(url).scheme.lower() == "http" and not allow_http and not endpoints.is_loopback(host):
        problems.append(
            f"target URL uses http for non-loopback host {host}: signed requests would travel unencrypted "
            "(use https, or pass --allow-http / set MCP_ALLOW_HTTP=true)"
        )
    return host


def url_problem(url: str, subject: str = "target URL") -> str | None:
    """The first reason ``url`` cannot be a signed request's URL (an http(s) URL with a host and a valid port),
    in words that start with ``subject``; None when it can be one.

    Checked before anything is sent: urlsplit accepts some of these (port 0, text after ``]``) and reports the
    others in Python's words; httpx would then fail every request with what looks like a connection problem.
    """
    if "://" not in url:
        return f"{subject} must use http or https scheme, got: {url} (no scheme; write https://{url})"
    authority_problem = _authority_problem(url)
    if authority_problem is not None:
        return f"{subject} {authority_problem}"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        return f"{subject} is not a valid URL ({exc}): {url}"
    if parts.scheme.lower() not in ("http", "https"):
        return f"{subject} must use http or https scheme, got: {parts.scheme}"
    if not endpoints.host_of(url):
        return f"{subject} has no host: {url}"
    return None


_IPV6_HINT = "an IPv6 address goes in brackets: https://[::1]:8080/mcp"


def _authority_problem(url: str) -> str | None:
    """The first problem with the URL's host and port, as the end of a sentence about the URL, or None."""
    authority = re.split(r"[/?#]", url.split("://", 1)[1], maxsplit=1)[0]
    host_port = authority.rpartition("@")[2]
    if host_port.startswith("["):
        close = host_port.find("]")
        if close < 0:
            return f"has an unclosed '[' in its host, got: {host_port} ({_IPV6_HINT})"
        host, rest = host_port[1:close], host_port[close + 1 :]
        if rest and not rest.startswith(":"):
            return f"may have only :port after the ']' of an IPv6 host, got: {host_port}"
        if not _is_ipv6(host):
            return f"has an invalid IPv6 address in brackets, got: [{host}]"
        port = rest[1:] if rest else ""
    else:
        host, _, port = host_port.partition(":")
        if "[" in host_port or "]" in host_port:
            return f"has a bracket outside an IPv6 host, got: {host_port} ({_IPV6_HINT})"
        if ":" in port and (not host or _is_ipv6(host_port) or _is_ipv6(host_port.rpartition(":")[0])):
            return f"has an IPv6 address without brackets, got: {host_port} ({_IPV6_HINT})"
    if any(char.isspace() or not char.isprintable() for char in host):
        return f"host must not contain spaces or control characters, got: {host!r}"
    if port and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        return f"port must be a number from 1 to 65535, got: {port}"
    return None


def _is_ipv6(text: str) -> bool:
    import ipaddress
    from urllib.parse import unquote

    try:
        ipaddress.IPv6Address(unquote(text))  # a zone id arrives percent-encoded: fe80::1%25eth0
    except ValueError:
        return False
    return True


class _Inferable(NamedTuple):
    """A setting the target URL's host may imply: its name in messages, its key, flag and variables."""

    what: str
    key: str
    flag: str
    env_names: tuple[str, ...]
    unless: str  # what must hold for a value the host does not imply to work, "{}" standing for the value


_REGION = _Inferable(
    "region", "region", "--region", ("AWS_REGION", "AWS_DEFAULT_REGION"), "the endpoint really is in {}"
)
_SERVICE = _Inferable(
    "service name", "service_name", "--service-name", ("AWS_SERVICE_NAME",), "{} is right for this endpoint"
)


def _setting_or_inferred(
    get: _Resolver, setting: _Inferable, implied: str | None, host: str, warnings: list[str]
) -> str | None:
    """The setting as given, else what the host implies; a warning when both exist and differ."""
    value = get.get(setting.key, setting.flag, *setting.env_names)
    if value is None and implied is not None:
        value, get.sources[setting.key] = implied, "inferred from the target URL"
    elif value is not None and implied is not None and value != implied:
        warnings.append(
            f"{setting.what} {value} (from {get.sources[setting.key]}) differs from {implied}, which host {host} "
            f"implies; AWS will reject the signature unless {setting.unless.format(value)}"
        )
    return value


def _required(setting: _Inferable, host: str, implied: endpoints.Endpoint, problems: list[str]) -> None:
    """A missing setting: where to set it, and why the host did not imply it."""
    problems.append(f"{setting.what} is required (set {setting.env_names[0]} or {setting.flag})")
    if host:
        problems.append("  " + _inference_hint(setting.what, host, implied))


def _algorithm(raw_sig_version: str) -> Algorithm | None:
    """The algorithm ``--sig-version`` / AWS_SIG_VERSION names (any case), or None when it names none."""
    from sigv4_proxy.signing.algorithm import ALGORITHMS

    return next((algorithm for algorithm in ALGORITHMS if algorithm.version == raw_sig_version.lower()), None)


def _inference_hint(what: str, host: str, implied: endpoints.Endpoint) -> str:
    if endpoints.is_loopback(host):
        why = "a loopback address"
    elif endpoints.is_ip(host):
        why = "an IP address"
    elif implied.service is not None and implied.region is None:
        why = f"a global {implied.service} endpoint; its signing region is usually us-east-1"
    elif implied.region is not None:
        why = "no service label in the host name"
    else:
        why = "not an AWS endpoint name (a custom domain)"
    return f"({what} cannot be inferred from host {host}: {why})"


def _bool_setting(get: _Resolver, key: str, flag: str, env: str, problems: list[str]) -> bool:
    return _setting(get.get(key, flag, env), parse_bool, False, f"{env} must be true or false", problems)


def _region_set(
    get: _Resolver, uses_region_set: bool, region: str | None, problems: list[str]
) -> tuple[str, ...] | None:
    raw = get.get("region_set", "--region-set", "AWS_SIGV4A_SIGNING_REGION_SET")
    if not uses_region_set:
        if raw is not None and get.from_flag("region_set"):
            problems.append("region set applies only to --sig-version v4a")
        return None
    if raw is None:
        get.sources["region_set"] = "the region" if region else "default"
        return (region,) if region else ("*",)
    regions = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not regions:
        problems.append(f"region set must list regions separated by commas, got: {raw}")
    return regions or None


def _timeout(get: _Resolver, problems: list[str]) -> float | None:
    raw = get.get("timeout", "--timeout", "MCP_TIMEOUT")
    problem = "timeout must be a duration like 30s, 1m, 1h30m or plain seconds"
    return duration_setting(raw, problem, problems) or None  # 0: no limit, as unset


def duration_setting(raw: str | None, problem: str, problems: list[str], *, zero: bool = True) -> float | None:
    """Seconds in ``raw`` (:func:`parse_duration`), None when it is unset or invalid (then ``problem``, with the
    value, is added to ``problems``). ``zero=False``: 0 is invalid too."""
    return _setting(raw, parse_duration if zero else _positive_duration, None, problem, problems)


def _positive_duration(text: str) -> float:
    seconds = parse_duration(text)
    if seconds == 0:
        raise ValueError(text)
    return seconds


def _setting(raw: str | None, parse: Callable[[str], _T], default: _D, problem: str, problems: list[str]) -> _T | _D:
    """``parse(raw)``; ``default`` when ``raw`` is unset, or invalid (``parse`` raises ValueError): then
    ``problem``, with the value, is added to ``problems``."""
    if raw is None:
        return default
    try:
        return parse(raw)
    except ValueError:
        problems.append(f"{problem}, got: {raw}")
        return default


def _headers(get: _Resolver, problems: list[str]) -> list[tuple[str, str]]:
    raw = get.get("headers", "--headers", "MCP_HEADERS")
    if raw is None:
        return []
    headers, header_problems = parse_headers(raw)
    problems.extend(header_problems)
    return headers


def _log_level(get: _Resolver, problems: list[str]) -> str:
    raw = (get.get("log_level", "--log-level", "MCP_LOG_LEVEL") or "info").lower()
    level = {"warn": "warning", "err": "error", "trace": "debug"}.get(raw, raw)
    if level not in LOG_LEVELS:
        problems.append(f"log level must be one of debug, info, warning, error, got: {raw}")
        return "info"
    return level


def _max_message_bytes(get: _Resolver, problems: list[str]) -> int:
    raw = get.get("max_message_bytes", "--max-message-bytes", "MCP_MAX_MESSAGE_BYTES")
    problem = "max message bytes must be a positive size like 67108864 or 64MiB"
    return _setting(raw, parse_size, DEFAULT_MAX_MESSAGE_BYTES, problem, problems)


def _bridge_settings(get: _Resolver, problems: list[str]) -> tuple[str, int, bool, float | None]:
    """``--transport``, ``--retries``, ``--warm``, ``--request-deadline`` (the stdio bridge's own settings)."""
    raw_transport = get.get("transport", "--transport", "MCP_TRANSPORT") or "auto"
    transport = raw_transport.lower()
    if transport not in TRANSPORTS:
        problems.append(f"transport must be 'auto', 'streamable-http' or 'sse', got: {raw_transport}")
        transport = "auto"
    retries = retries_setting(get.get("retries", "--retries", "MCP_RETRIES"), problems)
    warm = _bool_setting(get, "warm", "--warm", "MCP_WARM_START", problems)
    return transport, retries, warm, _request_deadline(get, problems)


def retries_setting(raw: str | None, problems: list[str]) -> int:
    """``--retries`` / MCP_RETRIES: 0 to MAX_RETRIES; the default when unset or invalid (then a problem)."""
    return _setting(raw, _retries, DEFAULT_RETRIES, f"retries must be a whole number from 0 to {MAX_RETRIES}", problems)


def _retries(text: str) -> int:
    if not (text.isdigit() and int(text) <= MAX_RETRIES):
        raise ValueError(text)
    return int(text)


def _request_deadline(get: _Resolver, problems: list[str]) -> float | None:
    raw = get.get("request_deadline", "--request-deadline", "MCP_REQUEST_DEADLINE")
    problem = "request deadline must be a duration like 30s, 5m, 1h or plain seconds"
    return duration_setting(raw, problem, problems) or None  # 0: off, as unset
