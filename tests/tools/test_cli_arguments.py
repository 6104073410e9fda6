"""Mistyped and stray arguments get their own message, saying what to type (issue 9 item 1).

The table drives `main()` in-process: argv -> the usage line and the exact ``ERROR:`` line, exit code 2.
The subprocess tests check what an MCP client gets when the mistake is in its configuration (the proxy's own
arguments): the same text as a JSON-RPC error answering its first request, with ``kind`` and ``fix``; and that
a subcommand's mistake never waits for a client.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from sigv4_proxy.cli import SUBCOMMANDS, build_parser, main

URL = "https://abc123.execute-api.us-east-1.amazonaws.com/prod/mcp"
PROXY_USAGE = "usage: sigv4-proxy [options] | sigv4-proxy COMMAND [options]  (sigv4-proxy --help lists them)"
DOCTOR_USAGE = "usage: sigv4-proxy doctor [options]  (sigv4-proxy doctor --help lists them)"
SIGN_USAGE = "usage: sigv4-proxy sign [options] [METHOD] [URL]  (sigv4-proxy sign --help lists them)"
REQUEST_USAGE = "usage: sigv4-proxy request [options] METHOD URL  (sigv4-proxy request --help lists them)"
EMULATE_USAGE = "usage: sigv4-proxy emulate TARGET [options]  (sigv4-proxy emulate --help lists them)"

CASES = [
    pytest.param(
        ["--target-url", URL, "--region us-east-1"],
        PROXY_USAGE,
        'split "--region us-east-1" into two arguments: --region us-east-1 (in an MCP client\'s JSON config: '
        '"--region", "us-east-1")',
        id="flag-and-value-in-one",
    ),
    pytest.param(
        ["--target-url", URL, "--reigon us-east-1"],
        PROXY_USAGE,
        'split "--reigon us-east-1" into two arguments, with the option spelled --region: --region us-east-1 '
        '(in an MCP client\'s JSON config: "--region", "us-east-1")',
        id="mistyped-flag-and-value-in-one",
    ),
    pytest.param(
        ["--warm true"],
        PROXY_USAGE,
        '--warm takes no value: write --warm alone, not "--warm true"',
        id="switch-and-value-in-one",
    ),
    pytest.param([URL], PROXY_USAGE, f"unexpected argument {URL}: pass it as --target-url {URL}", id="bare-url"),
    pytest.param(
        ["abc123.execute-api.us-east-1.amazonaws.com/prod/mcp"],
        PROXY_USAGE,
        f"unexpected argument abc123.execute-api.us-east-1.amazonaws.com/prod/mcp: pass it as --target-url {URL}",
        id="bare-host",
    ),
    pytest.param(
        ["--target-ulr", URL], PROXY_USAGE, "unknown option --target-ulr: did you mean --target-url?", id="typo"
    ),
    pytest.param(
        ["--target-url", URL, "--frobnicate"],
        PROXY_USAGE,
        "unknown option --frobnicate (sigv4-proxy --help lists the options)",
        id="unknown-option-nothing-close",
    ),
    pytest.param(
        ["--json", "doctor"],
        PROXY_USAGE,
        "--json is an option of sigv4-proxy doctor, not of sigv4-proxy: put it after the command "
        "(sigv4-proxy doctor --json ...)",
        id="command-option-before-the-command",
    ),
    pytest.param(
        ["--target-url", URL, "--timeout", "5", "minutes"],
        PROXY_USAGE,
        '--timeout takes one value; "5 minutes" has a space: write --timeout 5m',
        id="duration-with-a-space",
    ),
    pytest.param(
        ["--target-url", URL, "--max-message-bytes", "64", "MiB"],
        PROXY_USAGE,
        '--max-message-bytes takes one value; "64 MiB" has a space: write --max-message-bytes 64MiB',
        id="size-with-a-space",
    ),
    pytest.param(
        ["--target-url", URL, "--headers", "x-team=a", "b"],
        PROXY_USAGE,
        '--headers takes one value, so "b" is left over: quote a value that has a space '
        '(--headers "x-team=a b") or remove "b"',
        id="value-with-a-space",
    ),
    pytest.param(
        ["--region=us-east-1", "--target-url", URL, "doctr"],
        PROXY_USAGE,
        '--target-url takes one value, so "doctr" is left over: quote a value that has a space '
        f'(--target-url "{URL} doctr") or remove "doctr"',
        id="stray-word-is-not-a-command",
    ),
    pytest.param(
        ["--target-url", URL, "--warm", "yes"], PROXY_USAGE, '--warm takes no value: remove "yes"', id="switch-value"
    ),
    pytest.param(["dcotor"], PROXY_USAGE, "unknown command 'dcotor'; did you mean doctor?", id="command-typo"),
    pytest.param(["--warm", "dcotor"], PROXY_USAGE, "unknown command 'dcotor'; did you mean doctor?", id="after-flag"),
    pytest.param(["emulate", "mpc"], EMULATE_USAGE, "unknown target 'mpc'; did you mean mcp?", id="target-typo"),
    pytest.param(
        ["doctor", "--target-ulr", URL],
        DOCTOR_USAGE,
        "unknown option --target-ulr: did you mean --target-url?",
        id="subcommand-typo",
    ),
    pytest.param(
        ["doctor", URL], DOCTOR_USAGE, f"unexpected argument {URL}: pass it as --target-url {URL}", id="doctor-url"
    ),
    pytest.param(
        ["sign", "--reigon", "us-east-1", "GET", URL],
        SIGN_USAGE,
        "unknown option --reigon: did you mean --region?",
        id="sign-typo",
    ),
    pytest.param(
        ["request", "GET", URL, "extra"],
        REQUEST_USAGE,
        "unexpected argument extra (sigv4-proxy request --help lists what it takes)",
        id="one-positional-too-many",
    ),
    # What argparse already says well stays as argparse says it, in the same shape.
    pytest.param(["--timeout"], PROXY_USAGE, "argument --timeout: expected one argument", id="missing-value"),
    pytest.param(["request", "GET"], REQUEST_USAGE, "the following arguments are required: URL", id="missing-url"),
    pytest.param(
        ["--target-url", URL, "--tim", "5", "minutes"],
        PROXY_USAGE,
        '--timeout takes one value; "5 minutes" has a space: write --timeout 5m',
        id="abbreviated-option-named-in-full",
    ),
]


@pytest.fixture(autouse=True)
def no_wait_for_a_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process, a proxy-mode mistake also tries to answer an MCP client on stdin: pytest's captured stdin
    has no descriptor, but under ``pytest -s`` it could be the runner's pipe. Never wait on it."""
    monkeypatch.setenv("SIGV4_PROXY_STARTUP_ERROR_WAIT", "0")


@pytest.mark.parametrize(("argv", "usage", "message"), CASES)
def test_each_mistake_has_its_own_message(
    argv: list[str], usage: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(argv)
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err.splitlines() == [usage, f"ERROR: {message}"]


def test_an_unknown_word_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    commands = ", ".join(SUBCOMMANDS)
    assert main(["frobnicate"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"ERROR: unknown command 'frobnicate'; the commands are: {commands}"
    )


def test_an_invalid_choice_of_an_option_is_argparses_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emulate", "mcp", "--transport", "http"]) == 2
    usage, error = capsys.readouterr().err.splitlines()
    assert usage == "usage: sigv4-proxy emulate mcp [options]  (sigv4-proxy emulate mcp --help lists them)"
    # The list's quoting differs between Python versions (argparse's own words).
    assert error.startswith("ERROR: argument --transport: invalid choice: 'http' (choose from ")


def test_an_ambiguous_abbreviation_is_argparses_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--target-url", URL, "--regio", "us-east-1"]) == 2
    assert (
        capsys.readouterr().err.splitlines()[-1]
        == "ERROR: ambiguous option: --regio could match --region, --region-set"
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["--target-url", URL, "--region=us-east-1"],
        ["--target-url", URL, "--region", "us-east-1"],
        ["--target", URL, "--region", "us-east-1"],  # argparse's unambiguous abbreviations
    ],
)
def test_correct_spellings_still_parse(argv: list[str]) -> None:
    """Passes before the change too: the new parser must not reject what argparse accepted."""
    args = build_parser().parse_args(argv)
    assert (args.target_url, args.region, args.command) == (URL, "us-east-1", None)


# --- what the MCP client sees -----------------------------------------------------------------------------


def proxy_process(*argv: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SIGV4_PROXY_STARTUP_ERROR_WAIT": "30"}  # only a request (or its absence) ends it early
    return subprocess.Popen(
        [sys.executable, "-m", "sigv4_proxy", *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


def test_a_mistake_in_the_proxys_arguments_answers_the_clients_first_request() -> None:
    with proxy_process("--target-url", URL, "--region us-east-1") as process:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(json.dumps(INITIALIZE).encode() + b"\n")
        process.stdin.flush()
        answer = json.loads(process.stdout.readline())
        out, err = process.communicate(timeout=30)
    message = (
        'split "--region us-east-1" into two arguments: --region us-east-1 (in an MCP client\'s JSON config: '
        '"--region", "us-east-1")'
    )
    assert answer == {
        "jsonrpc": "2.0",
        "id": 1,
        "error": {"code": -32000, "message": message, "data": {"kind": "usage", "fix": "--region us-east-1",
                                                               "exit_code": 2}},
    }  # fmt: skip
    assert out == b""
    assert err.decode().splitlines() == [PROXY_USAGE, f"ERROR: {message}"]
    assert process.returncode == 2


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["doctor", "--target-ulr", URL], id="subcommand"),
        pytest.param(["dcotor"], id="unknown-command"),
    ],
)
def test_a_mistake_outside_the_proxy_does_not_wait_for_a_client(argv: list[str]) -> None:
    """stdin stays open and silent: were it waiting for a request, it would take the 30 s wait."""
    started = time.monotonic()
    with proxy_process(*argv) as process:
        assert process.stdout is not None and process.stderr is not None
        process.wait(timeout=25)  # stdin still open (communicate() would close it: end of input ends any wait)
        out, err = process.stdout.read(), process.stderr.read()
    assert time.monotonic() - started < 20
    assert process.returncode == 2
    assert out == b""
    assert err.decode().splitlines()[-1].startswith("ERROR: unknown ")
