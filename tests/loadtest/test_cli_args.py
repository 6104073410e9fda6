"""`sigv4-proxy loadtest dsql`'s flags and SIGV4_PROXY_LOADTEST_* variables: parsing to LoadtestSettings (no load
test runs), every validation message exactly (all problems in one ERROR, exit 2), --help, and what `run` does with
the engine's result (exit codes, the summary, the report) against stand-ins for the engine, the summary and the
report.

Nothing here imports Locust: it monkey-patches the whole process with gevent. `main()` imports the command's
extra (locust, plotly) before `run`, so the tests that go through `main` past the parser put stand-ins for those
modules in sys.modules first (:func:`fake_extra`); a guard fails any test after which locust or gevent is loaded.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

import pytest

from sigv4_proxy.cli import EXTRA_OF_MODULE, SUBCOMMANDS, build_parser, extra_of_command, main
from sigv4_proxy.cli.loadtest import VALUE_FLAGS, build_settings, env_name
from sigv4_proxy.errors import UsageError
from sigv4_proxy.loadtest.results import LoadtestResult
from sigv4_proxy.loadtest.settings import DsqlTarget, LoadtestSettings

HOST = "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws"
CLUSTER_ID = "abcdefghijklmnopqrstuvwxyz"
VPCE = "vpce-0123-abcd.dsql-fnh4.us-east-1.vpce.amazonaws.com"
PRIVATE_HOST = "db.internal.example"  # a name that does not say its region
RDS = "mydb.cluster-abc123.us-east-1.rds.amazonaws.com"
GEVENT_MODULES = ("locust", "gevent")


@pytest.fixture(autouse=True)
def never_gevent() -> Iterator[None]:
    """No test here may load Locust or gevent into the pytest process (gevent patches every thread)."""
    before = {name for name in GEVENT_MODULES if name in sys.modules}
    yield
    loaded = {name for name in GEVENT_MODULES if name in sys.modules} - before
    assert not loaded, f"the test imported {sorted(loaded)} into the pytest process"


def test_the_pytest_process_is_not_monkey_patched() -> None:
    """What never_gevent cannot see: a patch applied before this module's tests (a conftest that imports locust,
    e.g. through pytest.importorskip, which imports the module it checks)."""
    monkey = sys.modules.get("gevent.monkey")
    patched = [name for name in ("socket", "select", "thread") if monkey is not None and monkey.is_module_patched(name)]
    assert patched == [], f"gevent patched {patched} in the pytest process: import locust only in child processes"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SIGV4_PROXY_LOADTEST_* variable of the machine running the tests leaks into a run through main()."""
    for name in [name for name in os.environ if name.startswith("SIGV4_PROXY_LOADTEST_")]:
        monkeypatch.delenv(name)


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["loadtest", "dsql", *argv])


def settings_of(*argv: str, env: dict[str, str] | None = None) -> LoadtestSettings:
    return build_settings(parse(*argv), env or {})


def problems_of(*argv: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(UsageError) as raised:
        settings_of(*argv, env=env)
    assert raised.value.exit_code == 2
    return str(raised.value).splitlines()


def dsql_options() -> list[str]:
    """Every long option of `sigv4-proxy loadtest dsql` but --help."""
    parser = build_parser()
    commands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    targets = next(
        action for action in commands.choices["loadtest"]._actions if isinstance(action, argparse._SubParsersAction)
    )
    return [
        flag
        for action in targets.choices["dsql"]._actions
        for flag in action.option_strings
        if flag.startswith("--") and flag != "--help"
    ]


def target_of(settings: LoadtestSettings) -> DsqlTarget:
    assert settings.target is not None
    return settings.target


# -- every flag and its variable reach the settings ---------------------------------------------------------------

SWITCH = None  # a flag without a value (its variable is set to "true")
MASTER = ("--master",)
WORKER = ("--worker",)
CLUSTER = ("--hostname", HOST)

# (flag, value, other flags it needs, what to read from the settings, what it must be)
FLAG_CASES: list[tuple[str, str | None, tuple[str, ...], Callable[[LoadtestSettings], Any], Any]] = [
    ("--emulate", SWITCH, (), lambda s: s.target, None),
    ("--hostname", HOST, (), lambda s: target_of(s), DsqlTarget(HOST)),
    ("--hostaddr", "127.0.0.1", CLUSTER, lambda s: target_of(s).hostaddr, "127.0.0.1"),
    ("--port", "15432", CLUSTER, lambda s: target_of(s).port, 15432),
    (
        "--via-proxy",
        "127.0.0.1:6432",
        (),
        lambda s: target_of(s),
        DsqlTarget("127.0.0.1", port=6432, sslmode="disable", mint_tokens=False),
    ),
    ("--user", "app", CLUSTER, lambda s: target_of(s).user, "app"),
    ("--dbname", "events", CLUSTER, lambda s: target_of(s).dbname, "events"),
    ("--region", "us-east-1", CLUSTER, lambda s: target_of(s).region, "us-east-1"),
    ("--profile", "dev", CLUSTER, lambda s: target_of(s).profile, "dev"),
    ("--sslrootcert", "{tmp}/ca.pem", CLUSTER, lambda s: target_of(s).sslrootcert, "{tmp}/ca.pem"),
    (
        "--sslmode",
        "verify-ca",
        (*CLUSTER, "--sslrootcert", "{tmp}/ca.pem"),
        lambda s: target_of(s).sslmode,
        "verify-ca",
    ),
    (
        "--cluster-id",
        CLUSTER_ID,
        ("--hostname", VPCE, "--sslmode", "verify-ca", "--sslrootcert", "{tmp}/ca.pem"),
        lambda s: (target_of(s).hostname, target_of(s).cluster_id),
        (VPCE, CLUSTER_ID),
    ),
    ("--token-expires-in", "15", CLUSTER, lambda s: target_of(s).expires_in, 15),
    ("--users", "50", (), lambda s: s.users, 50),
    ("--iterations", "7", (), lambda s: s.iterations, 7),
    ("--scenario", "batch", (), lambda s: (s.scenario, s.rows_per_transaction), ("batch", 10)),
    ("--batch-size", "25", ("--scenario", "batch"), lambda s: s.rows_per_transaction, 25),
    ("--duration", "1m30s", (), lambda s: (s.duration, s.iterations), (90.0, None)),
    ("--rate", "12.5", (), lambda s: s.rate, 12.5),
    ("--spawn-rate", "2", (), lambda s: s.spawn_rate, 2.0),
    ("--table", "load.events", (), lambda s: s.table, "load.events"),
    ("--report", "{tmp}/run.html", (), lambda s: s.report, "{tmp}/run.html"),
    ("--no-progress", SWITCH, (), lambda s: s.progress, False),
    ("--master", SWITCH, (), lambda s: s.mode, "master"),
    ("--master-bind-host", "127.0.0.2", MASTER, lambda s: s.master_bind_host, "127.0.0.2"),
    ("--master-port", "6557", MASTER, lambda s: s.master_port, 6557),
    ("--expect-workers", "3", MASTER, lambda s: s.expect_workers, 3),
    ("--worker", SWITCH, (), lambda s: s.mode, "worker"),
    ("--master-host", "10.0.0.5", WORKER, lambda s: (s.mode, s.master_host), ("worker", "10.0.0.5")),
]


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")  # its content is not read here
    return tmp_path


def _filled(value: Any, tmp: Path) -> Any:
    if isinstance(value, str) and "{tmp}" in value:
        return value.format(tmp=tmp)
    return value


def _comparable(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


@pytest.mark.parametrize(("flag", "value", "others", "read", "expected"), FLAG_CASES, ids=[c[0] for c in FLAG_CASES])
def test_each_flag_reaches_the_settings(
    flag: str,
    value: str | None,
    others: tuple[str, ...],
    read: Callable[[LoadtestSettings], Any],
    expected: Any,
    files: Path,
) -> None:
    argv = [flag] if value is SWITCH else [flag, _filled(value, files)]
    settings = settings_of(*argv, *(_filled(item, files) for item in others))
    assert _comparable(read(settings)) == _filled(expected, files)


@pytest.mark.parametrize(("flag", "value", "others", "read", "expected"), FLAG_CASES, ids=[c[0] for c in FLAG_CASES])
def test_each_variable_reaches_the_settings(
    flag: str,
    value: str | None,
    others: tuple[str, ...],
    read: Callable[[LoadtestSettings], Any],
    expected: Any,
    files: Path,
) -> None:
    env = {env_name(flag): "true" if value is SWITCH else _filled(value, files)}
    settings = settings_of(*(_filled(item, files) for item in others), env=env)
    assert _comparable(read(settings)) == _filled(expected, files)


def test_the_cases_cover_every_flag() -> None:
    assert sorted(case[0] for case in FLAG_CASES) == sorted(dsql_options())
    assert len(dsql_options()) == 29
    switches = sorted(case[0] for case in FLAG_CASES if case[1] is SWITCH)
    assert sorted(VALUE_FLAGS) == sorted(set(dsql_options()) - set(switches))


@pytest.mark.parametrize("flag", VALUE_FLAGS)
def test_an_empty_flag_is_refused_not_taken_for_unset(flag: str) -> None:
    """``--hostname "$HOST"`` with HOST unset must not quietly load-test the emulator instead."""
    assert (
        problems_of(flag, "")[0] == f"{flag} is empty (an unset shell variable?): give it a value, or leave {flag} out"
    )


def test_no_flag_gives_the_defaults_issue_13_names() -> None:
    settings = settings_of()
    assert settings == LoadtestSettings()
    assert (settings.emulate, settings.users, settings.iterations, settings.scenario, settings.expected_rows) == (
        True,
        5,
        2,
        "single",
        10,
    )
    assert settings_of("--scenario", "batch").expected_rows == 100


def test_a_cluster_target_defaults_to_verify_full_with_the_system_cas() -> None:
    assert target_of(settings_of("--hostname", HOST)) == DsqlTarget(
        HOST,
        hostaddr=None,
        port=5432,
        user="admin",
        dbname="postgres",
        region=None,
        profile=None,
        sslmode="verify-full",
        sslrootcert="system",
        expires_in=900,
        cluster_id=None,
        password=None,
        mint_tokens=True,
    )


@pytest.mark.parametrize(
    ("argv", "host", "port"),
    [
        (("--hostname", CLUSTER_ID, "--region", "eu-west-1"), CLUSTER_ID + ".dsql.eu-west-1.on.aws", 5432),
        # digits only is a cluster id too (the library's test: sigv4_proxy.dsql._params.is_cluster_id)
        (("--hostname", "1" * 26, "--region", "eu-west-1"), "1" * 26 + ".dsql.eu-west-1.on.aws", 5432),
        (("--hostname", f"https://{HOST.upper()}:5432/"), HOST, 5432),  # pasted from a console
        (("--hostname", f"{HOST}:15432"), HOST, 15432),
        (("--hostname", f"{HOST}:15432", "--port", "15432"), HOST, 15432),
        (("--hostname", "abcdefghijklmnopqrstuvwxyz.dsql-fnh4.us-east-1.on.aws"), None, 5432),  # PrivateLink DNS
        (("--hostname", PRIVATE_HOST, "--region", "us-east-1"), PRIVATE_HOST, 5432),
    ],
)
def test_hostname_forms(argv: tuple[str, ...], host: str | None, port: int) -> None:
    target = target_of(settings_of(*argv))
    assert (target.hostname, target.port) == (host or argv[1], port)


@pytest.mark.parametrize(
    ("raw", "host", "port"),
    [("6432", "127.0.0.1", 6432), ("localhost:6432", "localhost", 6432), ("[::1]:6432", "::1", 6432)],
)
def test_via_proxy_forms(raw: str, host: str, port: int) -> None:
    target = target_of(settings_of("--via-proxy", raw, "--user", "app", "--dbname", "events"))
    assert target == DsqlTarget(
        host, port=port, user="app", dbname="events", sslmode="disable", mint_tokens=False, password=None
    )


@pytest.mark.parametrize("address", ["10.0.0.5", "::1", "bastion.example", "localhost"])
def test_a_hostaddr_is_an_address_or_a_name(address: str) -> None:
    assert target_of(settings_of("--hostname", HOST, "--hostaddr", address)).hostaddr == address


def test_duration_bounds_the_run_with_or_without_iterations() -> None:
    assert (settings_of("--duration", "30s").iterations, settings_of("--duration", "30s").expected_rows) == (None, None)
    both = settings_of("--duration", "30s", "--iterations", "4")
    assert (both.duration, both.iterations, both.expected_rows) == (30.0, 4, None)
    from_env = settings_of("--duration", "30s", env={"SIGV4_PROXY_LOADTEST_ITERATIONS": "4"})
    assert from_env.iterations == 4


def test_a_worker_keeps_only_where_its_master_is() -> None:
    settings = settings_of("--worker", "--master-host", "10.0.0.5", "--master-port", "6000", "--no-progress")
    assert settings == LoadtestSettings(
        mode="worker", master_host="10.0.0.5", master_port=6000, progress=False, target=None
    )


def test_a_master_on_a_real_cluster_may_listen_on_every_interface() -> None:
    settings = settings_of("--hostname", HOST, "--master", "--master-bind-host", "0.0.0.0", "--expect-workers", "4")
    assert (settings.mode, settings.master_bind_host, settings.expect_workers) == ("master", "0.0.0.0", 4)


@pytest.mark.parametrize(
    ("flag", "flag_value", "env_value", "read", "expected"),
    [
        ("--users", "7", "9", lambda s: s.users, 7),
        ("--scenario", "single", "batch", lambda s: s.scenario, "single"),
        ("--hostname", HOST, PRIVATE_HOST, lambda s: target_of(s).hostname, HOST),
        ("--duration", "10s", "1h", lambda s: s.duration, 10.0),
    ],
)
def test_the_flag_wins_over_its_variable(
    flag: str, flag_value: str, env_value: str, read: Callable[[LoadtestSettings], Any], expected: Any
) -> None:
    assert read(settings_of(flag, flag_value, env={env_name(flag): env_value})) == expected


def test_an_empty_variable_counts_as_unset() -> None:
    assert settings_of(env={env_name(flag): "  " for flag in dsql_options()}) == LoadtestSettings()


@pytest.mark.parametrize(("raw", "progress"), [("1", False), ("yes", False), ("ON", False), ("0", True), ("no", True)])
def test_a_switch_variable_takes_the_usual_words(raw: str, progress: bool) -> None:
    assert settings_of(env={"SIGV4_PROXY_LOADTEST_NO_PROGRESS": raw}).progress is progress


def test_a_switch_variable_set_to_false_is_not_given() -> None:
    settings = settings_of("--hostname", HOST, env={"SIGV4_PROXY_LOADTEST_EMULATE": "false"})
    assert target_of(settings).hostname == HOST


# -- every problem, exactly -----------------------------------------------------------------------------------------

NOT_FOR_EMULATE = (
    "{flags} {verb} to a real cluster: add --hostname (with --emulate, the default, the users log in to the emulator "
    "as admin)"
)
VIA_PROXY_SHAPE = (
    "--via-proxy takes the [HOST:]PORT of a sigv4-proxy pg endpoint (its --listen), e.g. 127.0.0.1:5432, got: {raw}"
)
HOSTNAME_SHAPE = (
    "--hostname takes a cluster endpoint such as abc123.dsql.us-east-1.on.aws (or a cluster id with --region), "
    "got: {raw}"
)
VERIFY_CA_NEEDS_FILE = (
    "{where} verify-ca needs --sslrootcert FILE: libpq takes the system's CAs (sslrootcert=system) only with "
    "verify-full; give them as a file, e.g. --sslrootcert /etc/ssl/certs/ca-certificates.crt"
)
VPCE_NEEDS_ID = (
    f"--hostname {VPCE} is an interface VPC endpoint: Aurora DSQL reads the cluster from the host name, so name it "
    "with --cluster-id (the first label of CLUSTER-ID.dsql.us-east-1.on.aws), or connect to the endpoint's private "
    "DNS name CLUSTER-ID.dsql-SUFFIX.us-east-1.on.aws instead"
)
VPCE_VERIFY_FULL = (
    f"--hostname {VPCE} is an interface VPC endpoint without private DNS: its certificate does not name it, so "
    "verify-full fails; pass --sslmode verify-ca --sslrootcert FILE (e.g. /etc/ssl/certs/ca-certificates.crt)"
)
WORKER_STRAY = "--worker runs what its master sends: drop {flags} (give them to the --master process)"
EMULATOR_ON_LOOPBACK = (
    "--master-bind-host 0.0.0.0: the emulator (--emulate, the default without --hostname) listens on loopback with a "
    "throwaway identity, so only workers on this machine can use it; keep the master on loopback, or give a real "
    "cluster with --hostname"
)

MESSAGE_CASES = [
    # the target
    pytest.param(
        ["--emulate", "--hostname", HOST],
        {},
        [
            "--emulate and --hostname exclude each other: --emulate load-tests a local emulator started for the run, "
            "--hostname names another target; drop one of them"
        ],
        id="emulate-and-hostname",
    ),
    pytest.param(
        ["--via-proxy", "6432"],
        {"SIGV4_PROXY_LOADTEST_EMULATE": "yes"},
        [
            "SIGV4_PROXY_LOADTEST_EMULATE and --via-proxy exclude each other: --emulate load-tests a local emulator "
            "started for the run, --via-proxy names another target; drop one of them"
        ],
        id="emulate-variable-and-via-proxy",
    ),
    pytest.param(
        ["--hostname", HOST, "--via-proxy", "6432"],
        {},
        [
            "--hostname and --via-proxy exclude each other: through --via-proxy the users connect to the proxy, and "
            "the proxy's own --hostname names the cluster"
        ],
        id="hostname-and-via-proxy",
    ),
    pytest.param(
        ["--hostaddr", "127.0.0.1"], {}, [NOT_FOR_EMULATE.format(flags="--hostaddr", verb="applies")], id="hostaddr"
    ),
    pytest.param(
        ["--region", "us-east-1", "--user", "app"],
        {"SIGV4_PROXY_LOADTEST_PROFILE": "dev"},
        [NOT_FOR_EMULATE.format(flags="--region, SIGV4_PROXY_LOADTEST_PROFILE, --user", verb="apply")],
        id="cluster-flags-with-emulate",
    ),
    pytest.param(
        ["--via-proxy", "6432", "--region", "us-east-1", "--token-expires-in", "60"],
        {},
        [
            "--via-proxy connects to a sigv4-proxy pg endpoint, which mints the tokens and does TLS upstream: drop "
            "--region, --token-expires-in (set them on sigv4-proxy pg)"
        ],
        id="cluster-flags-with-via-proxy",
    ),
    *(
        pytest.param(["--via-proxy", raw], {}, [VIA_PROXY_SHAPE.format(raw=raw)], id=f"via-proxy-{raw}")
        for raw in ("0", "65536", "127.0.0.1:", "::1:6432", "[::1]6432", "a b:6432", "127.0.0.1")
    ),
    pytest.param(
        ["--via-proxy", "10.0.0.5:6432"],
        {},
        [
            "--via-proxy 10.0.0.5 is not a loopback address: sigv4-proxy pg serves other machines only with client "
            "certificates, which the load test does not send; run sigv4-proxy pg on this machine"
        ],
        id="via-proxy-remote",
    ),
    *(
        pytest.param(["--hostname", raw], {}, [HOSTNAME_SHAPE.format(raw=raw)], id=f"hostname-{raw}")
        for raw in (f"{HOST}:0", f"{HOST}:99999", "not a host", f"postgresql://admin@{HOST}/postgres")
    ),
    pytest.param(
        ["--hostname", CLUSTER_ID],
        {},
        [f"--hostname {CLUSTER_ID} is a cluster id: add --region (the endpoint is {CLUSTER_ID}.dsql.REGION.on.aws)"],
        id="cluster-id-without-region",
    ),
    pytest.param(
        ["--hostname", CLUSTER_ID, "--region", "useast1"],
        {},
        ["--region must be an AWS region name such as us-east-1, got: useast1"],
        id="cluster-id-with-a-bad-region",
    ),
    pytest.param(
        ["--hostname", PRIVATE_HOST],
        {},
        [
            f"--hostname {PRIVATE_HOST} does not say its region (CLUSTER.dsql.REGION.on.aws names do): pass --region "
            "(or SIGV4_PROXY_LOADTEST_REGION)"
        ],
        id="no-region",
    ),
    pytest.param(
        ["--hostname", HOST, "--region", "eu-west-1"],
        {},
        [f"--region eu-west-1 does not match {HOST}, which is in us-east-1: the token would be refused; drop --region"],
        id="region-mismatch",
    ),
    pytest.param(
        ["--hostname", RDS],
        {},
        [
            f"--hostname {RDS} is an RDS endpoint: loadtest dsql tests Aurora DSQL (for RDS with IAM authentication, "
            "run sigv4-proxy pg in front of it and use --via-proxy)"
        ],
        id="rds",
    ),
    pytest.param(
        ["--hostname", f"{HOST}:15432", "--port", "5432"],
        {},
        ["--hostname says port 15432 and --port says 5432: give the port once"],
        id="port-twice",
    ),
    *(
        pytest.param(
            ["--hostname", HOST, "--port", raw],
            {},
            [f"--port must be a port from 1 to 65535, got: {raw}"],
            id=f"port-{raw}",
        )
        for raw in ("0", "65536", "x", "\u00b2")
    ),
    *(
        pytest.param(
            ["--hostname", HOST, "--hostaddr", raw],
            {},
            [f"--hostaddr takes one IP address or host name, without a port (the port is --port), got: {raw}"],
            id=f"hostaddr-{raw}",
        )
        for raw in ("127.0.0.1:15432", "[::1]", "a b", "user@host")
    ),
    pytest.param(
        ["--hostname", VPCE, "--sslmode", "verify-ca", "--sslrootcert", "{tmp}/ca.pem"],
        {},
        [VPCE_NEEDS_ID],
        id="vpce-without-cluster-id",
    ),
    pytest.param(["--hostname", VPCE, "--cluster-id", CLUSTER_ID], {}, [VPCE_VERIFY_FULL], id="vpce-with-verify-full"),
    pytest.param(
        ["--hostname", HOST, "--cluster-id", HOST],
        {},
        ["--cluster-id takes the id alone, not a host name: abcdefghijklmnopqrstuvwxyz"],
        id="cluster-id-is-a-host",
    ),
    pytest.param(
        ["--hostname", HOST, "--cluster-id", "ABC"],
        {},
        [
            "--cluster-id must be 1 to 63 lower-case letters and digits (DSQL's are 26, e.g. "
            "abcdefghijklmnopqrstuvwxyz), got: ABC"
        ],
        id="cluster-id-shape",
    ),
    pytest.param(
        ["--hostname", HOST, "--cluster-id", "other"],
        {},
        [
            f"--cluster-id other differs from the cluster of --hostname {HOST} ({CLUSTER_ID}): drop it (only a VPC "
            "endpoint's hostname needs --cluster-id)"
        ],
        id="cluster-id-differs",
    ),
    pytest.param(
        ["--hostname", HOST, "--sslmode", "require"],
        {},
        ["--sslmode must be verify-full or verify-ca (the users always check the cluster's certificate), got: require"],
        id="sslmode-require",
    ),
    pytest.param(
        ["--hostname", HOST, "--sslmode", "verify-ca"],
        {},
        [VERIFY_CA_NEEDS_FILE.format(where="--sslmode")],
        id="verify-ca-with-the-system-cas",
    ),
    pytest.param(
        ["--hostname", HOST],
        {"SIGV4_PROXY_LOADTEST_SSLMODE": "VERIFY-CA", "SIGV4_PROXY_LOADTEST_SSLROOTCERT": "system"},
        [VERIFY_CA_NEEDS_FILE.format(where="SIGV4_PROXY_LOADTEST_SSLMODE")],
        id="verify-ca-variable",
    ),
    pytest.param(
        ["--hostname", HOST, "--sslrootcert", "{tmp}/missing.pem"],
        {},
        ["--sslrootcert {tmp}/missing.pem: no such file"],
        id="sslrootcert-missing",
    ),
    *(
        pytest.param(
            ["--hostname", HOST, "--token-expires-in", raw],
            {},
            [
                "--token-expires-in must be a whole number of seconds from 1 to 604800 (7 days, DSQL's limit), "
                f"got: {raw}"
            ],
            id=f"token-lifetime-{raw}",
        )
        for raw in ("0", "604801", "15m")
    ),
    # the load
    pytest.param(["--users", "0"], {}, ["--users must be at least 1, got 0"], id="users-zero"),
    pytest.param(["--users=-1"], {}, ["--users must be a whole number, got: -1"], id="users-negative"),
    pytest.param(
        [],
        {"SIGV4_PROXY_LOADTEST_ITERATIONS": "two"},
        ["SIGV4_PROXY_LOADTEST_ITERATIONS must be a whole number, got: two"],
        id="iterations-variable",
    ),
    pytest.param(["--iterations", "0"], {}, ["--iterations must be at least 1, got 0"], id="iterations-zero"),
    pytest.param(["--scenario", "bulk"], {}, ["--scenario must be single or batch, got: bulk"], id="scenario"),
    pytest.param(
        ["--batch-size", "50"],
        {},
        ["--batch-size applies to --scenario batch (--scenario single inserts 1 row per transaction)"],
        id="batch-size-with-single",
    ),
    pytest.param(
        ["--scenario", "batch", "--batch-size", "3001"],
        {},
        ["--batch-size must be between 1 and 3000 (DSQL modifies at most 3000 rows per transaction), got 3001"],
        id="batch-size-over-dsql-limit",
    ),
    *(
        pytest.param(
            [f"--duration={raw}"],  # = keeps argparse from taking -5s for a flag
            {},
            [f"--duration must be a positive duration like 30s, 5m or 1h30m, got: {raw}"],
            id=f"duration-{raw}",
        )
        for raw in ("0", "soon", "-5s")
    ),
    *(
        pytest.param(
            [f"--rate={raw}"],
            {},
            [f"--rate must be a positive number of transactions per second, e.g. 50 or 2.5, got: {raw}"],
            id=f"rate-{raw}",
        )
        for raw in ("0", "-1", "fast", "nan", "inf")
    ),
    pytest.param(
        ["--spawn-rate", "0"],
        {},
        ["--spawn-rate must be a positive number of users started per second, e.g. 50 or 2.5, got: 0"],
        id="spawn-rate",
    ),
    pytest.param(
        ["--table", "Events; DROP TABLE x"],
        {},
        [
            "--table 'Events; DROP TABLE x' is not a plain table name: lower-case letters, digits and _, optionally "
            "schema.table (for example event_headers)"
        ],
        id="table",
    ),
    # the output
    pytest.param(
        ["--report", "{tmp}/run.txt"], {}, ["--report '{tmp}/run.txt' must end in .html or .json"], id="report-suffix"
    ),
    pytest.param(
        ["--report", "{tmp}/nowhere/run.html"],
        {},
        ["--report {tmp}/nowhere/run.html: no such directory {tmp}/nowhere"],
        id="report-directory-missing",
    ),
    pytest.param(
        ["--report", "{tmp}"],
        {},
        [
            "--report {tmp} is a directory: name a file ending in .html or .json",
            "--report '{tmp}' must end in .html or .json",
        ],
        id="report-is-a-directory",
    ),
    pytest.param(
        [],
        {"SIGV4_PROXY_LOADTEST_NO_PROGRESS": "maybe"},
        ["SIGV4_PROXY_LOADTEST_NO_PROGRESS must be true or false (1/0, yes/no, on/off), got: maybe"],
        id="switch-variable",
    ),
    # distributed mode
    pytest.param(
        ["--master", "--worker"],
        {},
        ["--master and --worker exclude each other: run one process with --master and each worker with --worker"],
        id="master-and-worker",
    ),
    pytest.param(
        ["--master-bind-host", "127.0.0.1", "--expect-workers", "2", "--master-port", "6000"],
        {},
        [
            "--master-bind-host needs --master (it configures the master)",
            "--expect-workers needs --master (it configures the master)",
            "--master-port needs --master or --worker (the port the master listens on and its workers connect to)",
        ],
        id="master-flags-without-master",
    ),
    pytest.param(
        ["--master-host", "10.0.0.5"],
        {},
        ["--master-host needs --worker (it is where a worker finds its master)"],
        id="master-host-without-worker",
    ),
    pytest.param(
        ["--master", "--master-bind-host", "0.0.0.0"], {}, [EMULATOR_ON_LOOPBACK], id="emulate-master-not-loopback"
    ),
    pytest.param(
        ["--master", "--expect-workers", "0"],
        {},
        ["--expect-workers must be a whole number of at least 1, got: 0"],
        id="expect-workers-zero",
    ),
    pytest.param(
        ["--master", "--master-bind-host", "every interface"],
        {},
        ["--master-bind-host must be one IP address or host name, got: every interface"],
        id="bind-host-shape",
    ),
    pytest.param(
        ["--worker", "--emulate", "--report", "{tmp}/run.html", "--users", "3"],
        {"SIGV4_PROXY_LOADTEST_EXPECT_WORKERS": "2"},
        [WORKER_STRAY.format(flags="--emulate, --users, --report, SIGV4_PROXY_LOADTEST_EXPECT_WORKERS")],
        id="worker-with-a-masters-flags",
    ),
    pytest.param(
        ["--worker", "--master-port", "70000"],
        {},
        ["--master-port must be a port from 1 to 65535, got: 70000"],
        id="worker-master-port",
    ),
]


@pytest.mark.parametrize(("argv", "env", "expected"), MESSAGE_CASES)
def test_each_problem_has_its_exact_message(
    argv: list[str], env: dict[str, str], expected: list[str], files: Path
) -> None:
    assert problems_of(*(_filled(item, files) for item in argv), env=env) == [
        line.format(tmp=files) for line in expected
    ]


# -- main(): every problem at once, help, the command and its extra ---------------------------------------------------


@pytest.fixture
def fake_extra() -> Iterator[None]:
    """main() imports the command's extra (locust, plotly) before run(): stand-ins, so the real ones (and gevent's
    monkey-patching) never load here. Its own MonkeyPatch: the stand-ins are gone before never_gevent looks."""
    extra = extra_of_command("sigv4-proxy loadtest dsql")
    with pytest.MonkeyPatch.context() as patch:
        for module, group in EXTRA_OF_MODULE.items():
            if group == extra:
                patch.setitem(sys.modules, module, ModuleType(module))
        yield


def test_every_problem_is_reported_at_once(
    capsys: pytest.CaptureFixture[str], clean_env: None, fake_extra: None, tmp_path: Path
) -> None:
    code = main(
        [
            "loadtest",
            "dsql",
            "--region",
            "us-east-1",
            "--users",
            "0",
            "--batch-size",
            "5",
            "--duration",
            "soon",
            "--report",
            str(tmp_path / "run.txt"),
            "--expect-workers",
            "2",
        ]
    )
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"ERROR: {NOT_FOR_EMULATE.format(flags='--region', verb='applies')}",
        "--duration must be a positive duration like 30s, 5m or 1h30m, got: soon",
        "--batch-size applies to --scenario batch (--scenario single inserts 1 row per transaction)",
        "--expect-workers needs --master (it configures the master)",
        "--users must be at least 1, got 0",
        f"--report '{tmp_path / 'run.txt'}' must end in .html or .json",
    ]


def test_each_flags_help_names_its_variable() -> None:
    parser = build_parser()
    commands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    targets = next(
        action for action in commands.choices["loadtest"]._actions if isinstance(action, argparse._SubParsersAction)
    )
    helps = {flag: action.help for action in targets.choices["dsql"]._actions for flag in action.option_strings}
    for flag in dsql_options():
        assert f"(env {env_name(flag)}" in str(helps[flag]), flag


def test_help_explains_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["loadtest", "dsql", "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert [env_name(flag) for flag in dsql_options() if env_name(flag) not in text] == []
    for needed in (
        "SIGV4_PROXY_LOADTEST_<FLAG>",
        "5 x 2 x 1  = 10 rows",
        "5 x 2 x 10 = 100 rows",
        "sigv4-proxy loadtest dsql --master --expect-workers 2",
        "sigv4-proxy loadtest dsql --worker --master-host 10.0.0.5",
        "sigv4-proxy loadtest dsql --via-proxy 127.0.0.1:6432",
        "exit codes:",
        "Documentation: sigv4-proxy help loadtest.",
    ):
        assert needed in text, needed


def test_loadtest_lists_its_target(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["loadtest", "--help"])
    assert exited.value.code == 0
    assert "    dsql      insert events into Aurora DSQL (or emulate dsql)" in capsys.readouterr().out


def test_loadtest_without_a_target_says_which(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["loadtest"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == "ERROR: the following arguments are required: TARGET"


def test_an_unknown_flag_is_named_with_its_fix(capsys: pytest.CaptureFixture[str], fake_extra: None) -> None:
    assert main(["loadtest", "dsql", "--users", "5", "--scenarios", "batch"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == "ERROR: unknown option --scenarios: did you mean --scenario?"


def test_the_command_is_registered_with_its_extra() -> None:
    assert "loadtest" in SUBCOMMANDS
    assert extra_of_command("sigv4-proxy loadtest dsql") == "loadtest"


# -- run(): the engine's result to an exit code, the summary, the report ---------------------------------------


def result_of(settings: LoadtestSettings, *, problems: tuple[str, ...] = ()) -> LoadtestResult:
    rows = settings.expected_rows or 0
    return LoadtestResult(
        scenario=settings.scenario,
        users=settings.users,
        iterations=settings.iterations,
        rows_per_transaction=settings.rows_per_transaction,
        target="emulate dsql (127.0.0.1)",
        table=settings.table,
        run_id="r1",
        started_at="2025-01-15T12:00:00Z",
        duration_s=1.0,
        workers=0,
        rows_expected=settings.expected_rows,
        rows_committed=rows,
        rows_counted=rows,
        transactions=settings.users * (settings.iterations or 0),
        transactions_failed=0,
        rows_per_s=float(rows),
        transactions_per_s=10.0,
        operations=(),
        errors=(),
        occ_retries=0,
        occ_gave_up=0,
        auth_failures=(),
        timeline=(),
        problems=problems,
    )


class LoadtestError(Exception):
    """The engine's: the run could not happen."""


class Engine:
    """Stand-ins for sigv4_proxy.loadtest.engine, .summary and .report: what run() handed them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.runs: list[tuple[LoadtestSettings, TextIO | None]] = []
        self.workers: list[LoadtestSettings] = []
        self.reports: list[tuple[LoadtestResult, Path]] = []
        self.problems: tuple[str, ...] = ()
        self.worker_exit = 0
        self.report_error: OSError | None = None
        self.cannot_start: str | None = None
        engine = ModuleType("sigv4_proxy.loadtest.engine")
        engine.LoadtestError = LoadtestError  # type: ignore[attr-defined]
        engine.run_loadtest = self.run_loadtest  # type: ignore[attr-defined]
        engine.run_worker = self.run_worker  # type: ignore[attr-defined]
        summary = ModuleType("sigv4_proxy.loadtest.summary")
        summary.render_summary = lambda result: f"SUMMARY rows={result.rows_counted} ok={result.ok}"  # type: ignore[attr-defined]
        report = ModuleType("sigv4_proxy.loadtest.report")
        report.write_report = self.write_report  # type: ignore[attr-defined]
        for module in (engine, summary, report):
            monkeypatch.setitem(sys.modules, module.__name__, module)

    def run_loadtest(self, settings: LoadtestSettings, *, progress: TextIO | None = sys.stderr) -> LoadtestResult:
        self.runs.append((settings, progress))
        if self.cannot_start is not None:
            raise LoadtestError(self.cannot_start)
        return result_of(settings, problems=self.problems)

    def run_worker(self, settings: LoadtestSettings) -> int:
        self.workers.append(settings)
        return self.worker_exit

    def write_report(self, result: LoadtestResult, path: Path) -> None:
        if self.report_error is not None:
            raise self.report_error
        self.reports.append((result, path))


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch, clean_env: None, fake_extra: None) -> Engine:
    return Engine(monkeypatch)


def test_a_run_prints_the_summary_writes_the_report_and_exits_0(
    engine: Engine, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    report = tmp_path / "run.html"
    assert main(["loadtest", "dsql", "--scenario", "batch", "--report", str(report)]) == 0
    out, err = capsys.readouterr()
    assert out == "SUMMARY rows=100 ok=True\n"
    assert err == f"report: {report}\n"
    [(settings, progress)] = engine.runs
    assert settings == LoadtestSettings(scenario="batch", report=report)
    assert progress is sys.stderr
    assert [(result.rows_counted, path) for result, path in engine.reports] == [(100, report)]


def test_a_result_with_problems_exits_1_after_the_summary(engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    engine.problems = ("rows: 8 counted, 10 expected",)
    assert main(["loadtest", "dsql", "--no-progress"]) == 1
    assert capsys.readouterr().out == "SUMMARY rows=10 ok=False\n"
    [(settings, progress)] = engine.runs
    assert (settings.progress, progress) == (False, None)


def test_a_report_that_cannot_be_written_fails_the_run(
    engine: Engine, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    engine.report_error = PermissionError(13, "Permission denied")
    report = tmp_path / "run.json"
    assert main(["loadtest", "dsql", "--report", str(report)]) == 1
    out, err = capsys.readouterr()
    assert out == "SUMMARY rows=10 ok=True\n"  # the result is not lost
    assert err == f"ERROR: cannot write --report {report}: Permission denied\n"


def test_a_run_that_cannot_start_is_one_error_line(engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    engine.cannot_start = "1 of 2 workers connected to 127.0.0.1:5557 within 60 s"
    assert main(["loadtest", "dsql", "--master", "--expect-workers", "2"]) == 1
    assert capsys.readouterr() == ("", "ERROR: 1 of 2 workers connected to 127.0.0.1:5557 within 60 s\n")


def test_a_worker_runs_what_its_master_sends(engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    engine.worker_exit = 3
    assert main(["loadtest", "dsql", "--worker", "--master-host", "127.0.0.2"]) == 3
    assert engine.workers == [LoadtestSettings(mode="worker", master_host="127.0.0.2")]
    assert (engine.runs, capsys.readouterr().out) == ([], "")


def test_the_variables_reach_the_engine(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGV4_PROXY_LOADTEST_USERS", "3")
    monkeypatch.setenv("SIGV4_PROXY_LOADTEST_HOSTNAME", HOST)
    assert main(["loadtest", "dsql", "--iterations", "4"]) == 0
    [(settings, _)] = engine.runs
    assert settings == LoadtestSettings(target=DsqlTarget(HOST), users=3, iterations=4)


def test_a_usage_problem_never_starts_the_engine(engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["loadtest", "dsql", "--users", "none"]) == 2
    assert capsys.readouterr().err == "ERROR: --users must be a whole number, got: none\n"
    assert (engine.runs, engine.workers) == ([], [])


def test_the_summary_goes_to_stdout_only(engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    """stdout is the summary alone (it may be piped to a file); progress and notes are stderr's."""
    stream = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "stderr", stream)
        assert main(["loadtest", "dsql"]) == 0
    assert capsys.readouterr().out == "SUMMARY rows=10 ok=True\n"
    [(_, progress)] = engine.runs
    assert progress is stream


def test_a_default_run_expects_the_rows_issue_13_names(engine: Engine) -> None:
    assert main(["loadtest", "dsql"]) == 0
    assert main(["loadtest", "dsql", "--scenario", "batch"]) == 0
    assert [settings.expected_rows for settings, _ in engine.runs] == [10, 100]
    assert replace(engine.runs[1][0], scenario="single") == engine.runs[0][0]
