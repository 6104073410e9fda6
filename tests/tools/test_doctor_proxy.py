"""`doctor` behind an HTTPS proxy: it names the proxy in use and checks through it (DNS and TCP of the proxy, the
CONNECT tunnel, TLS through it, the signed probe), reports an unreachable or refusing proxy with the variable it
came from, honours NO_PROXY, and never advises setting HTTPS_PROXY when it is set.

The proxy is tests/support/connect_proxy.py on loopback, in front of a TLS front (tests/support/tls.py) for the
emulator: doctor → CONNECT proxy → TLS → `emulate mcp`. Which proxy applies to a URL follows httpx's rules;
`test_proxy_choice_is_httpx_own` compares the two on a table.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from sigv4_proxy.credentials import StaticCredentialProvider
from sigv4_proxy.doctor import FAIL, PASS, SKIP, DoctorReport, run_doctor
from sigv4_proxy.emulate import McpEmulator
from tests.support.connect_proxy import ConnectProxy, Tunnel
from tests.support.tls import Pki, TlsFront, make_pki
from tests.tools.conftest import child_env
from tests.tools.test_doctor_flags import ALL_GREEN_PROBE, doctor_args


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def front(emulator: McpEmulator, pki: Pki) -> Iterator[TlsFront]:
    with TlsFront(emulator.port, pki) as running:
        yield running


@pytest.fixture
def proxy() -> Iterator[ConnectProxy]:
    with ConnectProxy() as running:
        yield running


def diagnose(emulator: McpEmulator, url: str, environ: dict[str, str], *argv: str) -> DoctorReport:
    args = doctor_args("--target-url", url, "--region", emulator.region, "--service-name", emulator.service, *argv)
    return run_doctor(args, environ, provider=StaticCredentialProvider(emulator.credentials, method="env"), timeout=3)


def lines(report: DoctorReport) -> list[str]:
    return [line.rstrip() for line in report.render().splitlines()]


def check(report: DoctorReport, name: str) -> tuple[str, str, str | None]:
    found = next(c for c in report.checks if c.name == name)
    return found.status, found.summary, found.fix


def test_through_a_working_proxy(emulator: McpEmulator, front: TlsFront, proxy: ConnectProxy, pki: Pki) -> None:
    environ = {"HTTPS_PROXY": proxy.url_with("doctor", "s3cret"), "SSL_CERT_FILE": str(pki.ca_pem)}
    report = diagnose(emulator, front.url(host="localhost"), environ)
    assert report.ok, report.render()
    named = f"the HTTPS proxy http://doctor:****@127.0.0.1:{proxy.port} (from HTTPS_PROXY)"
    text = lines(report)
    assert text[5:10] == [
        f"✓ proxy            {named} for localhost: the checks below go through it",
        f"✓ DNS              127.0.0.1 → 127.0.0.1: {named}; it resolves localhost itself",
        text[7],
        f"✓ proxy tunnel     CONNECT localhost:{front.port} through {named}: HTTP 200 Connection established",
        text[9],
    ]
    assert text[7].startswith(f"✓ TCP              connected to {named} at 127.0.0.1:{proxy.port} in ")
    assert text[9].startswith(
        "✓ TLS              TLSv1.3, certificate CN=localhost (SNI localhost) issued by CN=sigv4-proxy"
    )
    assert text[9].endswith(f", through {named}")
    assert text[11].startswith("✓ signed probe     " + ALL_GREEN_PROBE)
    # the tunnel check and the signed probe both went through the proxy, with the proxy URL's user
    assert proxy.tunnels == [Tunnel(f"localhost:{front.port}", 200, "doctor")] * 2
    assert "s3cret" not in report.render() and "s3cret" not in str(report.to_dict())


def test_an_unreachable_proxy_is_named_with_its_variable(
    emulator: McpEmulator, front: TlsFront, pki: Pki, closed_port: int
) -> None:
    environ = {"https_proxy": f"127.0.0.1:{closed_port}", "SSL_CERT_FILE": str(pki.ca_pem)}
    report = diagnose(emulator, front.url(host="localhost"), environ)
    assert not report.ok
    assert check(report, "tcp") == (
        FAIL,
        f"connection to the HTTPS proxy http://127.0.0.1:{closed_port} (from https_proxy) at 127.0.0.1:{closed_port} "
        "refused: nothing is listening",
        "check that the proxy is running and that https_proxy names its host and port, or unset https_proxy (or add "
        "localhost to NO_PROXY) if localhost is reachable without the proxy",
    )
    assert [(c.name, c.status, c.summary) for c in report.checks[-4:]] == [
        (name, SKIP, "skipped: no connection to the proxy") for name in ("tunnel", "tls", "clock", "probe")
    ]


def test_cli_names_an_unreachable_proxy(emulator: McpEmulator, front: TlsFront, pki: Pki, closed_port: int) -> None:
    env = child_env(
        emulator.env() | {"HTTPS_PROXY": f"http://user:pw@127.0.0.1:{closed_port}", "SSL_CERT_FILE": str(pki.ca_pem)}
    )
    argv = [sys.executable, "-m", "sigv4_proxy", "doctor", "--target-url", front.url(host="localhost")]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert (
        f"✗ TCP              connection to the HTTPS proxy http://user:****@127.0.0.1:{closed_port} "
        f"(from HTTPS_PROXY) at 127.0.0.1:{closed_port} refused: nothing is listening"
    ) in result.stdout.splitlines()
    assert "pw@" not in result.stdout


def test_no_proxy_bypasses_it(emulator: McpEmulator, front: TlsFront, proxy: ConnectProxy, pki: Pki) -> None:
    environ = {"HTTPS_PROXY": proxy.url, "NO_PROXY": "example.com,localhost", "SSL_CERT_FILE": str(pki.ca_pem)}
    report = diagnose(emulator, front.url(host="localhost"), environ)
    assert report.ok, report.render()
    assert check(report, "proxy") == (
        PASS,
        f"not used for localhost: NO_PROXY entry 'localhost' matches localhost (the HTTPS proxy http://127.0.0.1:"
        f"{proxy.port} (from HTTPS_PROXY) serves other hosts); connecting directly",
        None,
    )
    assert check(report, "tcp")[1].startswith(f"connected to 127.0.0.1:{front.port} in ")
    assert "tunnel" not in [c.name for c in report.checks]
    assert proxy.tunnels == []


@pytest.mark.parametrize(
    ("proxy_options", "user", "status_line", "fix"),
    [
        (
            {"require": ("doctor", "right")},
            "wrong",
            "HTTP 407 Proxy Authentication Required",
            "the proxy wants a user name and password: put them in HTTPS_PROXY (http://USER:PASSWORD@host:port, "
            "special characters percent-encoded)",
        ),
        (
            {"refuse": 403},
            "doctor",
            "HTTP 403 Forbidden",
            "the proxy does not allow tunnels to localhost:{port}: ask its administrators to allow the host, or "
            "unset HTTPS_PROXY (or add localhost to NO_PROXY) if localhost is reachable without the proxy",
        ),
        (
            {"refuse": 502},
            "doctor",
            "HTTP 502 Bad Gateway",
            "the proxy could not reach localhost:{port} (its DNS, its route, or the server is down): check the target "
            "URL, then the proxy's logs",
        ),
    ],
)
def test_a_refused_tunnel_says_why(
    emulator: McpEmulator,
    front: TlsFront,
    pki: Pki,
    proxy_options: dict[str, object],
    user: str,
    status_line: str,
    fix: str,
) -> None:
    with ConnectProxy(**proxy_options) as refusing:  # type: ignore[arg-type]
        environ = {"HTTPS_PROXY": refusing.url_with(user, "pw"), "SSL_CERT_FILE": str(pki.ca_pem)}
        report = diagnose(emulator, front.url(host="localhost"), environ)
    named = f"the HTTPS proxy http://{user}:****@127.0.0.1:{refusing.port} (from HTTPS_PROXY)"
    assert check(report, "tunnel") == (
        FAIL,
        f"CONNECT localhost:{front.port} through {named}: {status_line}",
        fix.format(port=front.port),
    )
    assert check(report, "probe") == (SKIP, "skipped: no tunnel through the proxy", None)
    assert refusing.tunnels[0].status == int(status_line.split()[1])


def test_proxy_dns_failure_names_the_proxy(
    emulator: McpEmulator, front: TlsFront, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolve = socket.getaddrinfo

    def no_such_proxy(host: str, *args: object, **kwargs: object) -> object:
        if host == "proxy.corp.example":  # the name must not reach a real resolver
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return resolve(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", no_such_proxy)
    environ = {"ALL_PROXY": "http://proxy.corp.example:3128", "SSL_CERT_FILE": str(pki.ca_pem)}
    report = diagnose(emulator, front.url(host="localhost"), environ)
    assert check(report, "dns") == (
        FAIL,
        "cannot resolve proxy.corp.example, the host of the proxy http://proxy.corp.example:3128 (from ALL_PROXY): "
        "Name or service not known",
        "check the proxy's host name in ALL_PROXY, or unset ALL_PROXY (or add localhost to NO_PROXY) if localhost is "
        "reachable without the proxy",
    )


def test_a_bypassed_proxy_is_never_advised(emulator: McpEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS fails for a host NO_PROXY exempts: the fix speaks of NO_PROXY, not of setting HTTPS_PROXY (it is set)."""
    resolve = socket.getaddrinfo

    def no_such_host(host: str, *args: object, **kwargs: object) -> object:
        if host == "mcp.corp.example":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return resolve(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    url = "https://mcp.corp.example/mcp"
    environ = {"HTTPS_PROXY": "http://127.0.0.1:3128", "no_proxy": ".corp.example"}
    bypassed = diagnose(emulator, url, environ)
    assert check(bypassed, "dns")[2] == (
        "check the target URL's host name for typos; `nslookup mcp.corp.example`; HTTPS_PROXY is set, but no_proxy "
        "exempts mcp.corp.example: remove it from no_proxy if only the proxy can reach it"
    )
    without = diagnose(emulator, url, {})
    assert "proxy" not in [c.name for c in without.checks]
    assert check(without, "dns")[2] == (
        "check the target URL's host name for typos; `nslookup mcp.corp.example`; behind a corporate proxy set "
        "HTTPS_PROXY"
    )


# --- which proxy, by httpx's rules -----------------------------------------------------------------------------

PROXY_TABLE: list[tuple[dict[str, str], str]] = [
    ({"HTTPS_PROXY": "http://p:3128"}, "https://a.example/mcp"),
    ({"HTTPS_PROXY": "http://p:3128"}, "http://a.example/mcp"),
    ({"HTTP_PROXY": "http://p:3128"}, "https://a.example/mcp"),
    ({"HTTP_PROXY": "http://p:3128"}, "http://a.example/mcp"),
    ({"ALL_PROXY": "p:1080"}, "https://a.example/mcp"),
    ({"HTTPS_PROXY": "http://p:3128", "ALL_PROXY": "http://q:1080"}, "https://a.example/mcp"),
    ({"HTTPS_PROXY": "http://upper:1", "https_proxy": "http://lower:2"}, "https://a.example/mcp"),
    ({"HTTPS_PROXY": "http://upper:1", "https_proxy": ""}, "https://a.example/mcp"),
    ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "a.example"}, "https://a.example/mcp"),
    ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "a.example"}, "https://sub.a.example/mcp"),
    ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "a.example"}, "https://ba.example/mcp"),
    ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": ".a.example"}, "https://a.example/mcp"),
    ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": ".a.example"}, "https://sub.a.example/mcp"),
    ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "*"}, "https://a.example/mcp"),
    ({"HTTPS_PROXY": "http://p:3128", "no_proxy": "127.0.0.1"}, "https://127.0.0.1:8443/mcp"),
    ({"HTTPS_PROXY": "http://p:3128", "no_proxy": "127.0.0.1"}, "https://127.0.0.2:8443/mcp"),
    ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "::1"}, "https://[::1]:8443/mcp"),
    ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "localhost"}, "https://localhost:8443/mcp"),
    ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "a.example:8443"}, "https://a.example:8443/mcp"),
    ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "a.example:8443"}, "https://a.example/mcp"),
    ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "a.example:443"}, "https://a.example/mcp"),
    ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": " b.example , a.example "}, "https://a.example/mcp"),
    ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "10.0.0.0/8"}, "https://10.1.2.3/mcp"),
    ({"HTTPS_PROXY": "http://p:3128", "HTTP_PROXY": "http://h:1", "NO_PROXY": "http://a.example"}, "http://a.example/"),
    (
        {"HTTPS_PROXY": "http://p:3128", "HTTP_PROXY": "http://h:1", "NO_PROXY": "http://a.example"},
        "https://a.example/",
    ),
    ({"HTTP_PROXY": "http://h:1", "REQUEST_METHOD": "GET"}, "http://a.example/mcp"),
    ({"http_proxy": "http://h:1", "REQUEST_METHOD": "GET"}, "http://a.example/mcp"),
    ({"HTTPS_PROXY": "http://user:pa%40ss@p:3128"}, "https://a.example/mcp"),
]


def httpx_choice(url: str) -> str | None:
    """The proxy URL httpx itself picks for `url` from os.environ (trust_env), or None for a direct connection."""
    import httpx
    from httpx._utils import get_environment_proxies

    proxies = get_environment_proxies()
    with httpx.Client() as client:
        by_transport = {id(t): proxies[p.pattern] for p, t in client._mounts.items() if t is not None}
        return by_transport.get(id(client._transport_for_url(httpx.URL(url))))


@pytest.mark.parametrize(("environ", "url"), PROXY_TABLE)
def test_proxy_choice_is_httpx_own(environ: dict[str, str], url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.lower().endswith("_proxy") or name == "REQUEST_METHOD":
            monkeypatch.delenv(name)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    from sigv4_proxy.doctor import ProxyBypass, proxy_route

    route = proxy_route(url, os.environ)
    ours = None if route is None or isinstance(route, ProxyBypass) else route.url
    assert ours == httpx_choice(url)
    if isinstance(route, ProxyBypass):  # the entry named is one that exempts the host on its own
        assert route.variable in ("NO_PROXY", "no_proxy") and route.entry
        monkeypatch.setenv(route.variable, route.entry)
        assert httpx_choice(url) is None


def test_proxy_credentials_are_masked() -> None:
    from sigv4_proxy.doctor import check_proxy, proxy_route

    route = proxy_route("https://a.example/", {"HTTPS_PROXY": "http://user:pa%40ss@p:3128"})
    assert route is not None and check_proxy("https://a.example/", route).summary == (
        "the HTTPS proxy http://user:****@p:3128 (from HTTPS_PROXY) for a.example: the checks below go through it"
    )
    bypass = proxy_route("https://a.example/", {"ALL_PROXY": "http://t0ken@p:3128", "no_proxy": "*"})
    assert bypass is not None and check_proxy("https://a.example/", bypass).summary == (
        "not used for a.example: no_proxy=* turns every proxy off (the proxy http://****@p:3128 (from ALL_PROXY) "
        "serves other hosts); connecting directly"
    )


def test_sts_goes_through_the_proxy_too(emulator: McpEmulator, proxy: ConnectProxy, pki: Pki) -> None:
    """The caller-identity check reaches STS the way the AWS SDKs would from here: through HTTPS_PROXY."""
    from tests.tools.sts import ARN, LocalSts

    with LocalSts(emulator.credentials) as sts, TlsFront(sts.server.server_address[1], pki) as sts_front:
        environ = {"HTTPS_PROXY": proxy.url, "SSL_CERT_FILE": str(pki.ca_pem)}
        args = doctor_args(
            "--target-url", emulator.url, "--region", emulator.region, "--service-name", emulator.service
        )
        report = run_doctor(
            args,
            environ,
            provider=StaticCredentialProvider(emulator.credentials, method="env"),
            sts_endpoint=sts_front.url("/", host="localhost"),
            timeout=3,
        )
        assert check(report, "identity") == (PASS, f"{ARN} (account 123456789012)", None)
        assert sts.calls == 1
    # the target is plain http (HTTPS_PROXY does not apply to it); STS is https, and went through the proxy
    assert "proxy" not in [c.name for c in report.checks] and report.ok, report.render()
    assert proxy.tunnels == [Tunnel(f"localhost:{sts_front.port}", 200, None)]
