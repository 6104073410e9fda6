"""`sigv4-proxy dsql-token` / `rds-token`: the library's token on stdout, clear errors on stderr."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sigv4_proxy import dsql_token, rds_token
from sigv4_proxy.cli import main
from sigv4_proxy.signing.model import Credentials
from tests.tokens.helpers import AWKWARD_TOKEN, NOW, SECRET, TEMP_KEY

TIMESTAMP = "2024-05-01T12:00:00Z"
CREDS = Credentials(TEMP_KEY, SECRET, AWKWARD_TOKEN)


@pytest.fixture(autouse=True)
def env_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", TEMP_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", AWKWARD_TOKEN)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("admin", [False, True])
def test_dsql_token_prints_the_library_token(capsys: pytest.CaptureFixture[str], admin: bool) -> None:
    argv = ["dsql-token", "--hostname", "abc.dsql.us-east-1.on.aws", "--timestamp", TIMESTAMP, "--expires-in", "3600"]
    code, out, err = run_cli(capsys, *argv, *(["--admin"] if admin else []))
    assert (code, err) == (0, "")
    assert (
        out == dsql_token("abc.dsql.us-east-1.on.aws", admin=admin, expires_in=3600, credentials=CREDS, now=NOW) + "\n"
    )


def test_dsql_token_cluster_host_for_a_vpc_endpoint(capsys: pytest.CaptureFixture[str]) -> None:
    vpce = "vpce-0123abcd-xyz.dsql.us-east-1.vpce.amazonaws.com"
    code, out, err = run_cli(capsys, "dsql-token", "--hostname", vpce, "--timestamp", TIMESTAMP)
    assert code == 2
    assert err == (
        f"ERROR: {vpce} is an interface VPC endpoint; Aurora DSQL checks the token against the cluster's own host "
        "name: add --cluster-host <cluster-id>.dsql.us-east-1.on.aws (and keep connecting to the endpoint)\n"
    )
    code, out, err = run_cli(
        capsys,
        "dsql-token",
        "--hostname",
        vpce,
        "--cluster-host",
        "abc.dsql.us-east-1.on.aws",
        "--timestamp",
        TIMESTAMP,
    )
    assert code == 0
    assert out == dsql_token("abc.dsql.us-east-1.on.aws", credentials=CREDS, now=NOW) + "\n"


def test_rds_token_prints_the_library_token(capsys: pytest.CaptureFixture[str]) -> None:
    host = "mydb.c9akciq32.us-east-1.rds.amazonaws.com"
    expected = rds_token(host, 3306, "iam user", credentials=CREDS, now=NOW) + "\n"
    code, out, _ = run_cli(
        capsys, "rds-token", "--hostname", host, "--port", "3306", "--username", "iam user", "--timestamp", TIMESTAMP
    )
    assert (code, out) == (0, expected)
    code, out, _ = run_cli(
        capsys, "rds-token", "--hostname", f"{host}:3306", "--username", "iam user", "--timestamp", TIMESTAMP
    )
    assert (code, out) == (0, expected)


def test_rds_token_needs_a_port(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(
        capsys, "rds-token", "--hostname", "mydb.c9akciq32.us-east-1.rds.amazonaws.com", "--username", "u"
    )
    assert (code, out) == (2, "")
    assert err == (
        "ERROR: --port is required (the port your client connects to: 5432 for PostgreSQL, 3306 for MySQL), or "
        "give it as --hostname HOST:PORT\n"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["dsql-token", "--hostname", "abc.dsql.us-east-1.on.aws", "--expires-in", "604801"],
            "ERROR: expires_in must be between 1 and 604800 seconds (7 days), got: 604801\n",
        ),
        (
            ["dsql-token", "--hostname", "abc.dsql.us-east-1.on.aws", "--timestamp", "yesterday"],
            "ERROR: --timestamp must be ISO 8601, e.g. 2015-08-30T12:36:00Z, got: yesterday\n",
        ),
        (
            ["dsql-token", "--hostname", "localhost"],
            "ERROR: region is required: it cannot be inferred from host 'localhost' (only "
            "<cluster-id>.dsql.<region>.on.aws names carry it); pass --region (region= in Python)\n",
        ),
    ],
)
def test_token_usage_errors(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code, out, err = run_cli(capsys, *argv)
    assert (code, out, err) == (2, "", message)


def test_missing_credentials_exit_1_with_the_published_message(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    code, out, err = run_cli(capsys, "dsql-token", "--hostname", "abc.dsql.us-east-1.on.aws")
    assert (code, out) == (1, "")
    assert err.startswith("ERROR: failed to load AWS credentials: ")
    assert err.endswith(
        "(ensure AWS credentials are configured via environment variables, ~/.aws/credentials, or IAM role)\n"
    )


def test_token_commands_through_the_console_script() -> None:
    """The real process: stdout carries the token and nothing else."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sigv4_proxy",
            "dsql-token",
            "--hostname",
            "abc.dsql.us-east-1.on.aws",
            "--timestamp",
            TIMESTAMP,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == dsql_token("abc.dsql.us-east-1.on.aws", credentials=CREDS, now=NOW) + "\n"
    assert result.stderr == ""
