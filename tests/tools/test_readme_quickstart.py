"""The README's quick start, done the way its reader does it: the MCP client configuration is taken from the
README's JSON block and launched by the official MCP SDK's stdio client (initialize, tools/list, an `echo`
call), and step 3's `doctor` command line is taken from its bash block and run; both against
`sigv4_proxy.emulate`'s IAM-verifying endpoint on loopback.

Only what cannot be true on a test machine is replaced: the placeholder path becomes this venv's
`sigv4-proxy` executable, the placeholder URL the emulator's, the profile `dev` a throwaway credentials file
holding the emulator's credentials, and, as the README says for a host that is not an AWS name, `--region`
and `--service-name` are added. Step 1 (installing) needs the network, so it is not run here; the install
commands the docs give are checked to install from the clone, never the unpublished package name.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest

from sigv4_proxy.emulate import McpEmulator

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
QUICK_START_HEADING = "## Quick start"
COMMAND_PLACEHOLDER = "/ABSOLUTE/PATH/TO/sigv4-proxy"
URL_PLACEHOLDER = "https://abc123.execute-api.us-east-1.amazonaws.com/prod/mcp"
PROFILE = "dev"
ECHO_TEXT = "hello from the README's quick start"
FENCED_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
# `pip install sigv4-proxy`, `pipx install 'sigv4-proxy[mcp]'`, `uv tool install sigv4-proxy`, ...
PUBLISHED_NAME_INSTALL = re.compile(r"\b(?:pip|pipx|uv tool|uv pip)\s+install\s+(?:-\S+\s+)*['\"]?sigv4-proxy\b")


@dataclass(frozen=True)
class QuickStart:
    """What the README's quick start tells the reader to configure and to run."""

    command: str
    args: list[str]
    env: dict[str, str]
    doctor_command: str
    doctor_args: list[str]
    doctor_env: dict[str, str]


def quick_start_section(markdown: str) -> str:
    """The text from the quick start heading to the next heading of the same level."""
    start = next((m.start() for m in re.finditer(r"^## Quick start\b.*$", markdown, re.MULTILINE)), None)
    assert start is not None, f"README.md has no heading starting with {QUICK_START_HEADING!r}"
    following = re.search(r"^## ", markdown[start + 1 :], re.MULTILINE)
    return markdown[start : start + 1 + following.start()] if following else markdown[start:]


def fenced_blocks(markdown: str, language: str) -> list[str]:
    return [body for lang, body in FENCED_BLOCK.findall(markdown) if lang == language]


def read_quick_start(markdown: str) -> QuickStart:
    section = quick_start_section(markdown)
    configs = fenced_blocks(section, "json")
    assert configs, "the quick start has no ```json block (the MCP client configuration)"
    servers = json.loads(configs[0])["mcpServers"]
    assert len(servers) == 1, f"the configuration should name one server, got {list(servers)}"
    (server,) = servers.values()

    doctor_lines = [
        line for block in fenced_blocks(section, "bash") for line in block.splitlines() if " doctor " in f" {line} "
    ]
    assert len(doctor_lines) == 1, f"the quick start should give one doctor command line, got {doctor_lines}"
    words = shlex.split(doctor_lines[0], comments=True)
    assignments = [word for word in words if re.match(r"^[A-Z_][A-Z0-9_]*=", word)]
    command, subcommand, *doctor_args = words[len(assignments) :]
    assert subcommand == "doctor", doctor_lines[0]
    return QuickStart(
        command=server["command"],
        args=list(server["args"]),
        env=dict(server.get("env", {})),
        doctor_command=command,
        doctor_args=doctor_args,
        doctor_env=dict(assignment.split("=", 1) for assignment in assignments),
    )


def installed_executable() -> str:
    """This venv's `sigv4-proxy`, as `pip install` (here: `python3 dev.py`) created it."""
    found = shutil.which("sigv4-proxy", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail(f"no sigv4-proxy executable beside {sys.executable}: install the project (python3 dev.py test)")
    return found


def localize(args: list[str], emulator: McpEmulator) -> list[str]:
    """The README's args pointed at the emulator; a loopback host names no region or service, so they are
    added as the README says for a host that is not an AWS name."""
    assert URL_PLACEHOLDER in args, f"the placeholder URL is not in {args}"
    pointed = [emulator.url if arg == URL_PLACEHOLDER else arg for arg in args]
    return [*pointed, "--region", emulator.region, "--service-name", emulator.service]


def profile_environment(emulator: McpEmulator, home: Path) -> dict[str, str]:
    """The machine behind `"AWS_PROFILE": "dev"`: a home of its own whose profile holds the emulator's
    throwaway credentials (never the developer's ~/.aws), and no instance metadata service."""
    aws = home / ".aws"
    aws.mkdir(parents=True, exist_ok=True)
    credentials = emulator.credentials
    lines = [
        f"[{PROFILE}]",
        f"aws_access_key_id = {credentials.access_key_id}",
        f"aws_secret_access_key = {credentials.secret_access_key}",
    ]
    if credentials.session_token:
        lines.append(f"aws_session_token = {credentials.session_token}")
    (aws / "credentials").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (aws / "config").write_text(f"[profile {PROFILE}]\n", encoding="utf-8")
    env = {
        "HOME": str(home),
        "AWS_SHARED_CREDENTIALS_FILE": str(aws / "credentials"),
        "AWS_CONFIG_FILE": str(aws / "config"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    if os.environ.get("PYTHONPATH"):  # lets the same test run against another source tree
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


def the_quick_start() -> QuickStart:
    return read_quick_start(README.read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------------- the text
def test_the_configuration_and_the_doctor_line_agree() -> None:
    quick_start = the_quick_start()
    assert PurePosixPath(quick_start.command).is_absolute(), "desktop clients need the executable's absolute path"
    assert quick_start.command == COMMAND_PLACEHOLDER
    assert quick_start.args == ["--target-url", URL_PLACEHOLDER]
    assert quick_start.env == {"AWS_PROFILE": PROFILE}
    # step 3 promises the same executable, flags and variables as the configuration
    assert quick_start.doctor_command == quick_start.command
    assert quick_start.doctor_args == quick_start.args
    assert quick_start.doctor_env == quick_start.env


@pytest.mark.parametrize(
    "source", [README, *sorted((ROOT / "docs").glob("*.md"))], ids=lambda path: str(path.relative_to(ROOT))
)
def test_install_commands_use_the_clone_until_the_package_is_published(source: Path) -> None:
    paragraphs = re.split(r"\n\s*\n", source.read_text(encoding="utf-8"))
    offending = [p.strip() for p in paragraphs if PUBLISHED_NAME_INSTALL.search(p) and "published" not in p]
    assert offending == [], (
        "sigv4-proxy is not on PyPI: install from the clone (pip install .), or say 'once published'"
    )


def test_the_published_name_check_sees_the_forms_it_forbids() -> None:
    for text in (
        "pip install sigv4-proxy",
        "pipx install 'sigv4-proxy[mcp]'",
        "uv tool install sigv4-proxy",
        "pip install -U sigv4-proxy",
    ):
        assert PUBLISHED_NAME_INSTALL.search(text), text
    for text in ("pip install .", "pip install '.[mcp]'", "pipx install dist/sigv4_proxy-0.1.0-py3-none-any.whl"):
        assert not PUBLISHED_NAME_INSTALL.search(text), text


# ------------------------------------------------------------------------------------------- done as written
async def test_the_json_block_runs_in_the_official_mcp_client(emulator: McpEmulator, tmp_path: Path) -> None:
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    quick_start = the_quick_start()
    executable = installed_executable()
    env = {**quick_start.env, **profile_environment(emulator, tmp_path / "home")}
    params = StdioServerParameters(command=executable, args=localize(quick_start.args, emulator), env=env)
    seen_before = len(emulator.requests)
    with tempfile.TemporaryFile("w+", encoding="utf-8") as errlog:
        try:
            async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
                initialized = await session.initialize()
                tools = [tool.name for tool in (await session.list_tools()).tools]
                echoed = await session.call_tool("echo", {"message": ECHO_TEXT})
        finally:
            errlog.seek(0)
            stderr = errlog.read()

    assert initialized.server_info.name == "sigv4-proxy-emulator", stderr
    assert "echo" in tools
    assert not echoed.is_error
    assert [getattr(part, "text", None) for part in echoed.content] == [ECHO_TEXT]
    # the credentials came from the profile named in the configuration's "env", and every request verified
    assert f"Credentials: access key {emulator.credentials.masked_access_key}, from shared-credentials-file" in stderr
    signed = emulator.requests[seen_before:]
    assert signed and all(record.ok for record in signed), [record.line() for record in signed]


def test_the_doctor_line_passes(emulator: McpEmulator, tmp_path: Path) -> None:
    quick_start = the_quick_start()
    env = {
        "PATH": os.environ.get("PATH", ""),
        **quick_start.doctor_env,
        **profile_environment(emulator, tmp_path / "home"),
    }
    command = [installed_executable(), "doctor", *localize(quick_start.doctor_args, emulator)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    assert "✗" not in done.stdout, report
    # a loopback target is not AWS, so doctor leaves STS alone: the test never leaves this machine
    assert re.search(r"^- caller identity +skipped: ", done.stdout, re.MULTILINE), report
