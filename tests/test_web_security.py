"""Security of the upload app and the live view: headers, Host allow-list, cross-origin refusal, port errors."""

from __future__ import annotations

import http.client
import io
import os
import re
import socket
import subprocess
import sys

import pytest
from werkzeug.datastructures import Headers

from conftest import REPO, run_cli
from realtime.errors import ConfigError, OutputError
from realtime.web.app import RUNNER_KEY, WebSettings, close_app, create_app
from realtime.web.jobs import JobSettings
from realtime.web.live import LiveViewServer
from realtime.web.security import CONTENT_SECURITY_POLICY, allowed_host_names


@pytest.fixture
def app(tmp_path):
    app = create_app(
        WebSettings(jobs=JobSettings(video_codec="vp8"), allowed_hosts=allowed_host_names("127.0.0.1", ["box.lan"]))
    )
    yield app
    close_app(app)


@pytest.fixture
def client(app):
    return app.test_client()


def assert_hardened(headers) -> None:
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    csp = headers["Content-Security-Policy"]
    assert csp == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp


def test_every_kind_of_response_carries_the_security_headers(client):
    for url, status in (
        ("/", 200),
        ("/static/app.js", 200),
        ("/static/timeline.js", 200),
        ("/api/jobs/nope", 404),
        ("/no/such/page", 404),
    ):
        reply = client.get(url, headers={"Host": "127.0.0.1:8000"})
        assert reply.status_code == status, url
        assert_hardened(reply.headers)
    refused = client.post("/api/jobs", data={}, headers={"Origin": "http://evil.example"})
    assert_hardened(refused.headers)


def test_the_page_has_nothing_inline_for_the_csp_to_block(client):
    html = client.get("/").get_data(as_text=True)
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline script"
    assert "<style" not in html and " style=" not in html and not re.search(r" on[a-z]+=", html)


@pytest.mark.parametrize(
    "host",
    [
        "localhost:8000",
        "127.0.0.1:8000",
        "127.0.0.1",
        "[::1]:8000",
        "127.0.0.5:80",
        "LOCALHOST:8000",
        "box.lan:8000",
        "box.lan",
    ],
)
def test_loopback_names_and_allowed_hosts_are_answered(client, host):
    assert client.get("/", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:8000",
        "localhost.evil.example",
        "127.0.0.1.evil.example",
        "10.0.0.5:8000",
        "box.lan.evil.example",
    ],
)
def test_other_host_names_are_refused(client, host):
    """DNS rebinding: an attacker's name pointed at 127.0.0.1 arrives with that name in Host."""
    reply = client.get("/", headers={"Host": host})
    assert reply.status_code == 400
    error = reply.get_json()["error"]
    assert "does not answer to the host name" in error and "--allowed-host" in error
    assert client.get("/api/jobs/" + "0" * 32, headers={"Host": host}).status_code == 400  # the API too


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "http://localhost:9999"},  # another port is another origin
        {"Origin": "null"},  # a sandboxed frame or a file:// page
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site", "Origin": "http://localhost"},  # a sibling subdomain is not this server
    ],
)
def test_cross_origin_posts_are_refused_before_anything_is_stored(client, app, headers):
    reply = client.post(
        "/api/jobs",
        data={"video": (io.BytesIO(b"not looked at"), "x.avi")},
        content_type="multipart/form-data",
        headers=headers,
    )
    assert reply.status_code == 403
    assert "cross-origin request refused" in reply.get_json()["error"]
    assert app.extensions[RUNNER_KEY].root is None  # no job folder was made


@pytest.mark.parametrize(
    "headers",
    [
        {},  # not a browser: curl, a script
        {"Origin": "http://localhost"},  # the test client's own origin
        {"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"},
    ],
)
def test_same_origin_and_non_browser_posts_pass_the_check(client, headers):
    reply = client.post("/api/jobs", data={"other": "x"}, content_type="multipart/form-data", headers=headers)
    assert reply.status_code == 400  # past the guard: refused only for having no video
    assert "video" in reply.get_json()["error"]


def test_allowed_host_values_are_checked():
    assert allowed_host_names("0.0.0.0") == {"localhost", "127.0.0.1", "::1"}  # a wildcard is no name
    assert "192.168.1.5" in allowed_host_names("192.168.1.5")
    assert {"cam.lan", "fe80::1"} <= allowed_host_names("127.0.0.1", ["Cam.LAN:8000", "[fe80::1]"])
    for bad in ("", "http://x/", "*"):
        with pytest.raises(ConfigError, match="is not a host name"):
            allowed_host_names("127.0.0.1", [bad])


# More than http.client accepts: refused before the app sees it, by the server's own error page.
TOO_MANY_HEADERS = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Filler: 1\r\n" * 120 + b"\r\n"


def raw_request(port: int, request: bytes) -> tuple[str, Headers]:
    """Send bytes as they are (bad Host, malformed lines); the status line and headers of the reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
    head = data.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    return head[0], Headers([(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in head[1:])])


def test_the_live_view_is_hardened_the_same_way():
    live = LiveViewServer("127.0.0.1", 0, allowed_hosts=["kiosk.lan"])
    try:
        conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=10)
        conn.request("GET", "/")
        reply = conn.getresponse()
        reply.read()
        assert reply.status == 200
        assert_hardened(reply.headers)
        assert reply.headers["Server"] == "realtime"  # no Werkzeug or Python version
        status, _ = raw_request(live.port, b"GET / HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
        assert " 400 " in status
        status, _ = raw_request(live.port, b"GET / HTTP/1.1\r\nHost: kiosk.lan:80\r\nConnection: close\r\n\r\n")
        assert " 200 " in status
        status, headers = raw_request(live.port, TOO_MANY_HEADERS)  # answered by the HTTP server itself
        assert " 431 " in status and headers["Server"] == "realtime"
    finally:
        live.close()


def test_a_busy_port_is_one_line_for_the_live_view(capfd):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(OutputError) as caught:
            LiveViewServer("127.0.0.1", port)
    assert str(caught.value) == (
        f"cannot listen on 127.0.0.1:{port}: the port is in use by another program — choose another --serve HOST:PORT"
    )
    assert capfd.readouterr().err == ""  # nothing of Werkzeug's own


@pytest.mark.slow
def test_serve_on_a_busy_port_is_one_line_and_leaves_no_folder(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        proc = run_cli("serve", "--port", str(port), env={"TMPDIR": str(tmp_path)}, timeout=60)
    assert proc.returncode == 2
    expected = (
        f"realtime: error: cannot listen on 127.0.0.1:{port}: the port is in use by another program — stop "
        f"the other server or choose another --port or --host"
    )
    assert proc.stderr.strip().splitlines() == [expected]
    assert list(tmp_path.iterdir()) == []  # no realtime-web-* temporary folder


@pytest.mark.slow
def test_serve_sends_no_version_and_refuses_foreign_hosts(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "realtime", "serve", "--port", "0", "--allowed-host", "box.lan"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    try:
        line = proc.stdout.readline()
        match = re.search(r"serving on http://127\.0\.0\.1:(\d+)/", line)
        assert match, line + (proc.stderr.read() if proc.poll() is not None else "")
        port = int(match.group(1))
        status, headers = raw_request(port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert " 200 " in status and headers["Server"] == "realtime"
        assert_hardened(headers)
        status, _ = raw_request(port, b"GET / HTTP/1.1\r\nHost: rebind.evil.example\r\nConnection: close\r\n\r\n")
        assert " 400 " in status
        status, _ = raw_request(port, b"GET / HTTP/1.1\r\nHost: box.lan:8000\r\nConnection: close\r\n\r\n")
        assert " 200 " in status
        status, headers = raw_request(port, TOO_MANY_HEADERS)
        assert " 431 " in status and headers["Server"] == "realtime"
        assert list(tmp_path.iterdir()) == []  # no folder before the first upload
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
