"""Images and videos of API requests: the `url` of an OpenAI `image_url` or `video_url` content part, read into
bytes for the engine.

- `data:image/<type>;base64,<data>` (`data:video/<type>;base64,` for a video): always accepted (bad base64 is a
  400 saying so);
- a local file (an absolute or relative path, or a `file://` URL): only inside a folder the server allows
  (`--media-dir DIR`, env API_MEDIA_DIR; none by default), checked after resolving symbolic links;
- `http://` / `https://`: only with `--allow-remote-media` (env API_ALLOW_REMOTE_MEDIA=1; off by default), and
  never from an address that is not public (loopback, private, link-local, ...), after every redirect too. The
  host is resolved once and the connection goes to the address that was checked (a second lookup could answer
  with another address: DNS rebinding); https keeps verifying the certificate for the host name, sent as SNI.
The bytes of one medium are capped at the request size limit (64 MiB when there is none).
Every refusal is an InvalidRequest naming the content part and the setting that would allow it (a 400).
"""

from __future__ import annotations

import base64
import binascii
import http.client
import ipaddress
import os
import socket
import ssl
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

from ..infer.engine import InvalidRequest
from .settings import ApiSettings

REMOTE_TIMEOUT = 20  # seconds for a remote image or video to arrive
MAX_REDIRECTS = 5
REDIRECTS = (301, 302, 303, 307, 308)


def read_media_url(url: str, settings: ApiSettings, where: str, kind: str = "image") -> bytes:
    """The bytes of the image (``kind`` "image") or video (``kind`` "video") ``url`` points at (``where``: the
    content part, for errors)."""
    param = f"{where}.{kind}_url.url"
    if not url:
        raise InvalidRequest(f"{where}: {kind}_url.url is empty", param)
    if url.startswith("data:"):
        return _data_url(url, where, param, kind)
    scheme = urlparse(url).scheme.lower()
    if scheme in ("http", "https"):
        return _remote(url, settings, where, param, kind)
    if scheme == "file":
        parsed = urlparse(url)
        if parsed.netloc not in ("", "localhost"):
            raise InvalidRequest(f"{where}: file:// URLs name a file on this machine (file:///path), got host "
                                 f"{parsed.netloc!r}", param)
        return _local(unquote(parsed.path), settings, where, param, kind)
    if len(scheme) > 1:  # "c:" of a Windows path is a drive, not a scheme
        raise InvalidRequest(f"{where}: {kind}_url scheme {scheme}:// is not supported; send a data:{kind}/...;base64, "
                             "URL, a local file path or an http(s) URL", param)
    return _local(url, settings, where, param, kind)


def _limit(settings: ApiSettings) -> int:
    return settings.max_request_bytes or 64 * 1024 * 1024


def _data_url(url: str, where: str, param: str, kind: str) -> bytes:
    header, comma, payload = url[len("data:"):].partition(",")
    mime, _, encoding = header.partition(";")
    if not comma or not mime.lower().startswith(f"{kind}/") or encoding.lower() != "base64":
        raise InvalidRequest(f"{where}: a data URL {kind} must be `data:{kind}/<type>;base64,<data>`, got "
                             f"`data:{header[:40]},...`", param)
    try:
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError) as err:
        raise InvalidRequest(f"{where}: the data URL's {kind} is not valid base64 ({err})", param) from None


def _local(path: str, settings: ApiSettings, where: str, param: str, kind: str) -> bytes:
    if not settings.media_dirs:
        raise InvalidRequest(f"{where}: local {kind} files are not served: start the API with --media-dir DIR (or "
                             f"set API_MEDIA_DIR) to allow files under DIR, or send the {kind} as a "
                             f"data:{kind}/...;base64, URL", param)
    real = Path(os.path.realpath(path))
    allowed = [Path(os.path.realpath(folder)) for folder in settings.media_dirs]
    if not any(real == folder or folder in real.parents for folder in allowed):
        raise InvalidRequest(f"{where}: {path} is outside the folders this server reads images and videos from "
                             f"({', '.join(map(str, allowed))}; --media-dir / API_MEDIA_DIR)", param)
    try:
        if real.stat().st_size > _limit(settings):
            raise InvalidRequest(f"{where}: the {kind} {path} is larger than {_limit(settings)} bytes", param)
        return real.read_bytes()
    except OSError as err:
        raise InvalidRequest(f"{where}: cannot read {path}: {err.strerror or err}", param) from None


def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to (the one lookup a fetch makes)."""
    return [info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return address.is_global


def _checked_address(url: str, where: str, param: str, kind: str) -> str:
    """The public address to connect to for ``url`` (every address the host resolves to must be public)."""
    parsed = urlparse(url)
    if parsed.scheme.lower() not in ("http", "https") or not parsed.hostname:
        raise InvalidRequest(f"{where}: {url} is not an http(s) URL with a host", param)
    try:
        addresses = resolve(parsed.hostname, _port(parsed))
    except (OSError, UnicodeError, ValueError) as err:
        raise InvalidRequest(f"{where}: cannot resolve {parsed.hostname} ({err})", param) from None
    if not addresses:
        raise InvalidRequest(f"{where}: {parsed.hostname} resolves to no address", param)
    for text in addresses:
        address = ipaddress.ip_address(text.partition("%")[0])
        if not is_public(address):
            raise InvalidRequest(f"{where}: {parsed.hostname} resolves to {address}, which is not a public address; "
                                 f"{kind}s are fetched from public hosts only", param)
    return addresses[0]


def _port(parsed) -> int:
    return parsed.port or (443 if parsed.scheme.lower() == "https" else 80)


def tls_context() -> ssl.SSLContext:
    """Certificates verified against the system's trust store, for the URL's host name."""
    return ssl.create_default_context()


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to an address already checked (the Host header still names the URL's host)."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    """The same over TLS: the certificate is verified for the host name, which is also sent as SNI."""

    default_port = 443

    def __init__(self, host: str, port: int, address: str, timeout: float, context: ssl.SSLContext):
        super().__init__(host, port, address, timeout)
        self.context = context

    def connect(self) -> None:
        super().connect()
        self.sock = self.context.wrap_socket(self.sock, server_hostname=self.host)


def _remote(url: str, settings: ApiSettings, where: str, param: str, kind: str) -> bytes:
    if not settings.allow_remote_media:
        raise InvalidRequest(f"{where}: remote {kind} URLs are not fetched: start the API with --allow-remote-media "
                             f"(or set API_ALLOW_REMOTE_MEDIA=1) to allow them, or send the {kind} as a "
                             f"data:{kind}/...;base64, URL", param)
    limit = _limit(settings)
    for _ in range(MAX_REDIRECTS + 1):
        address = _checked_address(url, where, param, kind)
        status, location, data = _get(url, address, limit, where, param)
        if status in REDIRECTS and location:
            url = urljoin(url, location)
            continue
        if status != 200:
            raise InvalidRequest(f"{where}: cannot fetch {url}: HTTP {status}", param)
        if len(data) > limit:
            raise InvalidRequest(f"{where}: the {kind} at {url} is larger than {limit} bytes", param)
        return data
    raise InvalidRequest(f"{where}: cannot fetch {url}: more than {MAX_REDIRECTS} redirects", param)


def _get(url: str, address: str, limit: int, where: str, param: str) -> tuple[int, str | None, bytes]:
    """(status, Location header, up to limit + 1 bytes of the body) of a GET sent to ``address``."""
    parsed = urlparse(url)
    if parsed.scheme.lower() == "https":
        connection = _PinnedHTTPSConnection(parsed.hostname, _port(parsed), address, REMOTE_TIMEOUT, tls_context())
    else:
        connection = _PinnedHTTPConnection(parsed.hostname, _port(parsed), address, REMOTE_TIMEOUT)
    target = (parsed.path or "/") + (f"?{parsed.query}" if parsed.query else "")
    try:
        connection.request("GET", target, headers={"User-Agent": "tunesmith-api"})
        response = connection.getresponse()
        location = response.getheader("Location")
        data = response.read(limit + 1) if response.status == 200 else b""
        return response.status, location, data
    except (OSError, http.client.HTTPException, ValueError) as err:
        raise InvalidRequest(f"{where}: cannot fetch {url}: {err}", param) from None
    finally:
        connection.close()
