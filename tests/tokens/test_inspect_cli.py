"""`sigv4-proxy inspect`: text and JSON output, exit codes, stdin/@file input, --verify/--compare/--header."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from sigv4_proxy import dsql_token, sign
from sigv4_proxy.cli import main
from tests.tokens.corpus import HOST, LONG, SECRET, TEMP, hand_signed
from tests.tokens.helpers import NOW

GOOD = dsql_token(HOST, credentials=TEMP, now=NOW)
JAVA = hand_signed(token_host=f"{HOST}:5432")
AT = ["--now", "2024-05-01T12:01:00Z"]


@pytest.fixture(autouse=True)
def env_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", LONG.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_no_secrets(text: str, token: str) -> None:
    signature = token.rsplit("X-Amz-Signature=", 1)[1]
    assert signature not in text
    assert SECRET not in text
    assert TEMP.session_token is not None and TEMP.session_token not in text


def test_good_token_text(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "inspect", GOOD, *AT)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert "  type            Aurora DSQL (db-token)" in lines
    assert "  host            abc123.dsql.us-east-1.on.aws" in lines
    assert "  access key      ASIA****MPLE  (temporary (STS: role, SSO, session))" in lines
    assert "  expires         2024-05-01 12:15:00 UTC  (900 s; 14 min left)" in lines
    assert "  scope           20240501 / us-east-1 / dsql / aws4_request" in lines
    assert "  session token   present (38 chars)" in lines
    assert lines[-1] == "✓ no errors found"
    assert_no_secrets(out, GOOD)


def test_java_token_fails_with_the_diagnosis(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "inspect", JAVA, *AT)
    assert code == 1
    assert (
        "✗ error: the host carries a port ('abc123.dsql.us-east-1.on.aws:5432'): Aurora DSQL signs the bare host "
        "name, so a token for host:port is rejected (the RDS habit — a hand-written or Java signer that signs "
        "host:port)\n    fix: sign for 'abc123.dsql.us-east-1.on.aws' without ':5432': sigv4-proxy dsql-token "
        "--hostname abc123.dsql.us-east-1.on.aws\n"
    ) in out


def test_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "inspect", JAVA, "--json", "--user", "admin", *AT)
    document = json.loads(out)
    assert code == 1 and document["token"]["ok"] is False
    assert document["token"]["fields"]["port"] == 5432
    assert [f["code"] for f in document["token"]["findings"]] == ["port_in_host", "admin_needs_admin_action"]


def test_token_from_stdin_file_and_postgres_url(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(GOOD + "\n"))
    assert run_cli(capsys, "inspect", "-", *AT)[0] == 0
    (tmp_path / "token").write_text(GOOD)
    assert run_cli(capsys, "inspect", f"@{tmp_path / 'token'}", *AT)[0] == 0
    from urllib.parse import quote

    url = f"postgresql://admin:{quote(GOOD, safe='')}@{HOST}:5432/postgres?sslmode=require"
    code, out, _ = run_cli(capsys, "inspect", url, "--user", "admin", *AT)
    assert code == 1  # a DbConnect token for admin
    assert "· info: the token was taken from the password of a postgresql:// URL" in out
    assert "✗ error: the 'admin' role needs a DbConnectAdmin token; this token is DbConnect" in out


def test_verify_with_the_chain(capsys: pytest.CaptureFixture[str]) -> None:
    token = dsql_token(HOST, credentials=LONG, now=NOW)
    code, out, _ = run_cli(capsys, "inspect", token, "--verify", *AT)
    assert code == 0
    assert "✓ verify: the signature matches: the token was signed with this secret key over exactly what it says" in out


def test_verify_marks_the_first_differing_line(capsys: pytest.CaptureFixture[str]) -> None:
    token = hand_signed(signed_host=f"{HOST}:5432")
    code, out, _ = run_cli(capsys, "inspect", token, "--verify", *AT)
    assert code == 1
    assert ">>  4 | host:abc123.dsql.us-east-1.on.aws\n" in out
    assert ">>  4 | host:abc123.dsql.us-east-1.on.aws:5432\n" in out
    assert "    first difference: line 4 (marked >>)" in out


def test_verify_with_another_key_explains(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "inspect", GOOD, "--verify", *AT)
    assert code == 1
    assert (
        "✗ verify: cannot verify: the token was signed with access key ASIA****MPLE, but your credentials are "
        "AKIA****MPLE; use --profile or --secret-access-key-file for the token's key"
    ) in out
    code, out, _ = run_cli(capsys, "inspect", GOOD, "--verify", "--secret-access-key", SECRET, *AT)
    assert code == 0, out
    assert_no_secrets(out, GOOD)


def test_verify_against_the_signers_canonical_request(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    token = hand_signed(signed_host=f"{HOST}:5432")
    theirs = tmp_path / "creq.txt"
    theirs.write_text(f"GET\n/\nAction=DbConnect\nhost:{HOST}:5432\n\nhost\nUNSIGNED-PAYLOAD\n")
    code, out, _ = run_cli(capsys, "inspect", token, "--verify", "--canonical-request", str(theirs), *AT)
    assert code == 1
    assert ">>  3 | Action=DbConnect\n" in out
    assert "    first difference: line 3 (marked >>)" in out


def test_compare(capsys: pytest.CaptureFixture[str]) -> None:
    good = dsql_token(HOST, credentials=LONG, now=NOW)
    code, out, _ = run_cli(capsys, "inspect", good, "--compare", JAVA, *AT)
    assert code == 1  # the second token has an error
    assert f"* host       {HOST}  |  {HOST}:5432" in out
    assert out.rstrip().endswith(
        f"The signatures differ because of host ({HOST} vs {HOST}:5432): the signed host differs: the host (with "
        "any port) is part of the canonical request."
    )
    code, out, _ = run_cli(capsys, "inspect", good, "--compare", JAVA, "--json", *AT)
    document = json.loads(out)
    assert document["compare"]["differences"][0] == {
        "field": "host",
        "left": HOST,
        "right": f"{HOST}:5432",
        "signed": True,
    }


def test_authorization_header(capsys: pytest.CaptureFixture[str]) -> None:
    url = "https://abc123.execute-api.us-east-1.amazonaws.com/prod/mcp"
    signed = sign(
        "POST",
        url,
        {"content-type": "application/json"},
        b"{}",
        credentials=LONG,
        region="us-east-1",
        service="execute-api",
        now=NOW,
    )
    headers = [arg for name, value in signed.headers if name != "Authorization" for arg in ("-H", f"{name}: {value}")]
    argv = ["inspect", "--header", signed.authorization, "--url", url, "-X", "POST", *headers, "--data", "{}", *AT]
    code, out, _ = run_cli(capsys, *argv, "--verify")
    assert code == 0, out
    assert "  type            Authorization header (authorization-header)" in out
    assert "✓ verify: the signature matches" in out
    # the wrong service is caught from the host, and the wrong body by the signature
    bad = signed.authorization.replace("/execute-api/", "/lambda/")
    code, out, _ = run_cli(capsys, "inspect", "--header", bad, "--url", url, *headers, *AT)
    assert code == 1
    assert (
        "✗ error: the credential scope names service 'lambda', but host "
        "'abc123.execute-api.us-east-1.amazonaws.com' is an endpoint of service 'execute-api'"
    ) in out
    code, out, _ = run_cli(capsys, *argv[:-2], "--data", "{ }", *AT, "--verify")
    assert code == 1 and "✗ verify: the signature does not match" in out


def test_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "inspect", "   ")
    assert (code, out, err) == (2, "", "ERROR: nothing to inspect: the token is empty\n")
    code, _, err = run_cli(capsys, "inspect", "--header", "Bearer abc")
    assert code == 2 and err.startswith("ERROR: not a SigV4 Authorization header: expected 'AWS4-HMAC-SHA256 ")
    code, _, err = run_cli(capsys, "inspect", "@/nonexistent/token")
    assert (code, err) == (2, "ERROR: cannot read /nonexistent/token: No such file or directory\n")


# --- terminal safety: a hostile token is shown, never obeyed ---------------------------------------------------

OSC52 = "\x1b]52;c;aGVsbG8=\x07"  # "set the clipboard to 'hello'"
# A token whose fields carry escape sequences: a raw ESC[2J after the host, OSC 52 in Action, a line break,
# a fake verdict, BEL and a bidi override in DBUser, an ESC[31m in the scope's service.
HOSTILE = hand_signed(
    token_host=HOST + "\x1b[2J",
    params=[("Action", "DbConnect" + OSC52), ("DBUser", "x\n✓ no problems found\x07\u202e")],
    service="dsql\x1b[31m",
)
WARNING = (
    "WARNING: --secret-access-key is visible to other users in the process list (ps); use "
    "--secret-access-key-file PATH, --secret-access-key-file - (stdin) or the SIGV4_PROXY_SECRET_ACCESS_KEY "
    "environment variable instead\n"
)
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def test_hostile_token_fields_are_escaped_in_text_output(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["inspect", HOSTILE, "--compare", HOSTILE.replace("DBUser=x", "DBUser=y"), *AT]
    code, out, _ = run_cli(capsys, *argv, "--verify")
    assert code == 1 and RAW_CONTROL.search(out) is None, out
    lines = out.splitlines()
    assert f"  host            {HOST}\\x1b[2J" in lines
    assert "  action          DbConnect\\x1b]52;c;aGVsbG8=\\x07" in lines
    assert "  db user         x\\n✓ no problems found\\x07\\u202e" in lines  # one line: no fake verdict line
    assert "  scope           20240501 / us-east-1 / dsql\\x1b[31m / aws4_request" in lines
    assert (
        "✗ error: Action 'DbConnect\\x1b]52;c;aGVsbG8=\\x07' is not valid for RDS IAM tokens (expected "
        "connect)" in lines
    )
    assert "* DBUser  x\\n✓ no problems found\\x07\\u202e  |  y\\n✓ no problems found\\x07\\u202e" in lines


def test_hostile_token_json_output_is_escaped_by_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "inspect", HOSTILE, "--json", *AT)
    assert code == 1 and RAW_CONTROL.search(out) is None
    fields = json.loads(out)["token"]["fields"]
    assert fields["action"] == "DbConnect" + OSC52  # the exact value, for programs


def test_hostile_token_verification_output_is_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    tampered = HOSTILE.replace("DBUser=x", "DBUser=z")  # the canonical requests are shown, host line included
    code, out, _ = run_cli(capsys, "inspect", tampered, "--verify", *AT)
    assert code == 1 and "✗ verify: the signature does not match" in out
    assert RAW_CONTROL.search(out) is None, out
    assert f"   4 | host:{HOST}\\x1b[2J\n" in out


# --- the secret key for --verify, kept out of the process list ------------------------------------------------


def test_secret_key_from_a_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(SECRET + "\n")
    code, out, err = run_cli(capsys, "inspect", GOOD, "--verify", "--secret-access-key-file", str(key_file), *AT)
    assert (code, err) == (0, ""), out
    assert "✓ verify: the signature matches" in out
    assert_no_secrets(out, GOOD)


def test_secret_key_from_stdin(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(SECRET + "\n"))
    code, out, err = run_cli(capsys, "inspect", GOOD, "--verify", "--secret-access-key-file", "-", *AT)
    assert (code, err) == (0, ""), out


def test_secret_key_typed_at_a_terminal_is_not_echoed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    prompts: list[str] = []
    monkeypatch.setattr("sys.stdin", Terminal())
    monkeypatch.setattr("getpass.getpass", lambda prompt: prompts.append(prompt) or SECRET)
    code, out, _ = run_cli(capsys, "inspect", GOOD, "--verify", "--secret-access-key-file", "-", *AT)
    assert (code, prompts) == (0, ["secret access key: "]), out


def test_secret_key_from_the_environment(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGV4_PROXY_SECRET_ACCESS_KEY", SECRET)
    code, out, err = run_cli(capsys, "inspect", GOOD, "--verify", *AT)  # the chain's key (AKIA) is not the token's
    assert (code, err) == (0, ""), out


def test_secret_key_on_the_command_line_warns(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "inspect", GOOD, "--verify", "--secret-access-key", SECRET, *AT)
    assert code == 0, out
    assert err == WARNING


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--secret-access-key", SECRET, "--secret-access-key-file", "-"],
            "give the secret access key once: --secret-access-key or --secret-access-key-file, not both",
        ),
        (
            ["--secret-access-key-file", "/nonexistent/key"],
            "cannot read --secret-access-key-file /nonexistent/key: No such file or directory",
        ),
        (["--secret-access-key-file", "EMPTY"], "--secret-access-key-file EMPTY: the secret access key is empty"),
    ],
)
def test_secret_key_problems(
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "EMPTY").write_text("\n")
    code, out, err = run_cli(capsys, "inspect", GOOD, "--verify", *argv, *AT)
    assert (code, out) == (2, "")
    assert err.endswith(f"ERROR: {message}\n")
    assert SECRET not in err


def test_only_one_input_from_stdin(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "inspect", "-", "--verify", "--secret-access-key-file", "-")
    assert (code, err) == (2, "ERROR: only one of TOKEN and --secret-access-key-file can be read from stdin\n")
    code, _, err = run_cli(capsys, "inspect", "-", "--compare", "-", "--secret-access-key-file", "-")
    assert (code, err) == (
        2,
        "ERROR: only one of TOKEN, --compare and --secret-access-key-file can be read from stdin\n",
    )
