"""The `sigv4-proxy` command line.

With no subcommand it runs the MCP stdio proxy (flags in :mod:`sigv4_proxy.cli.proxy`). Every subcommand
lives in its own module ``sigv4_proxy.cli.<name>`` exposing::

    HELP: str                                   # one line for the command list
    def configure(parser: argparse.ArgumentParser) -> None
    def run(args: argparse.Namespace) -> int    # the exit code

Those modules import only the standard library at module level; `run` imports what it needs, so start-up
stays fast for the proxy that an MCP client launches on every session.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from sigv4_proxy.errors import Sigv4ProxyError

# Subcommands in the order `--help` lists them. A module that does not exist yet is simply not offered.
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
    "demo",
)


def _load(name: str) -> ModuleType | None:
    module_name = f"sigv4_proxy.cli.{name.replace('-', '_')}"
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise


def build_parser() -> argparse.ArgumentParser:
    from sigv4_proxy.cli import proxy

    parser = argparse.ArgumentParser(
        prog="sigv4-proxy",
        description=proxy.DESCRIPTION,
        epilog=proxy.EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    proxy.configure(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name in SUBCOMMANDS:
        module = _load(name)
        if module is None:
            continue
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
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except Sigv4ProxyError as exc:
        # Error messages quote other people's text (a server's error body, a URL, a token's fields): control
        # characters are shown as escapes, never sent to the terminal. Imported here, off the start-up path.
        from sigv4_proxy.terminal import printable

        print(f"ERROR: {printable(str(exc), layout=True)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
