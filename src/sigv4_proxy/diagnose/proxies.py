"""The proxy a request went through: HTTPS_PROXY / HTTP_PROXY / ALL_PROXY and NO_PROXY from the environment, read
the way httpx reads them with trust_env (its default, which every door uses): urllib's getproxies_environment(),
then httpx's proxy mounts (most specific pattern first). A failure to connect through a proxy names the proxy."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from sigv4_proxy.redact import mask_url_credentials

_PROXY_LABELS = {"https": "the HTTPS proxy", "http": "the HTTP proxy", "all": "the proxy"}


@dataclass(frozen=True)
class ProxyInUse:
    """A proxy from the environment. `url` may carry credentials: show :attr:`display`."""

    url: str
    variable: str  # the environment variable it came from, as spelled: HTTPS_PROXY, https_proxy, ALL_PROXY, ...

    @property
    def display(self) -> str:
        """The URL with its credentials masked: ``http://user:****@proxy.corp:3128``."""
        return mask_url_credentials(self.url)

    @property
    def label(self) -> str:
        """``the HTTPS proxy`` (from HTTPS_PROXY), ``the HTTP proxy``, ``the proxy`` (ALL_PROXY)."""
        return _PROXY_LABELS.get(self.variable.lower().removesuffix("_proxy"), "the proxy")

    def describe(self) -> str:
        return f"{self.label} {self.display} (from {self.variable})"


def environment_proxies(environ: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """``{"https": (value, variable name), "no": ...}`` exactly as urllib.request.getproxies_environment() reads
    the environment (a lowercase variable wins; an empty lowercase one unsets; HTTP_PROXY is ignored in CGI)."""
    found: dict[str, tuple[str, str]] = {}
    for name, value in environ.items():
        if value and name.lower().endswith("_proxy"):
            found[name.lower()[:-6]] = (value, name)
    if "REQUEST_METHOD" in environ:
        found.pop("http", None)
    for name, value in environ.items():
        if name.endswith("_proxy"):
            if value:
                found[name.lower()[:-6]] = (value, name)
            else:
                found.pop(name.lower()[:-6], None)
    return found


@dataclass(frozen=True)
class _ProxyPattern:
    """httpx's URLPattern: ``all://``, ``https://``, ``all://*example.com``, ``all://10.0.0.1``, ``http://h:8080``."""

    scheme: str
    host: str
    port: int | None

    @classmethod
    def parse(cls, pattern: str) -> _ProxyPattern:
        parts = urlsplit(pattern)
        netloc = parts.netloc.rpartition("@")[2]
        if netloc.startswith("["):  # [::1]:8080
            host, _, rest = netloc[1:].partition("]")
            port = rest.removeprefix(":")
        else:
            host, _, port = netloc.partition(":")
        return cls(
            "" if parts.scheme == "all" else parts.scheme,
            "" if host == "*" else host.lower(),
            int(port) if port.isdigit() else None,
        )

    @property
    def priority(self) -> tuple[int, int, int]:
        return (0 if self.port is not None else 1, -len(self.host), -len(self.scheme))

    def matches(self, scheme: str, host: str, port: int | None) -> bool:
        if self.scheme and self.scheme != scheme:
            return False
        if self.host:
            if self.host.startswith("*."):
                if not (host.endswith(self.host[1:]) and len(host) > len(self.host) - 1):
                    return False
            elif self.host.startswith("*"):
                domain = self.host[1:]
                if not (host == domain or host.endswith("." + domain)):
                    return False
            elif host != self.host:
                return False
        return self.port is None or self.port == port


def _no_proxy_pattern(entry: str) -> str:
    """A NO_PROXY entry as httpx mounts it (curl's rules: ``.example.com`` subdomains only, ``example.com``
    the domain and its subdomains, IP addresses and ``localhost`` exactly)."""
    import ipaddress

    if "://" in entry:
        return entry
    address = entry.split("/")[0]
    for kind, shape in ((ipaddress.IPv4Address, "all://{}"), (ipaddress.IPv6Address, "all://[{}]")):
        try:
            kind(address)
        except ValueError:
            continue
        return shape.format(entry)
    return f"all://{entry}" if entry.lower() == "localhost" else f"all://*{entry}"


def proxy_for(url: str, environ: Mapping[str, str] | None = None, *, honour_no_proxy: bool = True) -> ProxyInUse | None:
    """The proxy httpx (trust_env) sends a request for `url` through, per `environ` (default: os.environ,
    read now); None for a direct connection. Pure apart from that default. System proxy settings (macOS,
    Windows registry), which urllib adds when the environment has none, are not looked at."""
    if environ is None:
        import os

        environ = os.environ
    found = environment_proxies(environ)
    mounts: list[tuple[_ProxyPattern, ProxyInUse | None]] = []
    for scheme in ("http", "https", "all"):
        if scheme in found:
            value, variable = found[scheme]
            proxy = ProxyInUse(value if "://" in value else f"http://{value}", variable)
            mounts.append((_ProxyPattern.parse(f"{scheme}://"), proxy))
    if honour_no_proxy and "no" in found:
        for entry in (part.strip() for part in found["no"][0].split(",")):
            if entry == "*":
                return None
            if entry:
                mounts.append((_ProxyPattern.parse(_no_proxy_pattern(entry)), None))
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port == {"http": 80, "https": 443}.get(scheme):
        port = None  # httpx drops a URL's default port before matching
    host = (parts.hostname or "").lower()
    for pattern, mounted in sorted(mounts, key=lambda mount: mount[0].priority):
        if pattern.matches(scheme, host, port):
            return mounted
    return None
