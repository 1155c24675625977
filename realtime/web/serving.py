"""Listening for HTTP: our own socket (so a busy port is our one-line error) and a quiet request handler."""

from __future__ import annotations

import errno
import socket

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from ..errors import OutputError

SERVER_NAME = "realtime"  # the whole Server header: versions only help an attacker pick an exploit


class RequestHandler(WSGIRequestHandler):
    """Werkzeug's handler without its version banner and without a log line per request."""

    @property
    def server_version(self) -> str:  # type: ignore[override]
        return SERVER_NAME

    def version_string(self) -> str:
        return SERVER_NAME

    def log_request(self, *args: object, **kwargs: object) -> None:  # an MJPEG stream or SSE would flood stderr
        pass


def bind(host: str, port: int, *, fix: str) -> socket.socket:
    """A listening socket on host:port; OutputError (one line, ending with `fix`) if there can be none.

    Werkzeug binds by itself only to print two lines and sys.exit(1) when the port is taken,
    so the socket is made here (before anything else starts) and handed to `serve`.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)  # SO_REUSEADDR, as Werkzeug would
    except OSError as exc:
        raise OutputError(f"cannot listen on {_address(host, port)}: {_reason(exc)} — {fix}") from None


def serve(app: Flask, sock: socket.socket, handler: type[RequestHandler] = RequestHandler) -> BaseWSGIServer:
    """A threaded server for `app` on a socket from `bind` (which it takes over)."""
    host, port = sock.getsockname()[:2]
    try:
        return make_server(host, port, app, threaded=True, request_handler=handler, fd=sock.fileno())
    finally:
        sock.close()  # the server holds its own duplicate of the socket


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _reason(exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return "the port is in use by another program"
    if exc.errno == errno.EACCES:
        return "permission denied (ports below 1024 need privileges)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "that address is not one of this machine's"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror})"
    return exc.strerror or str(exc)
