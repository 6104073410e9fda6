"""Secrets given to a command without putting them in the process list.

A command-line argument is readable by every user of the machine (``ps``, ``/proc/PID/cmdline``) and lands in
shell history, so the commands that take a secret (the secret access key of ``inspect --verify`` and
``emulate mcp``, the session token of ``emulate mcp``) also read it from a file, from stdin, or from an
environment variable. The plain flag keeps working, with a warning.

Each secret is described by a :class:`SecretInput` (``--NAME-file PATH|-``, ``--NAME VALUE``, ``$ENV``);
:func:`add_secret_arguments` and :func:`read_secret` do the rest. :data:`SECRET_ACCESS_KEY` and
:data:`SESSION_TOKEN` are the two in use.

Standard library only at module level: ``configure`` runs on every start-up, the proxy's included.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TextIO

__all__ = [
    "SECRET_ACCESS_KEY",
    "SESSION_TOKEN",
    "SecretInput",
    "add_secret_arguments",
    "check_one_stdin_reader",
    "read_secret",
    "wants_stdin",
]


@dataclass(frozen=True)
class SecretInput:
    """One secret: its flag (``--secret-access-key``), the file flag derived from it, its environment
    variable, and what to call it in messages and in the prompt."""

    flag: str
    env: str
    what: str  # "secret access key"
    metavar: str

    @property
    def file_flag(self) -> str:
        return f"{self.flag}-file"

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")

    @property
    def file_dest(self) -> str:
        return self.dest + "_file"

    @property
    def argv_warning(self) -> str:
        return (
            f"WARNING: {self.flag} is visible to other users in the process list (ps); use {self.file_flag} "
            f"PATH, {self.file_flag} - (stdin) or the {self.env} environment variable instead"
        )


SECRET_ACCESS_KEY = SecretInput("--secret-access-key", "SIGV4_PROXY_SECRET_ACCESS_KEY", "secret access key", "KEY")
SESSION_TOKEN = SecretInput("--session-token", "SIGV4_PROXY_SESSION_TOKEN", "session token", "TOKEN")


def add_secret_arguments(parser: argparse._ActionsContainer, secret: SecretInput, what: str) -> None:
    """``--NAME-file PATH|-`` and the discouraged ``--NAME VALUE``; `what` says whose secret it is, for the
    help."""
    parser.add_argument(
        secret.file_flag,
        metavar="PATH|-",
        help=f"{what}, read from PATH, or from stdin with '-' (whitespace around it ignored); or set {secret.env}",
    )
    parser.add_argument(
        secret.flag,
        metavar=secret.metavar,
        help=f"{what}, on the command line: visible to other users in `ps` (prints a warning); prefer "
        f"{secret.file_flag}",
    )


def wants_stdin(args: argparse.Namespace, secret: SecretInput = SECRET_ACCESS_KEY) -> bool:
    return getattr(args, secret.file_dest, None) == "-"


def check_one_stdin_reader(args: argparse.Namespace, *secrets: SecretInput) -> None:
    """Stdin can be read once: a usage error when more than one of `secrets` is to be read from it."""
    from sigv4_proxy.errors import UsageError

    readers = [secret.file_flag for secret in secrets if wants_stdin(args, secret)]
    if len(readers) > 1:
        raise UsageError(f"only one of {', '.join(readers[:-1])} and {readers[-1]} can be read from stdin (-)")


def read_secret(
    args: argparse.Namespace,
    environ: Mapping[str, str],
    secret: SecretInput,
    *,
    use_environment: bool = True,
    stdin: TextIO | None = None,
    stderr: TextIO | None = None,
) -> str | None:
    """The secret from ``--NAME-file``, ``--NAME`` (with a warning on `stderr`) or, when `use_environment`,
    ``$ENV``; None when none is given. The flags win over the environment (an explicit choice for this run
    over a standing setting)."""
    from sigv4_proxy.errors import UsageError

    flag_value, path = getattr(args, secret.dest, None), getattr(args, secret.file_dest, None)
    if flag_value is not None and path is not None:
        raise UsageError(f"give the {secret.what} once: {secret.flag} or {secret.file_flag}, not both")
    if flag_value is not None:
        print(secret.argv_warning, file=stderr if stderr is not None else sys.stderr, flush=True)
        return _non_empty(flag_value, secret.flag, secret)
    if path is not None:
        text = _read(path, stdin if stdin is not None else sys.stdin, secret)
        return _non_empty(text, f"{secret.file_flag} {path}", secret)
    if use_environment and environ.get(secret.env, "").strip():
        return environ[secret.env].strip()
    return None


def _read(path: str, stdin: TextIO, secret: SecretInput) -> str:
    from pathlib import Path

    from sigv4_proxy.errors import UsageError

    if path == "-":
        if stdin.isatty():  # typed by hand: do not echo it to the screen
            import getpass

            return getpass.getpass(f"{secret.what}: ")
        return stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {secret.file_flag} {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"cannot read {secret.file_flag} {path}: not UTF-8 text") from None


def _non_empty(value: str, source: str, secret: SecretInput) -> str:
    from sigv4_proxy.errors import UsageError

    text = value.strip()
    if not text:
        raise UsageError(f"{source}: the {secret.what} is empty")
    return text
