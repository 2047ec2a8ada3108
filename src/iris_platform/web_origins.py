"""Which Host names and which browser origins the server trusts.

`IRIS_ALLOWED_HOSTS` stops DNS rebinding: a page of evil.example whose name is made to resolve to
this machine still sends `Host: evil.example`. `IRIS_CORS_ALLOWED_ORIGINS` names the other sites
whose pages may call the API from a browser. Both are parsed here once, with errors that say
what to write instead.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

HOSTS_VARIABLE = "IRIS_ALLOWED_HOSTS"
ORIGINS_VARIABLE = "IRIS_CORS_ALLOWED_ORIGINS"

# RFC 6761: localhost and every name under it are this machine.
LOCAL_NAMES = ("localhost", "*.localhost")
# Loopback, link-local, and the private ranges of RFC 1918 and RFC 4193.
PRIVATE_NETWORKS = (
    "127.0.0.0/8",
    "::1/128",
    "169.254.0.0/16",
    "fe80::/10",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "fc00::/7",
)

_LABEL = r"(?!-)[a-z0-9_-]{1,63}(?<!-)"
_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
_DEFAULT_PORTS = {"http": "80", "https": "443"}

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def split_comma_list(raw: str) -> tuple[str, ...]:
    """`a, b,,c` -> ("a", "b", "c"): the form of both settings."""
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _split_port(value: str) -> tuple[str, str | None]:
    """`name:8000` -> ("name", "8000"); `[::1]:8000` -> ("::1", "8000"); a bare IPv6 address has no port."""
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            raise ValueError("an opening '[' without its ']'")
        rest = value[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(f"{rest!r} after the address")
        return value[1:end], rest[1:] if rest else None
    if value.count(":") == 1:
        host, port = value.split(":")
        return host, port
    return value, None


def _check_port(port: str | None, *, wildcard: bool) -> str | None:
    if port is None or (wildcard and port == "*"):
        return port
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"the port {port!r} is not a number from 1 to 65535" + (" or *" if wildcard else ""))
    return str(int(port))


@dataclass(frozen=True)
class _HostPattern:
    name: str | None = None  # an exact name, or the suffix ".example.com" of a wildcard
    wildcard: bool = False
    network: Network | None = None
    port: str | None = None

    def matches(self, host: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address | None, port: str) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            return address is not None and address.version == self.network.version and address in self.network
        assert self.name is not None
        return host.endswith(self.name) if self.wildcard else host == self.name


def _host_pattern(raw: str) -> _HostPattern:
    value = raw.lower()
    if "://" in value:
        name = urlsplit(value).hostname or "its host name"
        raise ValueError(f"it is a URL: write only its host name, such as {name}")
    if "/" in value:
        try:
            return _HostPattern(network=ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise ValueError("it is neither a host name nor a network such as 10.0.0.0/8") from None
    host, port = _split_port(value)
    port = _check_port(port, wildcard=True)
    port = None if port == "*" else port
    host = host.removesuffix(".")
    try:
        address = ipaddress.ip_address(host)
        return _HostPattern(network=ipaddress.ip_network(address), port=port)
    except ValueError:
        pass
    if host.startswith("*.") and _NAME.fullmatch(host[2:]):
        return _HostPattern(name=host[1:], wildcard=True, port=port)
    if _NAME.fullmatch(host):
        return _HostPattern(name=host, port=port)
    raise ValueError("it is not a host name, a *.wildcard name, an IP address or a network")


class AllowedHosts:
    """The Host header values the server answers to (the name, and a port if a pattern gives one)."""

    def __init__(self, patterns: Iterable[str], *, any_host: bool = False):
        self.patterns = tuple(patterns)
        self.any_host = any_host or "*" in self.patterns
        parsed = []
        for raw in self.patterns:
            if raw == "*":
                continue
            try:
                parsed.append(_host_pattern(raw))
            except ValueError as exc:
                raise ValueError(
                    f"{HOSTS_VARIABLE}: {raw!r} is not a host pattern ({exc}). Write host names, *.example.com "
                    "for every name under a domain, IP addresses or networks (10.0.0.0/8), optionally with "
                    ":port, separated by commas; * allows any host."
                ) from None
        self._parsed = tuple(parsed)
        # Bounded: a flood of made-up Host values evicts entries instead of growing the cache.
        self.allows = lru_cache(maxsize=512)(self._allows)

    @classmethod
    def from_setting(cls, configured: Iterable[str], bind_host: str) -> AllowedHosts:
        """The setting's patterns; without any, this machine's own names and addresses: localhost names,
        loopback and private addresses, the address the server binds and the machine's host name."""
        configured = tuple(configured)
        if configured:
            return cls(configured)
        own = [name for name in (bind_host, socket.gethostname()) if name and _is_host(name)]
        return cls((*LOCAL_NAMES, *PRIVATE_NETWORKS, *own))

    def _allows(self, header: bytes) -> bool:
        if self.any_host:
            return True
        try:
            host, port = _split_port(header.decode("latin-1").lower())
        except ValueError:
            return False
        host = host.removesuffix(".")
        if port is not None and not port.isdigit():
            return False
        try:
            address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
        except ValueError:
            address = None
        return any(p.matches(host, address, port or "") for p in self._parsed)


def _is_host(name: str) -> bool:
    try:
        _host_pattern(name)
    except ValueError:
        return False
    return True


class AllowedOrigins:
    """Origins (`scheme://host[:port]`) of other sites whose pages may call the API from a browser.

    `*.example.com` matches every name under a domain, `:*` any port, and `*` alone any origin.
    """

    def __init__(self, patterns: Iterable[str]):
        self.patterns = tuple(patterns)
        self.any_origin = "*" in self.patterns
        alternatives = []
        for raw in self.patterns:
            if raw == "*":
                continue
            try:
                alternatives.append(_origin_regex(raw))
            except ValueError as exc:
                raise ValueError(
                    f"{ORIGINS_VARIABLE}: {raw!r} is not an origin ({exc}). Write origins as a browser sends "
                    "them, scheme://host[:port] with no path (https://app.example.com, http://localhost:3000, "
                    "https://*.example.com, http://localhost:*), separated by commas."
                ) from None
        # One regular expression, the form Starlette's CORS middleware takes too.
        self.regex = "|".join(alternatives) if alternatives else None
        self._compiled = re.compile(self.regex) if self.regex else None

    def allows(self, origin: str) -> bool:
        if self.any_origin:
            return True
        return self._compiled is not None and self._compiled.fullmatch(origin.lower()) is not None


def _origin_regex(raw: str) -> str:
    value = raw.lower().removesuffix("/")
    scheme, separator, authority = value.partition("://")
    if not separator or not _SCHEME.fullmatch(scheme):
        raise ValueError("it has no scheme such as https://")
    if any(c in authority for c in "/?#@"):
        raise ValueError("an origin has no path, query or user name")
    host, port = _split_port(authority)
    port = _check_port(port, wildcard=True)
    if port == _DEFAULT_PORTS.get(scheme):
        port = None  # browsers leave the default port out
    if host.startswith("*.") and _NAME.fullmatch(host[2:]):
        host_regex = r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*" + re.escape(host[1:])
    elif _NAME.fullmatch(host) or _is_ip(host):
        host_regex = re.escape(f"[{host}]" if ":" in host else host)
    else:
        raise ValueError("its host is not a name, a *.wildcard name or an IP address")
    port_regex = "" if port is None else r":[0-9]+" if port == "*" else re.escape(f":{port}")
    return re.escape(f"{scheme}://") + host_regex + port_regex


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def origin_of(url: str) -> str:
    """`http://127.0.0.1:8000/x?y` -> `http://127.0.0.1:8000`: a Referer's origin."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{re.split(r'[/?#]', rest, maxsplit=1)[0]}".lower()


def is_own_origin(origin: str, host: str) -> bool:
    """Whether a browser's `Origin` names the server the request reached, whose `Host` is `host`
    (as Go's CrossOriginProtection compares them: the scheme is not part of Host)."""
    scheme, _, authority = origin.lower().partition("://")
    host = host.lower()
    return authority == host or f"{authority}:{_DEFAULT_PORTS.get(scheme)}" == host
