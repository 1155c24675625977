"""What every response of the web app and the live view carries, and which requests they refuse.

- Headers: no script from elsewhere (CSP), no sniffing of a result as HTML, no framing,
  no referrer; the `Server` header names no versions (see serving.py).
- Host allow-list: a page on an attacker's domain that re-points its DNS name at 127.0.0.1
  (DNS rebinding) reaches a loopback server with its own name in `Host`; only the names
  this server is known by are answered.
- Cross-origin POSTs: any web page may submit a form or a fetch to a loopback server; a
  browser says where a request comes from (`Sec-Fetch-Site`, else `Origin`), and only
  same-origin ones are taken. Clients that are not browsers send neither and are served.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from flask import Flask, Response, jsonify, request
from werkzeug.datastructures import Headers

from ..errors import ConfigError

# Every script, style, image and stream comes from this server; nothing runs inline.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "media-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}
# A name or an address, with or without a port: what may follow --allowed-host.
HOST_VALUE = re.compile(r"[a-z0-9.-]+(:\d{1,5})?|\[[0-9a-f:.]+\](:\d{1,5})?|[0-9a-f:.]+", re.IGNORECASE)
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# `none`: typed into the address bar or a bookmark; browsers never send it with a page's POST.
SAME_ORIGIN_FETCH_SITES = ("same-origin", "none")


def host_name(host: str) -> str:
    """The name part of a Host value or of --allowed-host: lower case, no port, IPv6 without brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    if host.count(":") == 1:  # name:port (a bare IPv6 address has several colons)
        return host.partition(":")[0]
    return host


def allowed_host_names(bind_host: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The loopback names, the address the server is bound to (unless it is a wildcard) and `extra`."""
    names = set(LOOPBACK_NAMES)
    bound = host_name(bind_host)
    if bound and bound not in ("0.0.0.0", "::"):
        names.add(bound)
    for value in extra:
        name = host_name(value)
        if not name or not HOST_VALUE.fullmatch(value.strip()):
            raise ConfigError(f"--allowed-host {value!r} is not a host name — e.g. --allowed-host camera-box.lan")
        names.add(name)
    return frozenset(names)


def host_allowed(host_header: str | None, allowed: frozenset[str]) -> bool:
    if not host_header:
        return False
    name = host_name(host_header)
    if name in allowed:
        return True
    try:  # all of 127.0.0.0/8 is this machine; no DNS name can stand behind an address literal
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def cross_origin(headers: Headers | Mapping[str, str], host_header: str | None) -> str | None:
    """Why a state-changing request comes from another site, or None if it does not."""
    site = headers.get("Sec-Fetch-Site")
    if site is not None:
        return None if site.lower() in SAME_ORIGIN_FETCH_SITES else f"Sec-Fetch-Site: {site}"
    origin = headers.get("Origin")
    if origin is None:
        return None  # not from a browser page (curl, a script)
    if origin == "null" or (urlsplit(origin).netloc.lower() != (host_header or "").lower()):
        return f"Origin: {origin}"
    return None


def harden(app: Flask, allowed_hosts: frozenset[str]) -> None:
    """Install the Host check, the cross-origin check and the security headers on `app`."""

    def refuse(status: int, message: str) -> Response:
        response = jsonify(error=message)
        response.status_code = status
        return response

    @app.before_request
    def check_request() -> Response | None:
        host = request.headers.get("Host")
        if not host_allowed(host, allowed_hosts):
            name = host_name(host or "")
            return refuse(
                400,
                f"this server does not answer to the host name {name!r} — if that is how you reach "
                f"it, start it with --allowed-host {name or 'NAME'}",
            )
        if request.method not in SAFE_METHODS:
            reason = cross_origin(request.headers, host)
            if reason:
                return refuse(403, f"cross-origin request refused ({reason}) — use this server's own page")
        return None

    @app.after_request
    def add_headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response
