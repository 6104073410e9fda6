"""`sigv4-proxy pg`'s flags and SIGV4_PROXY_PG_* variables: parsing to a PgProxyConfig (no proxy starts), the
HOST[:PORT][=LOCALPORT] / --hostaddr / --cluster-id pairing, every validation message exactly (all problems in
one ERROR, exit 2), --help naming every variable, and the command's extra ([pg-proxy])."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sigv4_proxy.cli import SUBCOMMANDS, build_parser, extra_of_command, main
from sigv4_proxy.cli.pg import MAX_UNIX_PATH, build_pg_config, env_name
from sigv4_proxy.errors import UsageError
from sigv4_proxy.pgproxy import runner
from sigv4_proxy.pgproxy.config import PgProxyConfig, Target

HOST = "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws"
OTHER = "zyxwvutsrqponmlkjihgfedcba.dsql.eu-west-1.on.aws"
RDS = "mydb.cluster-abc123.us-east-1.rds.amazonaws.com"
VPCE = "vpce-0123-abcd.dsql-fnh4.us-east-1.vpce.amazonaws.com"
CLUSTER_ID = "abcdefghijklmnopqrstuvwxyz"
PRIVATE_HOST = "db.internal.example"  # a name that says neither its region nor its kind


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["pg", *argv])


def config_of(*argv: str, env: dict[str, str] | None = None) -> PgProxyConfig:
    return build_pg_config(parse(*argv), env or {})


def problems_of(*argv: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(UsageError) as raised:
        config_of(*argv, env=env)
    assert raised.value.exit_code == 2
    return str(raised.value).splitlines()


def pg_options() -> list[str]:
    """Every long option of `sigv4-proxy pg` but --help."""
    parser = build_parser()
    commands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    return [
        flag
        for action in commands.choices["pg"]._actions
        for flag in action.option_strings
        if flag.startswith("--") and flag != "--help"
    ]


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """PEM-named files (their content is not read when flags are checked) in tmp_path."""
    for name in ("ca.pem", "cert.pem", "key.pem", "clients.pem"):
        (tmp_path / name).write_text("-----BEGIN CERTIFICATE-----\n")
    return tmp_path


# -- every flag and its variable reach the config ---------------------------------------------------------------

SWITCH = None  # a flag without a value (its variable is set to "true")
TLS = ("--tls-cert", "{tmp}/cert.pem", "--tls-key", "{tmp}/key.pem")


def first(config: PgProxyConfig) -> Target:
    return config.targets[0]


# (flag, value, other flags it needs, what to read from the config, what it must be)
FLAG_CASES: list[tuple[str, str | None, tuple[str, ...], Callable[[PgProxyConfig], Any], Any]] = [
    (
        "--hostname",
        f"{HOST}:6543=7000",
        (),
        lambda config: config.targets,
        (Target(HOST, port=6543, listen_port=7000),),
    ),
    ("--hostaddr", "127.0.0.1:15432", (), lambda c: (first(c).hostaddr, first(c).hostaddr_port), ("127.0.0.1", 15432)),
    (
        "--cluster-id",
        CLUSTER_ID,
        ("--hostname", VPCE),
        lambda c: (first(c).cluster_id, first(c).token_host),
        (CLUSTER_ID, HOST),
    ),
    ("--region", "us-east-1", (), lambda c: first(c).region, "us-east-1"),
    ("--profile", "reporting", (), lambda c: c.profile, "reporting"),
    (
        "--database-kind",
        "rds",
        ("--hostname", PRIVATE_HOST, "--region", "eu-west-1"),
        lambda c: first(c).kind,
        "rds",
    ),
    ("--upstream-sslrootcert", "{tmp}/ca.pem", (), lambda c: c.upstream_sslrootcert, "{tmp}/ca.pem"),
    ("--upstream-sslmode", "verify-ca", (), lambda c: c.upstream_sslmode, "verify-ca"),
    ("--upstream-sslnegotiation", "direct", (), lambda c: c.upstream_sslnegotiation, "direct"),
    ("--token-expires-in", "3600", (), lambda c: c.token_expires_in, 3600),
    ("--listen", "127.0.0.2:6000", (), lambda c: (c.listen_host, c.listen_port), ("127.0.0.2", 6000)),
    ("--unix-socket", "{tmp}", (), lambda c: c.unix_socket_dir, "{tmp}"),
    (
        "--allow-remote",
        SWITCH,
        ("--listen", "0.0.0.0:5432", *TLS, "--tls-client-ca", "{tmp}/clients.pem"),
        lambda c: c.allow_remote,
        True,
    ),
    ("--tls-cert", "{tmp}/cert.pem", ("--tls-key", "{tmp}/key.pem"), lambda c: c.tls_cert, "{tmp}/cert.pem"),
    ("--tls-key", "{tmp}/key.pem", ("--tls-cert", "{tmp}/cert.pem"), lambda c: c.tls_key, "{tmp}/key.pem"),
    ("--tls-client-ca", "{tmp}/clients.pem", TLS, lambda c: c.tls_client_ca, "{tmp}/clients.pem"),
    ("--max-connections", "7", (), lambda c: c.max_connections, 7),
    ("--connect-timeout", "2.5s", (), lambda c: c.connect_timeout, 2.5),
    ("--health-port", "0", (), lambda c: c.health_port, 0),
    ("--health-host", "127.0.0.3", ("--health-port", "9090"), lambda c: c.health_host, "127.0.0.3"),
    ("--readiness-dial", SWITCH, ("--health-port", "9090"), lambda c: c.readiness_dial, True),
    ("--max-sigterm-delay", "1m", (), lambda c: c.max_sigterm_delay, 60.0),
    ("--run-connection-test", SWITCH, (), lambda c: c.run_connection_test, True),
    ("--test-user", "reader", ("--run-connection-test",), lambda c: c.test_user, "reader"),
    ("--json-log", SWITCH, (), lambda c: c.json_log, True),
]


def _expected(value: Any, tmp: Path) -> Any:
    """The expected config value with {tmp} filled in: paths as Path, the sslrootcert as the string it is."""
    if value == "{tmp}":
        return tmp
    if isinstance(value, str) and value.startswith("{tmp}/"):
        return value.format(tmp=tmp)
    return value


def _case_argv(flag: str, others: tuple[str, ...], tmp: Path) -> list[str]:
    needs_host = flag != "--hostname" and "--hostname" not in others
    return [*(["--hostname", HOST] if needs_host else []), *(item.format(tmp=tmp) for item in others)]


@pytest.mark.parametrize(("flag", "value", "others", "read", "expected"), FLAG_CASES, ids=[c[0] for c in FLAG_CASES])
def test_each_flag_reaches_the_config(
    flag: str,
    value: str | None,
    others: tuple[str, ...],
    read: Callable[[PgProxyConfig], Any],
    expected: Any,
    files: Path,
) -> None:
    argv = [flag] if value is SWITCH else [flag, value.format(tmp=files)]
    config = config_of(*argv, *_case_argv(flag, others, files))
    assert _comparable(read(config)) == _comparable(_expected(expected, files))


@pytest.mark.parametrize(("flag", "value", "others", "read", "expected"), FLAG_CASES, ids=[c[0] for c in FLAG_CASES])
def test_each_variable_reaches_the_config(
    flag: str,
    value: str | None,
    others: tuple[str, ...],
    read: Callable[[PgProxyConfig], Any],
    expected: Any,
    files: Path,
) -> None:
    env = {env_name(flag): "true" if value is SWITCH else value.format(tmp=files)}
    config = config_of(*_case_argv(flag, others, files), env=env)
    assert _comparable(read(config)) == _comparable(_expected(expected, files))


def _comparable(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


def test_the_cases_cover_every_flag() -> None:
    assert sorted(case[0] for case in FLAG_CASES) == sorted(pg_options())


def test_one_hostname_and_nothing_else_gives_the_defaults() -> None:
    assert config_of("--hostname", HOST) == PgProxyConfig(targets=(Target(HOST),))


@pytest.mark.parametrize(
    ("flag", "flag_value", "env_value", "read", "expected"),
    [
        ("--max-connections", "7", "9", lambda c: c.max_connections, 7),
        ("--listen", "127.0.0.1:6000", "127.0.0.1:7000", lambda c: c.listen_port, 6000),
        ("--region", "us-east-1", "eu-west-1", lambda c: first(c).region, "us-east-1"),
        ("--hostname", HOST, f"{OTHER},{RDS}", lambda c: [t.hostname for t in c.targets], [HOST]),
        ("--hostaddr", "127.0.0.1:1", "10.0.0.1", lambda c: first(c).hostaddr, "127.0.0.1"),
        ("--json-log", SWITCH, "false", lambda c: c.json_log, True),
    ],
)
def test_the_flag_wins_over_its_variable(
    flag: str, flag_value: str | None, env_value: str, read: Callable[[PgProxyConfig], Any], expected: Any
) -> None:
    argv = [flag] if flag_value is SWITCH else [flag, flag_value]
    if flag != "--hostname":
        argv += ["--hostname", HOST]
    assert read(config_of(*argv, env={env_name(flag): env_value})) == expected


def test_an_empty_variable_counts_as_unset() -> None:
    env = {env_name(flag): "  " for flag in pg_options()}
    assert config_of("--hostname", HOST, env=env) == PgProxyConfig(targets=(Target(HOST),))


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("yes", True), ("ON", True), ("0", False), ("no", False)])
def test_a_switch_variable_takes_the_usual_words(raw: str, expected: bool) -> None:
    assert config_of("--hostname", HOST, env={"SIGV4_PROXY_PG_JSON_LOG": raw}).json_log is expected


# -- hostnames, ports and the pairing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "target"),
    [
        (HOST, Target(HOST)),
        (f"{HOST}:6543", Target(HOST, port=6543)),
        (f"{HOST}=0", Target(HOST, listen_port=0)),
        (f"{HOST}:6543=7000", Target(HOST, port=6543, listen_port=7000)),
        (f"https://{HOST}:5432/", Target(HOST)),  # pasted from a console
        (HOST.upper(), Target(HOST)),
        (RDS, Target(RDS, kind="rds")),
        (f"{RDS}:5433", Target(RDS, port=5433, kind="rds")),
        (VPCE + "=6000", None),  # needs --cluster-id: see the messages
    ],
)
def test_a_hostname_item_is_host_upstream_port_and_local_port(item: str, target: Target | None) -> None:
    if target is None:
        assert problems_of("--hostname", item)[0].startswith(f"--hostname {VPCE} is an interface VPC endpoint")
    else:
        assert config_of("--hostname", item).targets == (target,)


def test_hostnames_repeat_and_split_on_commas_and_their_ports_count_up() -> None:
    config = config_of("--hostname", f"{HOST}, {OTHER},", "--hostname", f"{RDS}=7000", "--listen", ":6000")
    assert [target.hostname for target in config.targets] == [HOST, OTHER, RDS]
    assert [target.kind for target in config.targets] == ["dsql", "dsql", "rds"]
    assert [config.listen_port_of(index) for index in range(3)] == [6000, 6001, 7000]


def test_the_hostname_variable_is_comma_separated() -> None:
    config = config_of(env={"SIGV4_PROXY_PG_HOSTNAME": f"{HOST}=6000 , {OTHER}=6001"})
    assert config.targets == (Target(HOST, listen_port=6000), Target(OTHER, listen_port=6001))


def test_listen_port_zero_gives_every_hostname_a_free_port() -> None:
    config = config_of("--hostname", f"{HOST},{OTHER}", "--listen", "127.0.0.1:0")
    assert [config.listen_port_of(index) for index in range(2)] == [0, 0]


def test_the_nth_hostaddr_is_the_nth_hostnames() -> None:
    config = config_of("--hostname", f"{HOST},{OTHER},{RDS}", "--hostaddr", "127.0.0.1:15432,,[::1]:15433")
    assert [(t.hostaddr, t.hostaddr_port, t.dial_host, t.dial_port) for t in config.targets] == [
        ("127.0.0.1", 15432, "127.0.0.1", 15432),
        (None, None, OTHER, 5432),
        ("::1", 15433, "::1", 15433),
    ]


@pytest.mark.parametrize(
    ("raw", "address", "port"),
    [
        ("10.0.0.5", "10.0.0.5", None),
        ("10.0.0.5:6000", "10.0.0.5", 6000),
        ("bastion.example:6000", "bastion.example", 6000),
        ("::1", "::1", None),
        ("[::1]", "::1", None),
        ("[fd00::5]:6000", "fd00::5", 6000),
    ],
)
def test_a_hostaddr_is_an_address_and_maybe_a_port(raw: str, address: str, port: int | None) -> None:
    target = first(config_of("--hostname", HOST, "--hostaddr", raw))
    assert (target.hostaddr, target.hostaddr_port) == (address, port)


def test_hostaddrs_repeat_and_come_from_the_variable() -> None:
    repeated = config_of("--hostname", f"{HOST},{OTHER}", "--hostaddr", "127.0.0.1:1", "--hostaddr", "127.0.0.2:2")
    from_env = config_of("--hostname", f"{HOST},{OTHER}", env={"SIGV4_PROXY_PG_HOSTADDR": "127.0.0.1:1,127.0.0.2:2"})
    for config in (repeated, from_env):
        assert [(t.hostaddr, t.hostaddr_port) for t in config.targets] == [("127.0.0.1", 1), ("127.0.0.2", 2)]


def test_a_cluster_id_pairs_with_its_vpc_endpoint() -> None:
    config = config_of("--hostname", f"{HOST},{VPCE}", "--cluster-id", f",{CLUSTER_ID}")
    plain, endpoint = config.targets
    assert (plain.cluster_id, plain.token_host, plain.extra_options) == (None, HOST, "")
    assert (endpoint.cluster_id, endpoint.token_host, endpoint.extra_options) == (
        CLUSTER_ID,
        HOST,
        f"-c amzn-cluster-id={CLUSTER_ID}",
    )


def test_a_cluster_hosts_own_id_is_accepted() -> None:
    assert first(config_of("--hostname", HOST, "--cluster-id", CLUSTER_ID)).cluster_id == CLUSTER_ID


def test_the_kind_follows_each_hostname_unless_given() -> None:
    inferred = config_of("--hostname", f"{HOST},{RDS},{PRIVATE_HOST}", "--region", "us-east-1")
    assert [target.kind for target in inferred.targets] == ["dsql", "rds", "dsql"]
    given = config_of("--hostname", PRIVATE_HOST, "--region", "us-east-1", "--database-kind", "RDS")
    assert first(given).kind == "rds"


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [
        ("127.0.0.1:6000", "127.0.0.1", 6000),
        (":6000", "127.0.0.1", 6000),
        ("6000", "127.0.0.1", 6000),
        ("localhost:6000", "localhost", 6000),
        ("[::1]:6000", "::1", 6000),
    ],
)
def test_listen_forms(listen: str, host: str, port: int) -> None:
    config = config_of("--hostname", HOST, "--listen", listen)
    assert (config.listen_host, config.listen_port) == (host, port)


def test_a_remote_listener_with_mutual_tls_is_accepted(files: Path) -> None:
    config = config_of(
        "--hostname",
        HOST,
        "--listen",
        "0.0.0.0:5432",
        "--allow-remote",
        *(item.format(tmp=files) for item in TLS),
        "--tls-client-ca",
        str(files / "clients.pem"),
    )
    assert (config.listen_host, config.allow_remote, config.tls_client_ca) == (
        "0.0.0.0",
        True,
        files / "clients.pem",
    )


def test_a_unix_socket_dir_keeps_the_ports_as_socket_names(tmp_path: Path) -> None:
    config = config_of("--hostname", f"{HOST},{OTHER}=6000", "--unix-socket", str(tmp_path))
    assert config.unix_socket_dir == tmp_path
    assert [config.listen_port_of(index) for index in range(2)] == [5432, 6000]


# -- every problem, exactly ---------------------------------------------------------------------------------------

REQUIRED = (
    "--hostname is required (or SIGV4_PROXY_PG_HOSTNAME): the cluster endpoint, e.g. abc123.dsql.us-east-1.on.aws"
)
HOSTNAME_SHAPE = (
    "{where} takes HOST[:PORT][=LOCALPORT] with ports from 1 to 65535 (LOCALPORT 0: any free port), e.g. "
    "abc123.dsql.us-east-1.on.aws=5433, got: {item}"
)
HOSTADDR_SHAPE = (
    "--hostaddr takes ADDR[:PORT] (an IP address or a host name; IPv6 as [::1]:5432) with a port from 1 to 65535, "
    "got: {raw}"
)
REMOTE = (
    "--listen 0.0.0.0 is not a loopback address: anyone who reaches the port logs in with your IAM identity; to "
    "serve other machines, pass --allow-remote and require client certificates with --tls-cert, --tls-key and "
    "--tls-client-ca (missing: {missing})"
)
VPCE_NEEDS_ID = (
    f"--hostname {VPCE} is an interface VPC endpoint: Aurora DSQL reads the cluster from the host name, so name it "
    "with --cluster-id (the first label of CLUSTER-ID.dsql.us-east-1.on.aws), or connect to the endpoint's private "
    "DNS name CLUSTER-ID.dsql-SUFFIX.us-east-1.on.aws instead"
)
NO_REGION = (
    "--hostname {host} does not say its region (CLUSTER.dsql.REGION.on.aws and NAME.ID.REGION.rds.amazonaws.com "
    "names do): pass --region (or SIGV4_PROXY_PG_REGION)"
)

MESSAGE_CASES = [
    pytest.param([], {}, [REQUIRED], id="no-hostname"),
    pytest.param(["--hostname", ""], {}, [REQUIRED], id="empty-hostname"),
    pytest.param([], {"SIGV4_PROXY_PG_HOSTNAME": " , "}, [REQUIRED], id="only-commas-in-the-variable"),
    *(
        pytest.param(
            ["--hostname", item], {}, [HOSTNAME_SHAPE.format(where="--hostname", item=item)], id=f"hostname-{item}"
        )
        for item in (
            f"{HOST}:0",
            f"{HOST}:99999",
            f"{HOST}=65536",
            f"{HOST}=-1",
            f"{HOST}=\u00b2",
            f"{HOST}=",
            "not a host",
            f"postgresql://admin@{HOST}/postgres",
        )
    ),
    pytest.param(
        [],
        {"SIGV4_PROXY_PG_HOSTNAME": f"{HOST}=x"},
        [HOSTNAME_SHAPE.format(where="SIGV4_PROXY_PG_HOSTNAME", item=f"{HOST}=x")],
        id="hostname-variable",
    ),
    pytest.param(
        ["--hostname", f"{HOST},{OTHER}", "--hostaddr", "127.0.0.1"],
        {},
        [
            "--hostaddr gives 1 value for 2 hostnames: give one per hostname, in the same order, an empty one for a "
            "hostname that needs none (e.g. --hostaddr ,127.0.0.1)"
        ],
        id="one-hostaddr-two-hostnames",
    ),
    pytest.param(
        ["--hostname", HOST, "--hostaddr", "127.0.0.1,127.0.0.2"],
        {},
        [
            "--hostaddr gives 2 values for 1 hostname: give one per hostname, in the same order, an empty one for a "
            "hostname that needs none (e.g. --hostaddr ,127.0.0.1)"
        ],
        id="two-hostaddrs-one-hostname",
    ),
    pytest.param(
        ["--hostname", f"{HOST},{VPCE}"],
        {"SIGV4_PROXY_PG_CLUSTER_ID": CLUSTER_ID},
        [
            "SIGV4_PROXY_PG_CLUSTER_ID gives 1 value for 2 hostnames: give one per hostname, in the same order, an "
            "empty one for a hostname that needs none (e.g. --cluster-id ,abcdefghijklmnopqrstuvwxyz)",
            VPCE_NEEDS_ID,
        ],
        id="cluster-id-count",
    ),
    *(
        pytest.param(["--hostname", HOST, "--hostaddr", raw], {}, [HOSTADDR_SHAPE.format(raw=raw)], id=f"addr-{raw}")
        for raw in ("127.0.0.1:0", "127.0.0.1:x", "[::1]x", "[::1", "a b", "user@host")
    ),
    pytest.param(["--hostname", VPCE], {}, [VPCE_NEEDS_ID], id="vpce-without-cluster-id"),
    pytest.param(
        ["--hostname", VPCE, "--cluster-id", HOST],
        {},
        ["--cluster-id takes the id alone, not a host name: abcdefghijklmnopqrstuvwxyz"],
        id="cluster-id-is-a-host",
    ),
    pytest.param(
        ["--hostname", VPCE, "--cluster-id", "ABC"],
        {},
        [
            "--cluster-id must be 1 to 63 lower-case letters and digits (DSQL's are 26, e.g. "
            "abcdefghijklmnopqrstuvwxyz), got: ABC"
        ],
        id="cluster-id-shape",
    ),
    pytest.param(
        ["--hostname", RDS, "--cluster-id", CLUSTER_ID],
        {},
        [
            f"--cluster-id {CLUSTER_ID} is for Aurora DSQL through a VPC endpoint; it does not apply to the RDS "
            f"hostname {RDS}"
        ],
        id="cluster-id-with-rds",
    ),
    pytest.param(
        ["--hostname", HOST, "--cluster-id", "other"],
        {},
        [
            f"--cluster-id other differs from the cluster of hostname {HOST} ({CLUSTER_ID}): drop it (only a VPC "
            "endpoint's hostname needs --cluster-id)"
        ],
        id="cluster-id-differs",
    ),
    pytest.param(["--hostname", PRIVATE_HOST], {}, [NO_REGION.format(host=PRIVATE_HOST)], id="no-region"),
    pytest.param(
        ["--hostname", HOST, "--region", "eu-west-1"],
        {},
        [f"--region eu-west-1 does not match {HOST}, which is in us-east-1: the token would be refused; drop --region"],
        id="region-mismatch",
    ),
    pytest.param(
        ["--hostname", HOST],
        {"SIGV4_PROXY_PG_REGION": "useast1"},
        ["SIGV4_PROXY_PG_REGION must be an AWS region name such as us-east-1, got: useast1"],
        id="region-shape",
    ),
    pytest.param(
        ["--hostname", HOST, "--database-kind", "aurora"],
        {},
        ["--database-kind must be dsql or rds, got: aurora"],
        id="kind-shape",
    ),
    pytest.param(
        ["--hostname", HOST, "--database-kind", "rds"],
        {},
        [f"--database-kind rds does not fit {HOST}, an Aurora DSQL cluster: drop --database-kind"],
        id="rds-kind-for-dsql-host",
    ),
    pytest.param(
        ["--hostname", RDS],
        {"SIGV4_PROXY_PG_DATABASE_KIND": "dsql"},
        [f"SIGV4_PROXY_PG_DATABASE_KIND dsql does not fit {RDS}, an RDS endpoint: drop SIGV4_PROXY_PG_DATABASE_KIND"],
        id="dsql-kind-for-rds-host",
    ),
    pytest.param(
        ["--hostname", HOST, "--token-expires-in", "604801"],
        {},
        ["--token-expires-in must be a whole number of seconds from 1 to 604800 (7 days, DSQL's limit), got: 604801"],
        id="dsql-token-lifetime",
    ),
    pytest.param(
        ["--hostname", f"{HOST},{RDS}", "--token-expires-in", "901"],
        {},
        [
            "--token-expires-in must be a whole number of seconds from 1 to 900 (RDS IAM tokens last 15 minutes at "
            "most), got: 901"
        ],
        id="rds-token-lifetime",
    ),
    pytest.param(
        ["--hostname", HOST, "--token-expires-in", "0"],
        {},
        ["--token-expires-in must be a whole number of seconds from 1 to 604800 (7 days, DSQL's limit), got: 0"],
        id="token-lifetime-zero",
    ),
    *(
        pytest.param(
            ["--hostname", HOST, "--listen", listen],
            {},
            [f"--listen must be HOST:PORT with a port from 0 to 65535 (IPv6 in brackets: [::1]:5432), got: {listen}"],
            id=f"listen-{listen}",
        )
        for listen in ("127.0.0.1:65536", "127.0.0.1", "::1:5432", "[::1]", "127.0.0.1:x")
    ),
    pytest.param(
        ["--hostname", HOST, "--listen", "0.0.0.0:5432"],
        {},
        [REMOTE.format(missing="--allow-remote, --tls-cert, --tls-key, --tls-client-ca")],
        id="remote-without-anything",
    ),
    pytest.param(
        ["--hostname", HOST, "--listen", "0.0.0.0:5432", "--allow-remote", *TLS],
        {},
        [REMOTE.format(missing="--tls-client-ca")],
        id="remote-without-client-certificates",
    ),
    pytest.param(
        ["--hostname", HOST, "--listen", "0.0.0.0:5432", *TLS, "--tls-client-ca", "{tmp}/clients.pem"],
        {},
        [REMOTE.format(missing="--allow-remote")],
        id="remote-without-allow-remote",
    ),
    pytest.param(
        ["--hostname", HOST, "--tls-cert", "{tmp}/cert.pem"],
        {},
        ["--tls-cert needs --tls-key (the certificate's private key)"],
        id="cert-without-key",
    ),
    pytest.param(
        ["--hostname", HOST, "--tls-key", "{tmp}/key.pem"],
        {},
        ["--tls-key needs --tls-cert (the certificate it is the key of)"],
        id="key-without-cert",
    ),
    pytest.param(
        ["--hostname", HOST, "--tls-client-ca", "{tmp}/clients.pem"],
        {},
        [
            "--tls-client-ca needs --tls-cert and --tls-key: clients check this endpoint's certificate before they "
            "present theirs"
        ],
        id="client-ca-without-cert",
    ),
    pytest.param(
        ["--hostname", HOST, "--tls-cert", "{tmp}/missing.pem", "--tls-key", "{tmp}/key.pem"],
        {},
        ["--tls-cert {tmp}/missing.pem: no such file"],
        id="cert-missing",
    ),
    pytest.param(
        ["--hostname", HOST],
        {"SIGV4_PROXY_PG_UPSTREAM_SSLROOTCERT": "{tmp}/missing.pem"},
        ["SIGV4_PROXY_PG_UPSTREAM_SSLROOTCERT {tmp}/missing.pem: no such file"],
        id="sslrootcert-missing",
    ),
    pytest.param(
        ["--hostname", HOST, "--upstream-sslrootcert", "{tmp}"],
        {},
        ["--upstream-sslrootcert {tmp}: no such file"],
        id="sslrootcert-is-a-directory",
    ),
    pytest.param(
        ["--hostname", HOST, "--upstream-sslmode", "require"],
        {},
        ["--upstream-sslmode must be verify-full or verify-ca, got: require"],
        id="sslmode",
    ),
    pytest.param(
        ["--hostname", HOST, "--upstream-sslnegotiation", "tls"],
        {},
        ["--upstream-sslnegotiation must be postgres or direct, got: tls"],
        id="sslnegotiation",
    ),
    pytest.param(
        ["--hostname", HOST, "--unix-socket", "{tmp}/nowhere"],
        {},
        ["--unix-socket {tmp}/nowhere: no such directory (create it first: the proxy makes .s.PGSQL.<port> in it)"],
        id="unix-socket-missing",
    ),
    pytest.param(
        ["--hostname", HOST, "--unix-socket", "{tmp}", "--listen", "127.0.0.1:5432"],
        {},
        [
            "--unix-socket and --listen exclude each other: the unix sockets replace the TCP listener (each one is "
            "named by its port: the first hostname's is 5432, the next ones count up, or give HOST=LOCALPORT)"
        ],
        id="unix-socket-and-listen",
    ),
    pytest.param(
        ["--hostname", HOST, "--unix-socket", "{tmp}", *TLS],
        {},
        [
            "--tls-cert, --tls-key and --tls-client-ca apply to a TCP listener, not to --unix-socket (clients never "
            "use TLS over a unix socket)"
        ],
        id="unix-socket-and-tls",
    ),
    pytest.param(
        ["--hostname", f"{HOST}=0", "--unix-socket", "{tmp}"],
        {},
        [
            f"--unix-socket names each socket .s.PGSQL.<port>, so the local port of {HOST} cannot be 0 (any free "
            f"port): give it one with {HOST}=LOCALPORT"
        ],
        id="unix-socket-port-zero",
    ),
    pytest.param(
        ["--hostname", f"{HOST},{OTHER}=5432"],
        {},
        [f"local port 5432 is taken twice, by {HOST} and {OTHER}: give each its own with HOST=LOCALPORT"],
        id="ports-collide",
    ),
    pytest.param(
        ["--hostname", f"{HOST},{OTHER}", "--listen", "127.0.0.1:65535"],
        {},
        [
            f"the local port of {OTHER} would be 65536 (the listen port counted up), above 65535: give it one with "
            f"{OTHER}=LOCALPORT"
        ],
        id="ports-overflow",
    ),
    pytest.param(
        ["--hostname", f"{HOST},{OTHER}", "--health-port", "5433"],
        {},
        [f"--health-port 5433 is also the local port of {OTHER}: give the health server another one"],
        id="health-port-collides",
    ),
    pytest.param(
        ["--hostname", HOST, "--health-port", "65536"],
        {},
        ["--health-port must be a port from 0 to 65535 (0: any free port), got: 65536"],
        id="health-port-shape",
    ),
    pytest.param(
        ["--hostname", HOST],
        {"SIGV4_PROXY_PG_HEALTH_HOST": "0.0.0.0"},
        ["SIGV4_PROXY_PG_HEALTH_HOST needs --health-port (without it there is no health server)"],
        id="health-host-alone",
    ),
    pytest.param(
        ["--hostname", HOST, "--readiness-dial"],
        {},
        ["--readiness-dial needs --health-port (it adds a check to /readiness)"],
        id="readiness-dial-alone",
    ),
    pytest.param(
        ["--hostname", HOST, "--test-user", "reader"],
        {},
        ["--test-user needs --run-connection-test (it is the user that test logs in as)"],
        id="test-user-alone",
    ),
    pytest.param(
        ["--hostname", HOST, "--connect-timeout", "0"],
        {},
        ["--connect-timeout must be a positive duration like 10s, 1m or 2.5, got: 0"],
        id="connect-timeout-zero",
    ),
    pytest.param(
        ["--hostname", HOST],
        {"SIGV4_PROXY_PG_CONNECT_TIMEOUT": "soon"},
        ["SIGV4_PROXY_PG_CONNECT_TIMEOUT must be a positive duration like 10s, 1m or 2.5, got: soon"],
        id="connect-timeout-shape",
    ),
    pytest.param(
        ["--hostname", HOST, "--max-sigterm-delay=-1s"],
        {},
        ["--max-sigterm-delay must be a duration like 30s, 1m or 0, got: -1s"],
        id="sigterm-delay",
    ),
    *(
        pytest.param(
            ["--hostname", HOST, "--max-connections", raw],
            {},
            [f"--max-connections must be a whole number from 1 to 100000, got: {raw}"],
            id=f"max-connections-{raw}",
        )
        for raw in ("0", "100001", "many", "\u00b2")
    ),
    pytest.param(
        ["--hostname", HOST],
        {"SIGV4_PROXY_PG_ALLOW_REMOTE": "maybe"},
        ["SIGV4_PROXY_PG_ALLOW_REMOTE must be true or false (1/0, yes/no, on/off), got: maybe"],
        id="switch-variable",
    ),
]


@pytest.mark.parametrize(("argv", "env", "expected"), MESSAGE_CASES)
def test_each_problem_has_its_exact_message(
    argv: list[str], env: dict[str, str], expected: list[str], files: Path
) -> None:
    filled_env = {name: value.format(tmp=files) for name, value in env.items()}
    assert problems_of(*(item.format(tmp=files) for item in argv), env=filled_env) == [
        line.format(tmp=files) for line in expected
    ]


def test_a_socket_path_too_long_for_a_unix_address_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / ("d" * max(1, MAX_UNIX_PATH - len(str(tmp_path))))
    directory.mkdir()
    path = directory / ".s.PGSQL.5432"
    assert problems_of("--hostname", HOST, "--unix-socket", str(directory)) == [
        f"--unix-socket {directory}: the socket path {path} is longer than the {MAX_UNIX_PATH} bytes a unix socket "
        "address holds; use a shorter directory"
    ]


def test_every_problem_is_reported_at_once(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(
        [
            "pg",
            "--hostname",
            f"{PRIVATE_HOST},{HOST}=x",
            "--hostaddr",
            "127.0.0.1",
            "--listen",
            "0.0.0.0:5432",
            "--tls-cert",
            str(tmp_path / "cert.pem"),
            "--max-connections",
            "0",
            "--connect-timeout",
            "never",
        ]
    )
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"ERROR: {HOSTNAME_SHAPE.format(where='--hostname', item=f'{HOST}=x')}",
        "--hostaddr gives 1 value for 2 hostnames: give one per hostname, in the same order, an empty one for a "
        "hostname that needs none (e.g. --hostaddr ,127.0.0.1)",
        NO_REGION.format(host=PRIVATE_HOST),
        f"--tls-cert {tmp_path / 'cert.pem'}: no such file",
        "--tls-cert needs --tls-key (the certificate's private key)",
        REMOTE.format(missing="--allow-remote, --tls-key, --tls-client-ca"),
        "--connect-timeout must be a positive duration like 10s, 1m or 2.5, got: never",
        "--max-connections must be a whole number from 1 to 100000, got: 0",
    ]


# -- help, the command, its extra ------------------------------------------------------------------------------


def test_each_flags_help_names_its_variable() -> None:
    parser = build_parser()
    commands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    helps = {flag: action.help for action in commands.choices["pg"]._actions for flag in action.option_strings}
    for flag in pg_options():
        assert f"(env {env_name(flag)}" in str(helps[flag]), flag


def test_help_lists_every_variable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["pg", "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert len(pg_options()) == 25
    missing = [env_name(flag) for flag in pg_options() if env_name(flag) not in text]
    assert missing == []
    assert "SIGV4_PROXY_PG_<FLAG>" in text


def test_pg_is_listed_after_http(capsys: pytest.CaptureFixture[str]) -> None:
    assert SUBCOMMANDS[SUBCOMMANDS.index("http") + 1] == "pg"
    with pytest.raises(SystemExit):
        main(["--help"])
    # the command list: one line per command, indented by four spaces (its help may continue on deeper lines)
    listed = [match[1] for line in capsys.readouterr().out.splitlines() if (match := re.match(r"^    (\S+)", line))]
    assert listed[listed.index("http") + 1] == "pg"


def test_the_command_serves_the_config_it_built(monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[PgProxyConfig] = []

    def serve(config: PgProxyConfig, **_: Any) -> int:
        served.append(config)
        return 1

    monkeypatch.setattr(runner, "serve_forever", serve)
    monkeypatch.setenv("SIGV4_PROXY_PG_MAX_CONNECTIONS", "9")
    assert main(["pg", "--hostname", HOST, "--listen", "127.0.0.1:0"]) == 1
    assert served == [PgProxyConfig(targets=(Target(HOST),), listen_port=0, max_connections=9)]


def test_a_usage_problem_never_starts_the_proxy(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(runner, "serve_forever", lambda *_, **__: pytest.fail("the proxy started"))
    monkeypatch.delenv("SIGV4_PROXY_PG_HOSTNAME", raising=False)
    assert main(["pg"]) == 2
    assert capsys.readouterr().err == f"ERROR: {REQUIRED}\n"


def test_the_command_needs_the_pg_proxy_extra() -> None:
    assert extra_of_command("sigv4-proxy pg") == "pg-proxy"


def test_without_prometheus_client_the_command_says_which_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(runner, "serve_forever", lambda *_, **__: pytest.fail("the proxy started"))
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # importing it now raises ModuleNotFoundError
    assert main(["pg", "--hostname", HOST]) == 1
    assert capsys.readouterr().err == (
        "ERROR: sigv4-proxy pg needs the optional [pg-proxy] dependencies (prometheus_client is not installed): in "
        "the project's clone, reinstall with them: pip install '.[pg-proxy]' (or pipx install --force "
        "'.[pg-proxy]', or uv tool install --force '.[pg-proxy]')\n"
    )
