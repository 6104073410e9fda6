"""Connection parameters for the DSQL helpers: a hostname, cluster id, DSN or URL plus keyword arguments -> what
the driver is given and what the token is signed for. Pure: the environment, the profile's region and the system
CA file come in as arguments.

Values from a DSN or URL are strings; the ones that are numbers are converted here (a published connector keeps
``token_duration_secs`` from a DSN as a string and then fails comparing it with an int: dsql-tokens.md §2).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from sigv4_proxy.errors import ConfigError, SigningError
from sigv4_proxy.pgproxy.config import Target
from sigv4_proxy.signing.model import check_expires_in

DEFAULT_USER = "admin"
DEFAULT_DBNAME = "postgres"
DEFAULT_PORT = 5432
DEFAULT_EXPIRES_IN = 900
DEFAULT_SSLROOTCERT = "system"
# A bare cluster id: DSQL's are 26 lower-case letters and digits (the first label of <id>.dsql.<region>.on.aws).
_CLUSTER_ID = re.compile(r"^[a-z0-9]{26}$")
_URL_SCHEME = re.compile(r"^(?P<scheme>postgres(?:ql)?)(?:\+(?P<driver>[a-z0-9_]+))?://", re.IGNORECASE)
_KEYWORD = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*")

# libpq parameters whose values are numbers (psycopg accepts them as int, asyncpg needs int).
INTEGER_PARAMS = frozenset(
    {
        "port",
        "connect_timeout",
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
        "tcp_user_timeout",
        "expires_in",
        "token_duration_secs",
    }
)
# Ours, never sent to the server. `token_duration_secs` is the AWS connector's name for expires_in.
HELPER_PARAMS = frozenset({"region", "profile", "expires_in", "token_duration_secs", "cluster_id"})
# Other names for libpq's: a DSN written for asyncpg or SQLAlchemy says `database`.
ALIASES = {"database": "dbname", "username": "user"}
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# A token is a password valid for minutes: it goes only over TLS (an unverified server could still read it).
TLS_SSLMODES = ("require", "verify-ca", "verify-full")


@dataclass(frozen=True)
class HelperOptions:
    """The helpers' own keyword arguments; None: not given (a DSN value or the default applies)."""

    user: str | None = None
    dbname: str | None = None
    region: str | None = None
    profile: str | None = None
    expires_in: int | None = None
    cluster_id: str | None = None
    iam_auth: bool = True


@dataclass(frozen=True)
class Environment:
    """What the region and the CA defaults may come from, passed in so that resolution stays pure."""

    variables: Mapping[str, str] = field(default_factory=dict)
    profile_region: Callable[[str | None], str | None] = lambda _profile: None
    system_ca_file: Callable[[], str | None] = lambda: None


@dataclass(frozen=True)
class ConnectSpec:
    """One connection's parameters, resolved. ``target`` is None when IAM authentication is off (a local
    ``sigv4-proxy pg`` signs for the client)."""

    target: Target | None
    user: str
    dbname: str
    expires_in: int
    profile: str | None
    params: Mapping[str, Any]  # libpq's names: host (SNI and certificate), port, user, dbname, ssl*, ... no password

    @property
    def host(self) -> str:
        return str(self.params["host"])

    @property
    def port(self) -> int:
        return int(self.params["port"])


def resolve(
    hostname: str | None,
    options: HelperOptions,
    params: Mapping[str, Any],
    environment: Environment,
    *,
    application_name: str,
) -> ConnectSpec:
    """Merge ``hostname`` (a host, a bare cluster id, a DSN or a URL), the DSN's values and ``params`` (keyword
    arguments win), and resolve the host, region and TLS settings. Raises :class:`ConfigError` listing every
    problem found."""
    problems: list[str] = []
    merged = _merge(hostname, params)
    merged = _typed(merged, problems)
    helper = _helper_values(merged, options, problems)
    dsn_user, dsn_dbname = merged.pop("user", None), merged.pop("dbname", None)
    user = options.user or dsn_user or DEFAULT_USER
    dbname = options.dbname or dsn_dbname or DEFAULT_DBNAME
    host = merged.pop("host", None)
    if not host:
        problems.append(
            "a hostname is required: the cluster endpoint (<cluster-id>.dsql.<region>.on.aws), a cluster id, a DSN "
            "or a URL"
        )
        raise ConfigError(problems)
    target: Target | None = None
    if options.iam_auth:
        host, port = _split_port(str(host), merged, problems)
        target = _target(host, port, helper, environment, problems)
        host = target.hostname if target is not None else host  # a bare cluster id becomes its host
        if "password" in merged:
            problems.append(
                "a password was given, but the password of each connection is a fresh IAM token: leave it out "
                "(or pass iam_auth=False to send your own, e.g. to a local sigv4-proxy pg)"
            )
    merged.setdefault("port", DEFAULT_PORT)
    _tls_defaults(merged, target, options.iam_auth, environment, problems)
    if target is not None and target.extra_options:
        merged["options"] = " ".join(part for part in (merged.get("options"), target.extra_options) if part)
    merged.setdefault("application_name", application_name)
    if problems:
        raise ConfigError(problems)
    return ConnectSpec(
        target=target,
        user=str(user),
        dbname=str(dbname),
        expires_in=helper["expires_in"],
        profile=helper["profile"],
        params={"host": host, "user": str(user), "dbname": str(dbname), **merged},
    )


# ------------------------------------------------------------------------------------------ DSN and URL


def is_cluster_id(text: str) -> bool:
    """A bare DSQL cluster id (26 lower-case letters and digits), which stands for <id>.dsql.<region>.on.aws."""
    return _CLUSTER_ID.match(text) is not None


def looks_like_conninfo(text: str) -> bool:
    """A URL (``postgresql://...``) or a keyword DSN (``host=... user=...``), not a host name."""
    return "://" in text or "=" in text


def parse_conninfo(text: str) -> dict[str, str]:
    """A libpq keyword DSN or a ``postgresql://`` URL (``postgresql+psycopg://`` too) -> its parameters, with the
    names libpq uses (``dbname``, not ``database``). Values stay strings: :func:`resolve` types them."""
    if "://" in text:
        return parse_url(text)
    return parse_keyword_dsn(text)


def parse_url(text: str) -> dict[str, str]:
    match = _URL_SCHEME.match(text)
    if match is None:
        scheme = text.split("://", 1)[0]
        raise ConfigError([f"unsupported URL scheme {scheme!r}: use postgresql://user@host:port/dbname?param=value"])
    parts = urlsplit("postgresql://" + text[match.end() :])
    if "," in parts.netloc:
        raise ConfigError(["a URL with several hosts is not supported: name one cluster endpoint"])
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigError([f"invalid port in the URL: {exc}"]) from None
    values: dict[str, str] = {}
    if parts.hostname:
        values["host"] = unquote(parts.hostname)
    if port is not None:
        values["port"] = str(port)
    if parts.username:
        values["user"] = unquote(parts.username)
    if parts.password is not None:
        values["password"] = unquote(parts.password)
    if parts.path.strip("/"):
        values["dbname"] = unquote(parts.path.lstrip("/"))
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        values[ALIASES.get(key, key)] = value
    return values


def parse_keyword_dsn(text: str) -> dict[str, str]:
    """libpq's ``key=value`` form: values unquoted (ending at white space) or in single quotes; a backslash
    escapes the next character in both."""
    values: dict[str, str] = {}
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _KEYWORD.match(text, position)
        if match is None:
            # The position, not the text: what follows may be a password.
            column = len(text) - len(text[position:].lstrip()) + 1
            raise ConfigError([f"invalid connection string at character {column}: expected key=value"])
        value, position = _dsn_value(text, match.end())
        values[ALIASES.get(match.group(1), match.group(1))] = value
    return values


def _dsn_value(text: str, start: int) -> tuple[str, int]:
    quoted = text.startswith("'", start)
    position = start + 1 if quoted else start
    chars: list[str] = []
    while position < len(text):
        char = text[position]
        if char == "\\" and position + 1 < len(text):
            chars.append(text[position + 1])
            position += 2
            continue
        if (quoted and char == "'") or (not quoted and char.isspace()):
            return "".join(chars), position + 1
        chars.append(char)
        position += 1
    if quoted:
        raise ConfigError(["invalid connection string: a quoted value has no closing quote"])
    return "".join(chars), position


# ---------------------------------------------------------------------------------------------- merging


def _merge(hostname: str | None, params: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    if hostname and looks_like_conninfo(hostname):
        merged.update(parse_conninfo(hostname))
    elif hostname:
        merged["host"] = hostname.strip()
    for key, value in params.items():
        if value is not None:  # None: not given (e.g. hostaddr=None), so the DSN's value stays
            merged[ALIASES.get(key, key)] = value
    return merged


def _typed(values: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    """Numbers given as text become ints; a value that is no number is reported and dropped (so that it is
    reported once, not again by every check that reads it)."""
    typed = dict(values)
    for key in sorted(INTEGER_PARAMS & typed.keys()):
        number = _whole_number(typed[key])
        if number is None:
            problems.append(f"{key} must be a whole number, got: {typed.pop(key)!r}")
        else:
            typed[key] = number
    return typed


def _whole_number(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _helper_values(merged: dict[str, Any], options: HelperOptions, problems: list[str]) -> dict[str, Any]:
    """Take our own parameters out of ``merged`` (they are never sent to the server); keywords win."""
    from_dsn = {key: merged.pop(key) for key in HELPER_PARAMS & merged.keys()}
    dsn_lifetime = from_dsn.get("expires_in", from_dsn.get("token_duration_secs"))
    expires_in = options.expires_in if options.expires_in is not None else dsn_lifetime
    if expires_in is None:
        expires_in = DEFAULT_EXPIRES_IN
    try:
        check_expires_in(expires_in)
    except SigningError as exc:
        problems.append(str(exc))
        expires_in = DEFAULT_EXPIRES_IN
    return {
        "region": options.region or from_dsn.get("region") or None,
        "profile": options.profile or from_dsn.get("profile") or None,
        "cluster_id": options.cluster_id or from_dsn.get("cluster_id") or None,
        "expires_in": expires_in,
    }


def _split_port(host: str, merged: dict[str, Any], problems: list[str]) -> tuple[str, int]:
    """``host`` may carry a port (``host:5432``) or be a pasted URL's host; the port must then agree."""
    from sigv4_proxy.tokens import split_host

    try:
        split = split_host(host)
    except SigningError as exc:
        problems.append(str(exc))
        return host, int(merged.get("port", DEFAULT_PORT))
    port = merged.get("port")
    if split.port is not None:
        if port is not None and port != split.port:
            problems.append(f"hostname {host!r} names port {split.port} but port is {port}")
        merged["port"] = port = split.port
    return split.hostname, int(port if port is not None else DEFAULT_PORT)


# ---------------------------------------------------------------------------------------------- targets


def _target(
    host: str, port: int, helper: Mapping[str, Any], environment: Environment, problems: list[str]
) -> Target | None:
    """The token's target for ``host``: a cluster endpoint, a PrivateLink private-DNS host (the token names that
    host), a VPC endpoint host (the token names the cluster's public host; ``cluster_id`` says which) or a bare
    cluster id (the public host in the region)."""
    from sigv4_proxy.tokens import host_info

    explicit_region = helper["region"]
    cluster_id = helper["cluster_id"]
    if cluster_id is not None and not _CLUSTER_ID.match(cluster_id):
        problems.append(f"cluster_id must be 26 lower-case letters and digits (a DSQL cluster id), got: {cluster_id}")
        return None
    if is_cluster_id(host):
        region = explicit_region or _fallback_region(helper["profile"], environment)
        if region is None:
            problems.append(_no_region(f"cluster id {host!r}", f"{host}.dsql.<region>.on.aws"))
            return None
        host = f"{host}.dsql.{region}.on.aws"
    info = host_info(host)
    if info.kind == "rds":
        problems.append(
            f"{host} is an RDS endpoint: these helpers are for Aurora DSQL (RDS tokens: sigv4_proxy.rds_token)"
        )
        return None
    if info.region is not None and explicit_region is not None and explicit_region != info.region:
        problems.append(
            f"region {explicit_region!r} does not match host {host!r}, which is in {info.region!r}: the token would be "
            "refused; leave region out"
        )
        return None
    if info.kind == "vpce":
        if cluster_id is None:
            problems.append(
                f"{host} is a VPC endpoint, which names no cluster: pass cluster_id=<the 26-character cluster id> (the "
                "token is signed for <cluster-id>.dsql.<region>.on.aws and the cluster is named in the options)"
            )
            return None
        return Target(hostname=host, port=port, cluster_id=cluster_id, region=info.region)
    if info.kind == "dsql":
        if cluster_id is not None and cluster_id != info.cluster_id:
            problems.append(f"cluster_id {cluster_id!r} does not match host {host!r}: leave cluster_id out")
            return None
        return Target(hostname=host, port=port, region=info.region)
    region = explicit_region or info.region or _fallback_region(helper["profile"], environment)
    if region is None:
        problems.append(_no_region(f"host {host!r}", "<cluster-id>.dsql.<region>.on.aws"))
        return None
    return Target(hostname=host, port=port, region=region)


def _fallback_region(profile: str | None, environment: Environment) -> str | None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        value = environment.variables.get(name, "").strip()
        if value:
            return value
    return environment.profile_region(profile)


def _no_region(what: str, form: str) -> str:
    return (
        f"region is required for {what} (only {form} names carry it): pass region=..., or set AWS_REGION or a "
        "profile's region"
    )


# ------------------------------------------------------------------------------------------------- TLS


def _tls_defaults(
    merged: dict[str, Any], target: Target | None, iam_auth: bool, environment: Environment, problems: list[str]
) -> None:
    """verify-full with the system's roots (Amazon Root CA 1 among them) unless told otherwise. A VPC endpoint
    host is not in the cluster's certificate, so there the default is verify-ca, and verify-full is refused."""
    through_vpce = target is not None and target.cluster_id is not None
    sslmode = merged.setdefault("sslmode", "verify-ca" if through_vpce else "verify-full")
    if sslmode not in SSLMODES:
        problems.append(f"sslmode must be one of {', '.join(SSLMODES)}, got: {sslmode!r}")
        return
    if iam_auth and sslmode not in TLS_SSLMODES:
        problems.append(
            f"sslmode={sslmode} could send the IAM token unencrypted: use verify-full (the default), verify-ca or "
            "require"
        )
    if through_vpce and sslmode == "verify-full":
        problems.append(
            "sslmode=verify-full cannot work through a VPC endpoint host: the certificate names the cluster, not "
            "the endpoint; use sslmode=verify-ca (the default there)"
        )
    if sslmode == "verify-full":
        merged.setdefault("sslrootcert", DEFAULT_SSLROOTCERT)
    elif sslmode == "verify-ca" and merged.get("sslrootcert", DEFAULT_SSLROOTCERT) == DEFAULT_SSLROOTCERT:
        # libpq takes sslrootcert=system with verify-full only: name the system's bundle file instead.
        bundle = environment.system_ca_file()
        if bundle is None:
            problems.append(
                "sslmode=verify-ca needs sslrootcert=<a PEM file with Amazon Root CA 1>: no system bundle found"
            )
        else:
            merged["sslrootcert"] = bundle
