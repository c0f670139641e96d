"""Images of API requests: the `url` of an OpenAI `image_url` content part, read into bytes for the engine.

- `data:image/<type>;base64,<data>`: always accepted (bad base64 is a 400 saying so);
- a local file (an absolute or relative path, or a `file://` URL): only inside a folder the server allows
  (`--media-dir DIR`, env API_MEDIA_DIR; none by default), checked after resolving symbolic links;
- `http://` / `https://`: only with `--allow-remote-media` (env API_ALLOW_REMOTE_MEDIA=1; off by default), and
  never from an address that is not public (loopback, private, link-local, ...), after every redirect too.
Every refusal is an InvalidRequest naming the content part and the setting that would allow it (a 400).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlparse

from ..infer.engine import InvalidRequest
from .settings import ApiSettings

REMOTE_TIMEOUT = 20  # seconds for a remote image to arrive


def read_image_url(url: str, settings: ApiSettings, where: str) -> bytes:
    """The bytes of the image ``url`` points at (``where``: the content part, for errors)."""
    param = f"{where}.image_url.url"
    if not url:
        raise InvalidRequest(f"{where}: image_url.url is empty", param)
    if url.startswith("data:"):
        return _data_url(url, where, param)
    scheme = urlparse(url).scheme.lower()
    if scheme in ("http", "https"):
        return _remote(url, settings, where, param)
    if scheme == "file":
        parsed = urlparse(url)
        if parsed.netloc not in ("", "localhost"):
            raise InvalidRequest(f"{where}: file:// URLs name a file on this machine (file:///path), got host "
                                 f"{parsed.netloc!r}", param)
        return _local(unquote(parsed.path), settings, where, param)
    if len(scheme) > 1:  # "c:" of a Windows path is a drive, not a scheme
        raise InvalidRequest(f"{where}: image_url scheme {scheme}:// is not supported; send a data:image/...;base64, "
                             "URL, a local file path or an http(s) URL", param)
    return _local(url, settings, where, param)


def _data_url(url: str, where: str, param: str) -> bytes:
    header, comma, payload = url[len("data:"):].partition(",")
    kind, _, encoding = header.partition(";")
    if not comma or not kind.lower().startswith("image/") or encoding.lower() != "base64":
        raise InvalidRequest(f"{where}: a data URL image must be `data:image/<type>;base64,<data>`, got "
                             f"`data:{header[:40]},...`", param)
    try:
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError) as err:
        raise InvalidRequest(f"{where}: the data URL's image is not valid base64 ({err})", param) from None


def _local(path: str, settings: ApiSettings, where: str, param: str) -> bytes:
    if not settings.media_dirs:
        raise InvalidRequest(f"{where}: local image files are not served: start the API with --media-dir DIR (or "
                             "set API_MEDIA_DIR) to allow files under DIR, or send the image as a "
                             "data:image/...;base64, URL", param)
    real = Path(os.path.realpath(path))
    allowed = [Path(os.path.realpath(folder)) for folder in settings.media_dirs]
    if not any(real == folder or folder in real.parents for folder in allowed):
        raise InvalidRequest(f"{where}: {path} is outside the folders this server reads images from "
                             f"({', '.join(map(str, allowed))}; --media-dir / API_MEDIA_DIR)", param)
    try:
        return real.read_bytes()
    except OSError as err:
        raise InvalidRequest(f"{where}: cannot read {path}: {err.strerror or err}", param) from None


def _check_public(url: str, where: str, param: str) -> None:
    parsed = urlparse(url)
    if parsed.scheme.lower() not in ("http", "https") or not parsed.hostname:
        raise InvalidRequest(f"{where}: {url} is not an http(s) URL with a host", param)
    try:
        infos = socket.getaddrinfo(parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80))
    except (socket.gaierror, UnicodeError) as err:
        raise InvalidRequest(f"{where}: cannot resolve {parsed.hostname} ({err})", param) from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].partition("%")[0])
        if not address.is_global:
            raise InvalidRequest(f"{where}: {parsed.hostname} resolves to {address}, which is not a public address; "
                                 "images are fetched from public hosts only", param)


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to another public http(s) URL."""

    def __init__(self, where: str, param: str):
        self.where, self.param = where, param

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        _check_public(newurl, self.where, self.param)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _remote(url: str, settings: ApiSettings, where: str, param: str) -> bytes:
    if not settings.allow_remote_media:
        raise InvalidRequest(f"{where}: remote image URLs are not fetched: start the API with --allow-remote-media "
                             "(or set API_ALLOW_REMOTE_MEDIA=1) to allow them, or send the image as a "
                             "data:image/...;base64, URL", param)
    _check_public(url, where, param)
    limit = settings.max_request_bytes or 64 * 1024 * 1024
    opener = urllib.request.build_opener(_CheckedRedirects(where, param))
    request = urllib.request.Request(url, headers={"User-Agent": "tunesmith-api"})
    try:
        with opener.open(request, timeout=REMOTE_TIMEOUT) as response:
            data = response.read(limit + 1)
    except InvalidRequest:
        raise
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise InvalidRequest(f"{where}: cannot fetch {url}: {getattr(err, 'reason', err)}", param) from None
    if len(data) > limit:
        raise InvalidRequest(f"{where}: the image at {url} is larger than {limit} bytes", param)
    return data
