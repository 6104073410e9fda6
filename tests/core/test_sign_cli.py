"""Every case of the AWS suite through `sigv4-proxy sign --raw-request` (credentials from the environment)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sigv4_proxy.cli import main
from sigv4_proxy.signing import v4a
from tests.vectors import ALL_CASES, Case

HEADER_CASES = [c for c in ALL_CASES if c.has("header-canonical-request.txt")]


def case_env(case: Case) -> dict[str, str]:
    creds = case.context["credentials"]
    env = {"AWS_ACCESS_KEY_ID": creds["access_key_id"], "AWS_SECRET_ACCESS_KEY": creds["secret_access_key"]}
    if "token" in creds:
        env["AWS_SESSION_TOKEN"] = creds["token"]
    return env


def case_args(case: Case, variant: str) -> list[str]:
    ctx = case.context
    args = [
        "sign",
        "--raw-request",
        str(case.folder / "request.txt"),
        "--region",
        ctx["region"],
        "--service-name",
        ctx["service"],
        "--sig-version",
        case.algorithm,
        "--timestamp",
        ctx["timestamp"],
        "--output",
        "json",
    ]
    if variant == "query":
        args += ["--presign", "--expires-in", str(ctx["expiration_in_seconds"])]
    elif ctx["sign_body"]:
        args.append("--content-sha256")
    if not ctx["normalize"]:
        args.append("--no-normalize-path")
    if ctx.get("omit_session_token"):
        args.append("--omit-session-token")
    return args


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return monkeypatch


@pytest.mark.parametrize("variant", ["header", "query"])
@pytest.mark.parametrize("case", HEADER_CASES, ids=lambda c: c.id)
def test_sign_cli_matches_suite(case: Case, variant: str, clean_env, capsys) -> None:
    for name, value in case_env(case).items():
        clean_env.setenv(name, value)
    assert main(case_args(case, variant)) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["canonical_request"] == case.file(f"{variant}-canonical-request.txt")
    assert out["string_to_sign"] == case.file(f"{variant}-string-to-sign.txt")
    if case.algorithm == "v4":
        assert out["signature"] == case.file(f"{variant}-signature.txt").strip()
    else:
        key = v4a.public_key_from_xy(*case.public_key)
        assert v4a.verify_signature(key, out["string_to_sign"], out["signature"])


def test_sign_cli_as_a_process_prints_exact_outputs(tmp_path) -> None:
    case = next(c for c in HEADER_CASES if c.id == "v4/get-vanilla-with-session-token")
    env = {**os.environ, **case_env(case), "AWS_CONFIG_FILE": str(tmp_path / "none")}
    base = [sys.executable, "-m", "sigv4_proxy", *case_args(case, "header")[:-2]]
    for output, expected in [
        ("canonical-request", case.file("header-canonical-request.txt") + "\n"),
        ("string-to-sign", case.file("header-string-to-sign.txt") + "\n"),
    ]:
        done = subprocess.run([*base, "--output", output], env=env, capture_output=True, text=True, check=True)
        assert done.stdout == expected
    done = subprocess.run([*base, "--output", "headers"], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == (
        "Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date;x-amz-security-token, "
        "Signature=07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["sign", "GET", "https://example.com/"],
            "ERROR: --region and --service-name required: they cannot be inferred from 'example.com'\n",
        ),
        (
            ["sign", "GET", "https://example.com/", "--region", "us-east-1"],
            "ERROR: --service-name required: they cannot be inferred from 'example.com'\n",
        ),
        (["sign", "GET"], "ERROR: sign needs METHOD and URL (or --raw-request FILE)\n"),
        (
            ["sign", "GET", "https://abc.execute-api.us-east-1.amazonaws.com/", "-H", "nocolon"],
            "ERROR: a header must look like 'Name: value', got: 'nocolon'\n",
        ),
        (
            ["sign", "GET", "https://abc.execute-api.us-east-1.amazonaws.com/", "--presign", "--expires-in", "0"],
            "ERROR: expires_in must be between 1 and 604800 seconds (7 days), got: 0\n",
        ),
        (
            ["sign", "GET", "https://abc.execute-api.us-east-1.amazonaws.com/", "--timestamp", "yesterday"],
            "ERROR: --timestamp must be ISO 8601, e.g. 2015-08-30T12:36:00Z, got: yesterday\n",
        ),
        (
            ["sign", "GET", "https://abc.execute-api.us-east-1.amazonaws.com/", "--output", "url"],
            "ERROR: --output url needs --presign (header signing leaves the URL unchanged)\n",
        ),
    ],
)
def test_sign_cli_usage_errors_are_one_line_exit_2(args, message, clean_env, capsys) -> None:
    clean_env.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    clean_env.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.err == message
    assert captured.out == ""


def test_sign_cli_without_credentials_says_how_to_configure_them(clean_env, capsys) -> None:
    assert main(["sign", "GET", "https://abc.execute-api.us-east-1.amazonaws.com/"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ERROR: failed to load AWS credentials: ")
    assert err.endswith(
        "(ensure AWS credentials are configured via environment variables, ~/.aws/credentials, or IAM role)\n"
    )


# --- control characters in what is signed: exact into a pipe, escaped on a terminal ---------------------------

EVIL_HEADER = "X-Evil: a\x1b[2Jb\x07\u202ec"
EVIL_SHOWN = "a\\x1b[2Jb\\x07\\u202ec"
EVIL_ARGS = [
    "sign",
    "GET",
    "https://abc.execute-api.us-east-1.amazonaws.com/p",
    "-H",
    EVIL_HEADER,
    "--timestamp",
    "2015-08-30T12:36:00Z",
]
DRIVES_A_TERMINAL = ("\x1b", "\x07", "\u202e")


@pytest.mark.parametrize("output", ["canonical-request", "headers", "curl"])
def test_sign_cli_escapes_control_characters_on_a_terminal(output, clean_env, capsys, monkeypatch) -> None:
    clean_env.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    clean_env.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    assert main([*EVIL_ARGS, "--output", output]) == 0
    exact = capsys.readouterr().out
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert main([*EVIL_ARGS, "--output", output]) == 0
    shown, err = capsys.readouterr()
    assert not any(char in shown for char in DRIVES_A_TERMINAL), shown
    assert EVIL_SHOWN in shown
    assert shown.count("\n") == exact.count("\n")  # the layout (the canonical request's lines) is kept
    assert shown == exact.replace("a\x1b[2Jb\x07\u202ec", EVIL_SHOWN)
    assert err.startswith("note: control characters in the output are shown as escapes")


def test_sign_cli_on_a_terminal_without_control_characters_prints_no_note(clean_env, capsys, monkeypatch) -> None:
    clean_env.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    clean_env.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert main(["sign", "GET", "https://abc.execute-api.us-east-1.amazonaws.com/p", "-H", "X-A: b\tc"]) == 0
    out, err = capsys.readouterr()
    assert "\nX-A: b\tc\n" in out and err == ""  # a tab is layout


def test_sign_cli_stays_byte_exact_into_a_pipe(tmp_path) -> None:
    """Scripts get the bytes that were signed, control characters and all (the signed request itself)."""
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "secret-key-example",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }
    env.pop("AWS_SESSION_TOKEN", None)
    done = subprocess.run(
        [sys.executable, "-m", "sigv4_proxy", *EVIL_ARGS, "--output", "headers"],
        env=env,
        capture_output=True,
        check=True,
    )
    assert "\nX-Evil: a\x1b[2Jb\x07\u202ec\n".encode() in done.stdout
    assert done.stderr == b""
