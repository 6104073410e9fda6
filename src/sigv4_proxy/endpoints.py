"""What an endpoint's URL says about how to sign for it: the SigV4 service name and region.

Pure functions, standard library only (the proxy and the token commands call them at start-up).

    >>> infer("https://abc123.execute-api.us-east-1.amazonaws.com/prod/mcp")
    Endpoint(service='execute-api', region='us-east-1')
    >>> infer("abc.dsql-fnh4.eu-west-1.on.aws")
    Endpoint(service='dsql', region='eu-west-1')
    >>> infer("http://127.0.0.1:8000/mcp")
    Endpoint(service=None, region=None)

Recognised host shapes (``<r>`` is a region such as ``us-east-1``; the FIPS ``-fips`` suffix and the
``dualstack`` label are understood):

==========================================================  =====================
host                                                        service
==========================================================  =====================
``<id>.execute-api.<r>.amazonaws.com``                      ``execute-api``
``<vpce-id>.execute-api.<r>.vpce.amazonaws.com``            ``execute-api``
``<id>.lambda-url.<r>.on.aws``                              ``lambda``
``bedrock-agentcore.<r>.amazonaws.com`` (any path,          ``bedrock-agentcore``
including ``/runtimes/<url-encoded ARN>/invocations``)
``<id>.gateway.bedrock-agentcore.<r>.amazonaws.com``        ``bedrock-agentcore``
``<cluster-id>.dsql[-<suffix>].<r>.on.aws``                 ``dsql``
``<svc>.<r>.api.aws``                                       ``<svc>``
``<svc>.<r>.amazonaws.com`` / ``.amazonaws.com.cn``         ``<svc>``
``<instance>.<hash>.<r>.rds.amazonaws.com``                 ``rds``
``<svc>.amazonaws.com`` (global endpoint)                   ``<svc>`` (no region)
a custom domain, an IP address, ``localhost``               nothing
==========================================================  =====================

For AgentCore runtime URLs the runtime ARN in the path is parsed as well: :func:`agentcore_runtime_arn`
returns it decoded, so callers can warn when the ARN's region differs from the host's.
"""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

__all__ = ["Endpoint", "agentcore_runtime_arn", "host_of", "infer", "is_ip", "is_loopback", "is_region"]

# us-east-1, eu-central-2, us-gov-west-1, us-iso-east-1, us-isob-east-1, cn-north-1, il-central-1, ...
_REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$")

# AWS DNS suffixes, longest first so that `amazonaws.com.cn` wins over `amazonaws.com`.
_AWS_SUFFIXES = ("amazonaws.com.cn", "amazonaws.com", "api.aws", "on.aws")
# Only these carry global (region-less) service endpoints such as `sts.amazonaws.com`.
_GLOBAL_SUFFIXES = {"amazonaws.com", "amazonaws.com.cn"}

# Host labels that name a product rather than the SigV4 signing name.
_SIGNING_NAMES = {
    "lambda-url": "lambda",
}

# Labels that sit between the service and the region (or after the region) without meaning either.
_NEUTRAL_LABELS = {"dualstack", "vpce"}

_AGENTCORE_RUNTIME_PATH = re.compile(r"/runtimes/([^/]+)/invocations")


def bracketed(host: str) -> str:
    """A host as written before ``:port`` or in a URL: an IPv6 literal in brackets."""
    return f"[{host}]" if ":" in host else host


def host_port(host: str, port: int | str) -> str:
    """``host:port``, ``[::1]:port`` for an IPv6 literal."""
    return f"{bracketed(host)}:{port}"


class Endpoint(NamedTuple):
    """The signing parameters a host implies; ``None`` where it implies nothing."""

    service: str | None
    region: str | None


def host_of(url_or_host: str) -> str:
    """The lower-case host name of a URL (or of a bare ``host[:port]``), without brackets or port."""
    text = url_or_host.strip()
    if "://" not in text:
        text = "//" + text
    try:
        host = urlsplit(text).hostname
    except ValueError:
        return ""
    return (host or "").rstrip(".").lower()


def is_region(label: str) -> bool:
    """True for strings shaped like an AWS region name (``us-east-1``, ``us-gov-west-1``, ...)."""
    return bool(_REGION.match(label))


def is_loopback(url_or_host: str) -> bool:
    """True for ``localhost`` (and ``*.localhost``) and every loopback IP address (127.0.0.0/8, ::1)."""
    host = url_or_host.strip().lower() if is_ip(url_or_host.strip()) else host_of(url_or_host)
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def infer(url_or_host: str) -> Endpoint:
    """The (service, region) a URL or host name implies; ``Endpoint(None, None)`` when it implies nothing.

    Never raises: anything unrecognised (custom domains, IP addresses, loopback, garbage) yields no
    inference, and the caller asks the user for ``--service-name`` / ``--region``.
    """
    host = host_of(url_or_host)
    if not host or is_ip(host):
        return Endpoint(None, None)
    labels = host.split(".")
    split = _split_aws_suffix(labels)
    if split is None:
        return Endpoint(None, None)
    prefix, suffix = split
    region_index = _rightmost_region(prefix)
    if region_index is None:
        # A global endpoint such as `sts.amazonaws.com` names the service but no region.
        global_endpoint = suffix in _GLOBAL_SUFFIXES and len(prefix) == 1
        return Endpoint(_signing_name(prefix[0]) if global_endpoint else None, None)
    region = prefix[region_index]
    # RDS puts the service after the region: <instance>.<hash>.<region>.rds.amazonaws.com
    after_region = [label for label in prefix[region_index + 1 :] if label not in _NEUTRAL_LABELS]
    if after_region:
        return Endpoint(_signing_name(after_region[-1]), region)
    service_labels = [label for label in prefix[:region_index] if label not in _NEUTRAL_LABELS]
    if not service_labels:
        return Endpoint(None, region)
    return Endpoint(_signing_name(service_labels[-1]), region)


def agentcore_runtime_arn(url: str) -> str | None:
    """The decoded runtime ARN of a Bedrock AgentCore ``/runtimes/<url-encoded ARN>/invocations`` URL."""
    try:
        path = urlsplit(url if "://" in url else "//" + url).path
    except ValueError:
        return None
    match = _AGENTCORE_RUNTIME_PATH.search(path)
    if match is None:
        return None
    arn = unquote(match.group(1))
    return arn if arn.startswith("arn:") else None


def is_ip(host: str) -> bool:
    """True for an IPv4 or IPv6 address literal (without brackets)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _split_aws_suffix(labels: list[str]) -> tuple[list[str], str] | None:
    """(labels before the AWS DNS suffix, the suffix), or None for a host outside AWS's domains."""
    for suffix in _AWS_SUFFIXES:
        size = suffix.count(".") + 1
        if len(labels) > size and ".".join(labels[-size:]) == suffix:
            return labels[:-size], suffix
    return None


def _rightmost_region(labels: list[str]) -> int | None:
    for index in range(len(labels) - 1, -1, -1):
        if is_region(labels[index]):
            return index
    return None


def _signing_name(label: str) -> str:
    """The SigV4 signing name for a host label: `lambda-url` -> lambda, `dsql-fnh4` -> dsql, no -fips."""
    if label.endswith("-fips"):
        label = label[: -len("-fips")]
    if label in _SIGNING_NAMES:
        return _SIGNING_NAMES[label]
    if label == "dsql" or label.startswith("dsql-"):
        return "dsql"
    return label
