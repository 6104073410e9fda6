"""The subcommand registry (`sigv4_proxy.cli.SUBCOMMANDS`) fails loudly on a module of ours that is missing.

A typo in a command's name, or a module left out of the package, used to drop the command from `--help`
without a word (issue 10 item 10); only an uninstalled optional dependency is a user's matter (its one-line
message is tested in test_cli_extras.py).
"""

from __future__ import annotations

import importlib.util

import pytest

from sigv4_proxy import cli


@pytest.mark.parametrize("name", cli.SUBCOMMANDS)
def test_every_listed_command_has_its_module(name: str) -> None:
    assert importlib.util.find_spec(f"sigv4_proxy.cli.{name.replace('-', '_')}") is not None


def test_a_command_without_its_module_raises_instead_of_vanishing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "SUBCOMMANDS", (*cli.SUBCOMMANDS, "sing"))
    with pytest.raises(ModuleNotFoundError) as raised:
        cli.build_parser()
    assert raised.value.name == "sigv4_proxy.cli.sing"


def test_a_missing_module_of_ours_is_never_reported_as_an_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Even one whose last part is an extra's module name (`sigv4_proxy.mcp`): the traceback is the report."""
    from sigv4_proxy.cli import help as help_command

    def broken(args: object) -> int:
        raise ModuleNotFoundError("No module named 'sigv4_proxy.mcp'", name="sigv4_proxy.mcp")

    monkeypatch.setattr(help_command, "run", broken)
    with pytest.raises(ModuleNotFoundError):
        cli.main(["help"])
