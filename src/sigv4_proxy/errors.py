"""Errors a user can hit. Each carries the message printed to them and the process exit code."""

from __future__ import annotations


class Sigv4ProxyError(Exception):
    """Base class: ``str(err)`` is the complete message for the user (cause and fix), no secrets."""

    exit_code = 1


class UsageError(Sigv4ProxyError):
    """Bad command-line input (exit 2, like argparse)."""

    exit_code = 2


class SigningError(Sigv4ProxyError):
    """A request or parameter that cannot be signed (bad URL, expiry out of range, ...)."""

    exit_code = 2


class ConfigError(Sigv4ProxyError):
    """One or more configuration problems, reported all at once, one per line.

    The first line carries the ``configuration error: `` prefix (the CLI adds ``ERROR: ``), exactly as the
    troubleshooting guide users follow shows it.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("configuration error: " + "\n".join(self.problems))


class CredentialsError(Sigv4ProxyError):
    """Credentials could not be loaded or refreshed; the message names the fix."""
