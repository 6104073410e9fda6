"""The start-up text of `emulate dsql`: where it listens, which cluster it plays, what is behind it, who may log
in, and lines to paste that connect with psql.

Generated identities are printed in full on purpose: they are made for this run and unlock nothing but this
emulator. Identities the user passed are shown by their masked access key only; the paste-ready lines then carry
placeholders, never a secret. Pure text formatting: the server fills a :class:`BannerInfo` and prints
:func:`banner`.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from sigv4_proxy.endpoints import host_port
from sigv4_proxy.redact import mask_access_key, mask_url_credentials

__all__ = ["BannerInfo", "IdentityView", "banner", "connect_command", "display_backend_url", "mapping_arn"]

LOOPBACK_BY_FAMILY = {4: "127.0.0.1", 6: "::1"}


class IdentityView(Protocol):
    """What the banner reads of an identity (``sigv4_proxy.emulate.dsql.auth.Identity`` has all of it)."""

    @property
    def access_key_id(self) -> str: ...
    @property
    def secret_access_key(self) -> str: ...
    @property
    def principal_arn(self) -> str: ...
    @property
    def session_token(self) -> str | None: ...
    @property
    def expires_at(self) -> datetime | None: ...
    @property
    def generated(self) -> bool: ...


@dataclass(frozen=True)
class BannerInfo:
    """Everything the start-up text shows. The backend is either embedded (``backend_dir``, removed on exit
    unless ``backend_kept``) or an existing server (``postgres_url``; its password is masked here)."""

    listen_host: str
    listen_port: int
    cluster_host: str
    region: str
    ca_file: Path
    identities: Sequence[IdentityView]
    rules: Literal["dsql", "off"] = "dsql"
    foreign_keys: Literal["enforce", "refuse"] = "enforce"
    backend_version: str = ""
    backend_dir: Path | None = None
    backend_kept: bool = False
    postgres_url: str | None = None
    tls_note: str = ""  # TlsMaterial.note: new files or re-used ones, and why

    @classmethod
    def from_emulator(cls, emulator: Any) -> BannerInfo:
        """The banner's view of a running ``DsqlEmulator`` (its config, backend and TLS material)."""
        config = emulator.config
        tls = getattr(emulator, "tls", None)
        backend = getattr(emulator, "backend", None)
        return cls(
            listen_host=emulator.listen_host,
            listen_port=emulator.port,
            cluster_host=emulator.host,
            region=emulator.region,
            ca_file=Path(emulator.ca_file),
            identities=tuple(emulator.identities),
            rules=config.rules,
            foreign_keys=config.foreign_keys,
            backend_version=str(getattr(backend, "version", "") or ""),
            backend_dir=config.data_dir or getattr(backend, "data_dir", None),
            backend_kept=config.data_dir is not None,
            postgres_url=config.postgres_url,
            tls_note=getattr(tls, "note", "") or "",
        )


def banner(info: BannerInfo) -> str:
    """The human start-up text (several lines, no trailing newline)."""
    lines = [
        "sigv4-proxy emulate dsql: a local Aurora DSQL endpoint (IAM token authentication, DSQL's rules)",
        f"  listen:   {host_port(info.listen_host, info.listen_port)}",
        f"  cluster:  {info.cluster_host}",
        f"  region:   {info.region}",
        f"  rules:    {_rules_text(info)}",
        f"  backend:  {_backend_text(info)}",
        f"  TLS CA:   {info.ca_file}  (trust it: sslmode=verify-full sslrootcert=<this file>)",
        *([f"            {info.tls_note.removeprefix('TLS: ')}"] if info.tls_note else []),
        *_identity_lines(info.identities),
        *_connect_lines(info),
        "Every connection attempt is logged on stderr (never a token or a secret). Ctrl-C stops.",
    ]
    return "\n".join(lines)


def connect_command(info: BannerInfo, identity: IdentityView | None, *, user: str = "admin") -> str:
    """A shell command that makes a token with ``sigv4-proxy dsql-token`` and runs psql with it, verifying the
    server as DSQL's clients do. The identity's credentials are in it when it was generated; otherwise (a
    passed identity, or none) placeholders stand where the credentials go."""
    token = ["sigv4-proxy", "dsql-token", "--hostname", info.cluster_host, "--region", info.region]
    if user == "admin":
        token.append("--admin")
    credentials = _credential_words(identity)
    token_command = " ".join([*credentials, *(shlex.quote(word) for word in token)])
    conninfo = [f"host={info.cluster_host}"]
    hostaddr = _hostaddr(info.listen_host)
    if hostaddr is not None:
        conninfo.append(f"hostaddr={hostaddr}")
    conninfo += [
        f"port={info.listen_port}",
        "dbname=postgres",
        f"user={_conninfo_value(user)}",
        "sslmode=verify-full",
        f"sslrootcert={_conninfo_value(str(info.ca_file))}",
    ]
    return f'PGPASSWORD="$({token_command})" psql {_double_quoted(" ".join(conninfo))}'


def mapping_arn(principal_arn: str) -> str:
    """The ARN to name in ``AWS IAM GRANT``: an assumed-role session ``arn:aws:sts::A:assumed-role/R/S`` is
    granted through its role ``arn:aws:iam::A:role/R`` (as DSQL wants); any other ARN as it is."""
    parts = principal_arn.split(":", 5)
    if len(parts) == 6 and parts[2] == "sts" and parts[5].startswith("assumed-role/"):
        role = parts[5].split("/")[1]
        return f"{parts[0]}:{parts[1]}:iam::{parts[4]}:role/{role}"
    return principal_arn


def display_backend_url(url: str) -> str:
    """A PostgreSQL URL fit to print: the password of its userinfo and of a ``password=`` query parameter
    masked. A user without a password is a role name, shown as it is (unlike a bare token in an HTTP URL)."""
    from urllib.parse import parse_qsl, urlencode, urlsplit

    parts = urlsplit(url)
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        parts = urlsplit(mask_url_credentials(url))
    if not parts.query:
        return parts.geturl()
    pairs = [(name, "****" if name.lower() == "password" else value) for name, value in parse_qsl(parts.query, True)]
    return parts._replace(query=urlencode(pairs, safe="*/:")).geturl()


# -- the parts -------------------------------------------------------------------------------------------------


def _rules_text(info: BannerInfo) -> str:
    if info.rules == "off":
        return "off (statements pass through to PostgreSQL unchecked; authentication is still DSQL's)"
    if info.foreign_keys == "refuse":
        return "dsql (DSQL's limits and refusals; foreign keys refused, as older clusters did)"
    return "dsql (DSQL's limits and refusals; foreign keys enforced)"


def _backend_text(info: BannerInfo) -> str:
    version = f"PostgreSQL {info.backend_version}" if info.backend_version else "PostgreSQL"
    if info.postgres_url is not None:
        return f"{version} at {display_backend_url(info.postgres_url)}"
    where = f" in {info.backend_dir}" if info.backend_dir is not None else ""
    fate = "kept on exit" if info.backend_kept else "removed on exit"
    return f"embedded {version}{where} ({fate})"


def _identity_lines(identities: Sequence[IdentityView]) -> list[str]:
    generated = [identity for identity in identities if identity.generated]
    passed = [identity for identity in identities if not identity.generated]
    lines: list[str] = []
    if generated:
        lines.append("  identities (generated for this run; they unlock nothing but this emulator):")
        for identity in generated:
            lines.append(f"    {identity.principal_arn}{_expiry(identity)}")
            lines.append(f"      AWS_ACCESS_KEY_ID={identity.access_key_id}")
            lines.append(f"      AWS_SECRET_ACCESS_KEY={identity.secret_access_key}")
            if identity.session_token:
                lines.append(f"      AWS_SESSION_TOKEN={identity.session_token}")
    if passed:
        lines.append("  identities (passed; their secrets are not shown):")
        for identity in passed:
            token = ", with a session token" if identity.session_token else ""
            lines.append(
                f"    {mask_access_key(identity.access_key_id)}  {identity.principal_arn}{token}{_expiry(identity)}"
            )
    if not identities:
        lines.append("  identities: none (no token can be verified: every login is refused)")
    return lines


def _connect_lines(info: BannerInfo) -> list[str]:
    generated = [identity for identity in info.identities if identity.generated]
    identity = generated[0] if generated else None
    if identity is None and not info.identities:
        return []
    lines = ["Connect as admin (a new token each time; tokens last 15 minutes):"]
    if identity is None:
        lines[0] = "Connect as admin, with one of the identities' credentials in place of <...>:"
    lines.append(f"  {connect_command(info, identity)}")
    arn = mapping_arn((identity or info.identities[0]).principal_arn)
    lines.append(
        f"A custom role: as admin, CREATE ROLE app WITH LOGIN; AWS IAM GRANT app TO '{arn}'; then the same "
        "command without --admin and with user=app."
    )
    lines.append(
        f"Other clients: make {info.cluster_host} resolve to the listen address (an /etc/hosts line, or Java's "
        f"-Djdk.net.hosts.file) and use port {info.listen_port}, sslmode=verify-full and the CA above."
    )
    return lines


def _expiry(identity: IdentityView) -> str:
    if identity.expires_at is None:
        return ""
    return f"  (expires {identity.expires_at.isoformat(timespec='seconds')})"


def _credential_words(identity: IdentityView | None) -> list[str]:
    if identity is None or not identity.generated:
        return ["AWS_ACCESS_KEY_ID=<access-key-id>", "AWS_SECRET_ACCESS_KEY=<secret-access-key>"]
    words = [
        f"AWS_ACCESS_KEY_ID={shlex.quote(identity.access_key_id)}",
        f"AWS_SECRET_ACCESS_KEY={shlex.quote(identity.secret_access_key)}",
    ]
    if identity.session_token:
        words.append(f"AWS_SESSION_TOKEN={shlex.quote(identity.session_token)}")
    return words


def _hostaddr(listen_host: str) -> str | None:
    """The numeric address a client dials (libpq's hostaddr): the listen address, loopback for a wildcard
    address or ``localhost``; None for another name (the client must then resolve the cluster host to it)."""
    if listen_host in ("", "localhost"):
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(listen_host)
    except ValueError:
        return None
    if address.is_unspecified:
        return LOOPBACK_BY_FAMILY[address.version]
    return str(address)


def _conninfo_value(value: str) -> str:
    """A libpq connection-string value: single-quoted, with ``\\`` and ``'`` escaped, when it needs it."""
    if value and not any(char.isspace() or char in "'\\" for char in value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _double_quoted(text: str) -> str:
    """``text`` inside shell double quotes (the four characters special there escaped)."""
    escaped = "".join("\\" + char if char in '\\"$`' else char for char in text)
    return f'"{escaped}"'
