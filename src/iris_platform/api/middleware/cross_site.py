"""What a browser may send here on behalf of another site: the DNS-rebinding and cross-site request guard.

A page of any site can make the user's browser reach this server: a plain form post needs no CORS
preflight, and a page whose name is made to resolve to this machine reads answers as its own. So,
from the request's headers alone (no body is read, no handler runs):

- a `Host` that is not one of IRIS_ALLOWED_HOSTS is refused (400);
- a state-changing request (POST, PUT, PATCH, DELETE) from another site is refused (403). The
  browser says where a request comes from: `Sec-Fetch-Site` (every current browser; a page cannot
  forge it), else `Origin`, else `Referer`, compared with the request's own Host. An origin in
  IRIS_CORS_ALLOWED_ORIGINS is always accepted. A request with none of these headers comes from
  no browser page (curl, scripts, the CLI, other services) and passes, as Go's
  `http.CrossOriginProtection` decides;
- a CORS preflight from an origin that is not allowed is refused (403); allowed ones reach
  Starlette's CORS middleware, which answers them and adds the CORS headers (see app.py).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from iris_platform.api.middleware.security import send_json
from iris_platform.web_origins import (
    HOSTS_VARIABLE,
    ORIGINS_VARIABLE,
    AllowedHosts,
    AllowedOrigins,
    is_own_origin,
    origin_of,
)

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Sec-Fetch-Site values of a request the user made on this server's own pages or by hand (address bar).
_OWN = frozenset({b"same-origin", b"none"})
_SHOWN = 100  # characters of a refused header quoted back


class CrossSiteGuard:
    def __init__(self, app: ASGIApp, hosts: AllowedHosts, origins: AllowedOrigins):
        self.app = app
        self.hosts = hosts
        self.origins = origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])  # one C-level pass; the checks below are lookups
        host = headers.get(b"host")
        if host is not None and not self.hosts.allows(host):
            await send_json(send, 400, _host_refused(host.decode("latin-1")))
            return
        method = scope["method"]
        if method in STATE_CHANGING or (method == "OPTIONS" and b"access-control-request-method" in headers):
            source = self._foreign_source(
                host, headers.get(b"origin"), headers.get(b"referer"), headers.get(b"sec-fetch-site")
            )
            if source is not None:
                await send_json(send, 403, _cross_site_refused(method, source))
                return
        await self.app(scope, receive, send)

    def _foreign_source(
        self, host: bytes | None, origin: bytes | None, referer: bytes | None, fetch_site: bytes | None
    ) -> str | None:
        """The site a browser says the request comes from when that site is not trusted; else None."""
        claimed = origin if origin is not None else referer
        source = claimed.decode("latin-1") if claimed is not None else None
        if source is not None and origin is None:
            source = origin_of(source)
        if source is not None and self.origins.allows(source):
            return None
        if fetch_site is not None:
            if fetch_site in _OWN:
                return None
            return source or f"another site (Sec-Fetch-Site: {fetch_site.decode('latin-1')})"
        if source is None:
            return None  # no browser page sent this
        return None if host is not None and is_own_origin(source, host.decode("latin-1")) else source


def _host_refused(host: str) -> str:
    return (
        f"This server does not answer to the host name {host[:_SHOWN]!r} (a page of another site may be "
        f"reaching it through a rebound DNS name). If it is this server's own name, add it to "
        f"{HOSTS_VARIABLE} (comma-separated; *.example.com allows every name under a domain)."
    )


def _cross_site_refused(method: str, source: str) -> str:
    return (
        f"Refused a cross-site {method}: it comes from a page of {source[:_SHOWN]!r}, not from this "
        f"server's own pages. If that site is yours, add its origin to {ORIGINS_VARIABLE}; "
        "scripts and other services send their requests without an Origin header and are not refused."
    )
