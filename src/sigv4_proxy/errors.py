"""Errors a user can hit. Each carries the message printed to them and the process exit code.

Each class also names its ``kind`` and may carry a ``fix``: an MCP client that launched the proxy receives
them in the JSON-RPC error answering its first request when the proxy cannot start
(:mod:`sigv4_proxy.mcp.startup_failure`), so a program can tell a typo in the client's configuration from a
credentials problem without parsing the message.
"""

from __future__ import annotations

from typing import Literal

# What the JSON-RPC error's data says the failure is (one per class below).
ErrorKind = Literal["error", "usage", "signing", "configuration", "credentials", "missing-dependency"]


class Sigv4ProxyError(Exception):
    """Base class: ``str(err)`` is the complete message for the user (cause and fix), no secrets.

    ``fix`` is what to type or change, when one suggestion says it (the message already contains it); None
    when the message states the fix in prose or there is none.
    """

    exit_code = 1
    kind: ErrorKind = "error"

    def __init__(self, *args: object, fix: str | None = None) -> None:
        super().__init__(*args)
        self.fix = fix


class UsageError(Sigv4ProxyError):
    """Bad command-line input (exit 2, like argparse)."""

    exit_code = 2
    kind = "usage"


class CommandLineError(UsageError):
    """Arguments the parser could not place: a mistyped option, a stray word, a flag and its value in one.

    ``usage`` is the one-line usage printed before the ``ERROR:`` line. ``command`` is the subcommand being
    run, or the word that was taken for one (``"doctor"``, ``"emulate mcp"``, ``"dcotor"``); None means the
    arguments were the proxy's own (no subcommand), as in an MCP client's configuration.
    """

    def __init__(self, message: str, *, fix: str | None, usage: str, command: str | None) -> None:
        super().__init__(message, fix=fix)
        self.usage = usage
        self.command = command


class SigningError(Sigv4ProxyError):
    """A request or parameter that cannot be signed (bad URL, expiry out of range, ...)."""

    exit_code = 2
    kind = "signing"


class ConfigError(Sigv4ProxyError):
    """One or more configuration problems, reported all at once, one per line.

    The first line carries the ``configuration error: `` prefix (the CLI adds ``ERROR: ``), exactly as the
    troubleshooting guide users follow shows it.
    """

    kind = "configuration"

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("configuration error: " + "\n".join(self.problems))


class CredentialsError(Sigv4ProxyError):
    """Credentials could not be loaded or refreshed; the message names the fix."""

    kind = "credentials"


class MissingExtraError(Sigv4ProxyError):
    """A command needs an optional dependency group (an "extra") that is not installed."""

    kind = "missing-dependency"
