"""Start the MCP stdio proxy: logging, credentials, the signed HTTP client, signals, then the bridge.

Start-up is on the MCP client's critical path (it launches us for every session), so this module imports
only what it must, when it must: httpx and the signer after the configuration is known, botocore only when
the credentials do not come straight from the environment, the diagnosis module only when something fails,
and never the ``mcp`` SDK.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sigv4_proxy.logs import get_logger, register_credentials, setup_logging

if TYPE_CHECKING:
    import httpx

    from sigv4_proxy.config import ProxyConfig
    from sigv4_proxy.diagnose import SigningContext
    from sigv4_proxy.signing.model import Credentials

__all__ = ["build_client", "credential_provider", "run_proxy"]

log = get_logger("mcp")

READY_LINE = "Proxy is ready to accept MCP protocol messages"
# A fixed jitter in [0, 1] instead of random ones: reproducible backoff for tests and benchmarks.
JITTER_ENV = "SIGV4_PROXY_RETRY_JITTER"
DEFAULT_CONNECT_TIMEOUT = 30.0
MAX_CONNECTIONS = 512


class SecretRegisteringProvider:
    """Wraps the shared credential provider so every secret it hands out is redacted from the logs."""

    def __init__(self, provider: Any) -> None:
        self.provider = provider

    @property
    def method(self) -> str | None:
        return getattr(self.provider, "method", None)

    def _seen(self, credentials: Credentials | None) -> Credentials | None:
        if credentials is not None:
            register_credentials(credentials)
        return credentials

    def get(self, now: datetime | None = None) -> Credentials:
        credentials = self._seen(self.provider.get(now))
        assert credentials is not None
        return credentials

    def cached(self, now: datetime | None = None) -> Credentials | None:
        cached = getattr(self.provider, "cached", None)
        return self._seen(cached(now)) if cached is not None else None

    def force_refresh(self) -> Credentials:
        credentials = self._seen(self.provider.force_refresh())
        assert credentials is not None
        return credentials


def credential_provider(config: ProxyConfig, environ: Mapping[str, str]) -> Any:
    """The process's one credential provider.

    Keys in the environment (and no ``--profile`` flag) are what botocore's chain would pick first; they
    are read directly, which saves importing botocore (~150 ms of every start-up). Everything else goes
    through botocore's chain. A profile that came from ``AWS_PROFILE`` is left to botocore to read, so the
    precedence is the AWS CLI's: environment keys over ``AWS_PROFILE``, ``--profile`` over both.
    """
    from sigv4_proxy.credentials import CredentialProvider, StaticCredentialProvider
    from sigv4_proxy.signing.model import Credentials

    profile_flag = config.profile if config.sources.get("profile") == "--profile" else None
    access_key = environ.get("AWS_ACCESS_KEY_ID", "").strip()
    secret_key = environ.get("AWS_SECRET_ACCESS_KEY", "").strip()
    if profile_flag is None and access_key and secret_key and not environ.get("AWS_CREDENTIAL_EXPIRATION"):
        token = (environ.get("AWS_SESSION_TOKEN") or environ.get("AWS_SECURITY_TOKEN") or "").strip() or None
        return StaticCredentialProvider(Credentials(access_key, secret_key, token), method="env")
    if profile_flag is None and not access_key and config.profile:
        # No keys in the environment for botocore to prefer: naming AWS_PROFILE's profile selects exactly what
        # botocore would, and lets the provider's messages name it (`aws sso login --profile P`).
        profile_flag = config.profile
    return CredentialProvider(profile=profile_flag)


def build_client(config: ProxyConfig, provider: Any, *, clock: Any = None) -> httpx.AsyncClient:
    """The shared, pooled, signing httpx client."""
    import sys

    import httpx

    try:  # httpcore imports sniffio inside a function on every request: record its absence once
        import sniffio  # noqa: F401
    except ImportError:  # each failing attempt would search sys.path again (~0.1 ms, ~10 per request)
        sys.modules.setdefault("sniffio", None)  # type: ignore[assignment]

    from sigv4_proxy import __version__
    from sigv4_proxy.auth import SigV4Auth

    auth = SigV4Auth(provider, config.signing_region, config.service, algorithm=config.sig_version, clock=clock)
    connect = min(config.timeout, DEFAULT_CONNECT_TIMEOUT) if config.timeout else DEFAULT_CONNECT_TIMEOUT
    return httpx.AsyncClient(
        auth=auth,
        timeout=httpx.Timeout(connect=connect, read=config.timeout, write=config.timeout, pool=None),
        limits=httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=64, keepalive_expiry=30),
        follow_redirects=False,
        headers={"User-Agent": f"sigv4-proxy/{__version__}"},
    )


def signing_context_factory(config: ProxyConfig, provider: SecretRegisteringProvider) -> Any:
    def context() -> SigningContext:
        from sigv4_proxy.diagnose import SigningContext

        credentials = None
        try:
            credentials = provider.cached()
        except Exception:
            credentials = None
        return SigningContext(
            url=config.target_url,
            region=config.signing_region,
            service=config.service,
            algorithm=config.sig_version,
            access_key=credentials.masked_access_key if credentials else None,
            has_session_token=bool(credentials.session_token) if credentials else None,
            credential_method=provider.method,
            profile=config.profile,
            # Known here only when --transport names it; with "auto" the diagnosis goes by the URL.
            transport=None if config.transport == "auto" else config.transport,
        )

    return context


def log_startup(config: ProxyConfig, credentials: Credentials, method: str | None) -> None:
    from sigv4_proxy import __version__
    from sigv4_proxy.credentials import describe_credentials

    log.info("sigv4-proxy %s: MCP stdio proxy starting", __version__)
    log.info("Target URL: %s", _display_url(config.target_url))
    if config.sig_version == "v4a":
        regions = ",".join(config.region_set or ("*",))
        signing = f"SigV4a, region set {regions} ({config.sources.get('region_set', 'default')})"
    else:
        signing = f"SigV4, region {config.region} ({config.sources.get('region', 'default')})"
    log.info("Signing: %s, service %s (%s)", signing, config.service, config.sources.get("service_name"))
    log.info("Credentials: %s", describe_credentials(credentials, method))
    log.info("Options: %s", "; ".join(config.option_summary()))
    for warning in config.warnings:
        log.warning("%s", warning)


def _display_url(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def run_proxy(config: ProxyConfig, environ: Mapping[str, str] | None = None) -> int:
    """Run the proxy until stdin closes or a signal arrives. Raises CredentialsError before serving."""
    import logging

    setup_logging(config.log_level, config.log_format)
    # botocore logs failed credential refreshes with a traceback (through logging's last-resort handler);
    # the proxy reports them itself, once, with the cause and the fix.
    logging.getLogger("botocore").addHandler(logging.NullHandler())
    env = os.environ if environ is None else environ
    provider = SecretRegisteringProvider(credential_provider(config, env))
    credentials = provider.get()  # fail fast, with the published message, before the client sends anything
    log_startup(config, credentials, provider.method)
    return asyncio.run(_serve(config, provider, env))


def jitter_source(environ: Mapping[str, str]) -> Any:
    """``random.random``, or a constant from ``SIGV4_PROXY_RETRY_JITTER`` (reproducible backoff)."""
    import random

    raw = environ.get(JITTER_ENV, "").strip()
    if not raw:
        return random.random
    try:
        fixed = min(1.0, max(0.0, float(raw)))
    except ValueError:
        log.warning("%s must be a number from 0 to 1, got %r: using random jitter", JITTER_ENV, raw)
        return random.random
    return lambda: fixed


async def _serve(config: ProxyConfig, provider: SecretRegisteringProvider, environ: Mapping[str, str]) -> int:
    from sigv4_proxy.clock import SkewedClock
    from sigv4_proxy.mcp.bridge import Bridge
    from sigv4_proxy.mcp.stdio import StdinReader, StdoutWriter

    clock = SkewedClock()
    client = build_client(config, provider, clock=clock)
    warm_cache = None
    if config.warm:
        from sigv4_proxy.mcp.warm import WarmCache, user_cache_dir

        warm_cache = WarmCache(user_cache_dir(environ), config.target_url)
    bridge = Bridge(
        config,
        client,
        stdin=StdinReader(config.max_message_bytes),
        stdout=StdoutWriter(),
        signing_context=signing_context_factory(config, provider),
        credentials=provider,
        clock=clock,
        random=jitter_source(environ),
        warm_cache=warm_cache,
    )
    _install_signal_handlers(bridge)
    log.info(READY_LINE)
    if _stdin_is_terminal():  # started by hand: say why nothing more happens, and how it is meant to be run
        log.info("%s", terminal_hint(config))
    try:
        return await bridge.run()
    finally:
        await client.aclose()


def _stdin_is_terminal() -> bool:
    import sys

    try:
        return sys.stdin is not None and os.isatty(sys.stdin.fileno())
    except (OSError, ValueError):  # no descriptor (closed, or replaced by an embedding program)
        return False


def terminal_hint(config: ProxyConfig, argv0: str | None = None) -> str:
    """The line logged after the ready line when a person started the proxy in a terminal: what it waits
    for, the MCP client configuration that launches it, and the one-line test by hand."""
    import json
    import shlex

    command = launch_command(argv0)
    args = [*command[1:], *client_arguments(config)]
    server: dict[str, Any] = {"command": command[0], "args": args}
    if config.profile and config.sources.get("profile") != "--profile":
        # MCP clients do not inherit the shell's variables: the profile has to be in the config's env.
        server["env"] = {"AWS_PROFILE": config.profile}
    snippet = json.dumps({"mcpServers": {"sigv4-proxy": server}})
    initialize = '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}'
    by_hand = f"echo {shlex.quote(initialize)} | {shlex.join([command[0], *args])}"
    return (
        "stdin is a terminal: sigv4-proxy reads MCP JSON-RPC messages on stdin, one per line, and is meant to be "
        f"launched by an MCP client. Client configuration: {snippet}  Test by hand: {by_hand}  "
        "(Ctrl-D or Ctrl-C ends this run)"
    )


def launch_command(argv0: str | None = None) -> list[str]:
    """How this proxy was started, as an absolute command: the ``sigv4-proxy`` script, else ``python -m``."""
    import sys

    script = sys.argv[0] if argv0 is None else argv0
    if os.path.basename(script).lower() in ("sigv4-proxy", "sigv4-proxy.exe") and os.path.isfile(script):
        return [os.path.abspath(script)]
    return [sys.executable, "-m", "sigv4_proxy"]


def client_arguments(config: ProxyConfig) -> list[str]:
    """The flags an MCP client's configuration needs to reproduce this run's target and signing: whatever
    came from the environment too, since a client launched from a desktop does not have the shell's."""
    inferred = "inferred from the target URL"
    args = ["--target-url", _display_url(config.target_url)]
    if config.sig_version == "v4a":
        args += ["--sig-version", "v4a"]
        if config.region_set:
            args += ["--region-set", ",".join(config.region_set)]
    elif config.region and config.sources.get("region") != inferred:
        args += ["--region", config.region]
    if config.sources.get("service_name") != inferred:
        args += ["--service-name", config.service]
    if config.sources.get("profile") == "--profile" and config.profile:
        args += ["--profile", config.profile]
    if config.allow_http:
        args.append("--allow-http")
    if config.transport != "auto":
        args += ["--transport", config.transport]
    return args


def _install_signal_handlers(bridge: Any) -> None:
    loop = asyncio.get_running_loop()
    received: list[int] = []

    def on_signal(signum: int) -> None:
        if received:
            os._exit(128 + signum)  # a second signal: the user means it
        received.append(signum)
        bridge.stop(signal.Signals(signum).name)

    for signum in (signal.SIGINT, signal.SIGTERM):
        # Windows has no loop signal handlers: KeyboardInterrupt still ends the run there.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, on_signal, signum)
