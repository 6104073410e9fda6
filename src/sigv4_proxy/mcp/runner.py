"""Start the MCP stdio proxy: logging, credentials, the signed HTTP client, signals, then the bridge.

The credential provider, the signed client and the signing context come from :mod:`sigv4_proxy.upstream`,
which the HTTP listener shares.

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
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from sigv4_proxy.logs import get_logger, setup_logging
from sigv4_proxy.redact import display_url
from sigv4_proxy.upstream import SecretRegisteringProvider, build_client, credential_provider, signing_context

if TYPE_CHECKING:
    from sigv4_proxy.config import ProxyConfig
    from sigv4_proxy.diagnose import SigningContext
    from sigv4_proxy.mcp.bridge import Bridge
    from sigv4_proxy.signing.model import Credentials

__all__ = ["run_proxy"]

log = get_logger("mcp")

READY_LINE = "Proxy is ready to accept MCP protocol messages"
# A fixed jitter in [0, 1] instead of random ones: reproducible backoff for tests and benchmarks.
JITTER_ENV = "SIGV4_PROXY_RETRY_JITTER"


def log_startup(config: ProxyConfig, credentials: Credentials, method: str | None) -> None:
    from sigv4_proxy import __version__
    from sigv4_proxy.credentials import describe_credentials
    from sigv4_proxy.signing.algorithm import algorithm_for

    log.info("sigv4-proxy %s: MCP stdio proxy starting", __version__)
    log.info("Target URL: %s", display_url(config.target_url))
    algorithm = algorithm_for(config.sig_version)
    if algorithm.uses_region_set:
        regions = ",".join(config.region_set or ("*",))
        signing = f"{algorithm.label}, region set {regions} ({config.sources.get('region_set', 'default')})"
    else:
        signing = f"{algorithm.label}, region {config.region} ({config.sources.get('region', 'default')})"
    log.info("Signing: %s, service %s (%s)", signing, config.service, config.sources.get("service_name"))
    log.info("Credentials: %s", describe_credentials(credentials, method))
    log.info("Options: %s", "; ".join(config.option_summary()))
    for warning in config.warnings:
        log.warning("%s", warning)


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


def jitter_source(environ: Mapping[str, str]) -> Callable[[], float]:
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
        signing_context=_signing_context_of(config, provider),
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


def _signing_context_of(config: ProxyConfig, provider: SecretRegisteringProvider) -> Callable[[], SigningContext]:
    """The bridge asks at each failure: the credentials in hand then are the ones the request was signed with."""
    return lambda: signing_context(config, provider)


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
    from sigv4_proxy.signing.algorithm import algorithm_for

    inferred = "inferred from the target URL"
    args = ["--target-url", display_url(config.target_url)]
    algorithm = algorithm_for(config.sig_version)
    if algorithm.uses_region_set:
        args += ["--sig-version", algorithm.version]
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


def _install_signal_handlers(bridge: Bridge) -> None:
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
