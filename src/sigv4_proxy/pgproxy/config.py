"""What `sigv4-proxy pg` serves: its targets (clusters) and its settings. Plain data, no I/O.

:class:`Target` is one upstream database a local port stands for; :class:`PgProxyConfig` is the whole proxy.
The CLI (:mod:`sigv4_proxy.cli.pg`) builds them from flags and ``SIGV4_PROXY_PG_*`` variables; tests build them
directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

DatabaseKind = Literal["dsql", "rds"]
DEFAULT_PORT = 5432


@dataclass(frozen=True)
class Target:
    """One upstream database, served on its own local port."""

    hostname: str  # what the client means: SNI, the certificate check and the token use it
    port: int = DEFAULT_PORT  # the upstream's port (RDS tokens sign hostname:port)
    listen_port: int | None = None  # None: the config's listen port + index (counting up); 0: any free port
    hostaddr: str | None = None  # connect here (IP or name) instead of resolving hostname (libpq's hostaddr)
    hostaddr_port: int | None = None  # with hostaddr: its port (default: port)
    cluster_id: str | None = None  # DSQL PrivateLink without private DNS (hostname is the vpce-... name)
    region: str | None = None  # None: from the hostname (DSQL and RDS names carry it)
    kind: DatabaseKind = "dsql"

    @property
    def name(self) -> str:
        """The label in logs and metrics."""
        return self.hostname

    @property
    def token_host(self) -> str:
        """The host the token is signed for. DSQL reads the cluster from the name the client connects to; through
        a VPC endpoint without private DNS that name is the endpoint's, so the token names the cluster host
        (dsql-tokens.md §3)."""
        if self.kind == "dsql" and self.cluster_id:
            return f"{self.cluster_id}.dsql.{self.signing_region}.on.aws"
        return self.hostname

    @property
    def signing_region(self) -> str:
        from sigv4_proxy.tokens import host_info

        region = self.region or host_info(self.hostname).region
        if not region:
            raise ValueError(f"no region for {self.hostname}: pass one")
        return region

    @property
    def dial_host(self) -> str:
        return self.hostaddr or self.hostname

    @property
    def dial_port(self) -> int:
        if self.hostaddr is not None and self.hostaddr_port is not None:
            return self.hostaddr_port
        return self.port

    @property
    def extra_options(self) -> str:
        """Options added to the client's: DSQL's PrivateLink form without private DNS names the cluster so."""
        return f"-c amzn-cluster-id={self.cluster_id}" if self.kind == "dsql" and self.cluster_id else ""


@dataclass(frozen=True)
class PgProxyConfig:
    targets: tuple[Target, ...]
    listen_host: str = "127.0.0.1"
    listen_port: int = DEFAULT_PORT  # the first target's port when its listen_port is None; the next ones count up
    unix_socket_dir: Path | None = None  # listen on DIR/.s.PGSQL.<port> instead of TCP (mode 0600)
    allow_remote: bool = False
    tls_cert: Path | None = None  # client-side TLS (required with a non-loopback listen address)
    tls_key: Path | None = None
    tls_client_ca: Path | None = None  # clients must present a certificate signed by this CA (mutual TLS)
    upstream_sslrootcert: str = "system"  # "system" (the machine's roots, Amazon's among them) or a PEM file
    upstream_sslmode: Literal["verify-full", "verify-ca"] = "verify-full"
    upstream_sslnegotiation: Literal["postgres", "direct"] = "postgres"
    connect_timeout: float = 10.0  # TCP + TLS + login upstream
    handshake_timeout: float = 10.0  # a client's startup packet must arrive within this
    max_connections: int = 1000  # open client connections across targets (logins in progress count)
    health_host: str = "127.0.0.1"
    health_port: int | None = None  # None: no health server; 0: any free port
    readiness_dial: bool = False  # /readiness also dials every upstream (TCP + TLS; cached 10 s)
    max_sigterm_delay: float = 30.0  # SIGTERM/SIGINT: wait this long for open sessions, then cut them
    run_connection_test: bool = False  # log in to every target once at start; fail the start if one fails
    test_user: str = "admin"  # the user of --run-connection-test
    json_log: bool = False
    profile: str | None = None
    token_expires_in: int = 900
    keepalive: float = 30.0  # TCP keepalive idle seconds, both sides

    @property
    def direct_tls(self) -> bool:
        """TLS at once upstream (PostgreSQL 17's direct negotiation), not after an SSLRequest."""
        return self.upstream_sslnegotiation == "direct"

    def listen_port_of(self, index: int) -> int:
        """The local port of target ``index``: its own, or the listen port counted up (0 stays 0: any free port)."""
        own = self.targets[index].listen_port
        if own is not None:
            return own
        return 0 if self.listen_port == 0 else self.listen_port + index
