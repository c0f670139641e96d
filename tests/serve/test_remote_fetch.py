"""Remote media fetches connect to the address that was checked: a resolver stub answers a host's first lookup with
an address the test counts as public (127.0.0.1) and every later lookup with a private one (127.0.0.2, where a
second server listens on the same port); the fetch reaches the first server only, for redirects too, and the
private server never sees a request. https verifies the certificate for the host name and sends it as SNI."""

from __future__ import annotations

import http.server
import ipaddress
import socket
import ssl
import subprocess
import threading
from contextlib import contextmanager

import pytest

from tunesmith.infer.engine import InvalidRequest
from tunesmith.serve import media
from tunesmith.serve.settings import ApiSettings

PUBLIC, PRIVATE = "127.0.0.1", "127.0.0.2"
SETTINGS = ApiSettings(allow_remote_media=True)


def handler(body: bytes, seen: list):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append((self.path, self.headers["Host"]))
            if self.path.startswith("/hop-to-"):
                self.send_response(302)
                self.send_header("Location", f"http://{self.path[len('/hop-to-'):]}/data")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return Handler


@contextmanager
def running(server):
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture()
def servers():
    """(port, requests seen by the public server, by the private one): both listen on the same port."""
    public_seen, private_seen = [], []
    public = http.server.ThreadingHTTPServer((PUBLIC, 0), handler(b"public bytes", public_seen))
    port = public.server_address[1]
    try:
        private = http.server.ThreadingHTTPServer((PRIVATE, port), handler(b"private bytes", private_seen))
    except OSError as err:
        public.server_close()
        pytest.skip(f"cannot listen on {PRIVATE}: {err}")
    with running(public), running(private):
        yield port, public_seen, private_seen


@pytest.fixture()
def rebinding(monkeypatch):
    """Lookups of *.example: the first of each host answers PUBLIC (except inside.example: always PRIVATE), every
    later one PRIVATE; 127.0.0.1 counts as a public address. Returns the lookups made."""
    lookups = []
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if not str(host).endswith(".example"):
            return real(host, port, *args, **kwargs)
        first = host not in lookups and host != "inside.example"
        lookups.append(host)
        address = PUBLIC if first else PRIVATE
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(media, "is_public", lambda address: address == ipaddress.ip_address(PUBLIC))
    return lookups


def test_the_connection_goes_to_the_checked_address(servers, rebinding):
    port, public_seen, private_seen = servers
    assert media.read_media_url(f"http://images.example:{port}/data", SETTINGS, "part") == b"public bytes"
    assert rebinding == ["images.example"]  # one lookup; a second one would have answered the private address
    assert public_seen == [("/data", f"images.example:{port}")] and private_seen == []


def test_redirects_are_checked_and_pinned_too(servers, rebinding):
    port, public_seen, private_seen = servers
    got = media.read_media_url(f"http://images.example:{port}/hop-to-other.example:{port}", SETTINGS, "part")
    assert got == b"public bytes" and rebinding == ["images.example", "other.example"]
    assert public_seen[-1] == ("/data", f"other.example:{port}") and private_seen == []
    with pytest.raises(InvalidRequest, match=r"inside.example resolves to 127.0.0.2, which is not a public address"):
        media.read_media_url(f"http://new.example:{port}/hop-to-inside.example:{port}", SETTINGS, "part", "video")
    assert private_seen == []


def test_https_verifies_the_host_name_and_sends_it(servers, rebinding, tmp_path, monkeypatch):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                           "/CN=secure.example", "-addext", "subjectAltName=DNS:secure.example", "-keyout", str(key),
                           "-out", str(cert)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"openssl cannot make a test certificate: {made.stderr.decode()[-200:]}")
    names = []
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    server_context.sni_callback = lambda sock, name, ctx: names.append(name)
    seen = []
    server = http.server.ThreadingHTTPServer((PUBLIC, 0), handler(b"tls bytes", seen))
    server.socket = server_context.wrap_socket(server.socket, server_side=True)
    monkeypatch.setattr(media, "tls_context", lambda: ssl.create_default_context(cafile=str(cert)))
    with running(server):
        port = server.server_address[1]
        assert media.read_media_url(f"https://secure.example:{port}/data", SETTINGS, "part") == b"tls bytes"
        assert names == ["secure.example"] and seen == [("/data", f"secure.example:{port}")]
        with pytest.raises(InvalidRequest, match="cannot fetch .*(certificate|hostname)"):
            media.read_media_url(f"https://wrong.example:{port}/data", SETTINGS, "part")  # same server, other name
