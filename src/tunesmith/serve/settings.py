"""Where and how `tunesmith api` listens: command-line options and config keys first, then LLaMA-Factory's
environment variables (API_HOST, API_PORT, API_KEY, API_MODEL_NAME), then defaults. The default address is
127.0.0.1 (this machine only); another address without an API key gets a warning when the server starts.
API_MAX_REQUEST_BYTES bounds a request body (default 4 MiB; 0: no limit).

Images and videos in requests (serve/media.py): data: URLs always; local files only under the folders of `--media-dir`
(repeatable; else the config's `api_media_dir`; else API_MEDIA_DIR, folders separated by the system's path
separator; default none); remote http(s) URLs only with `--allow-remote-media` (or `api_allow_remote_media: true`,
or API_ALLOW_REMOTE_MEDIA=1; default off)."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from ..config.errors import ConfigError
from ..config.schema import Config

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_MODEL_NAME = "gpt-3.5-turbo"  # what LLaMA-Factory reports when API_MODEL_NAME is unset
DEFAULT_MAX_REQUEST_BYTES = 4 * 1024 * 1024  # far more text than any context holds; parsing it takes a moment


@dataclass(frozen=True)
class ApiSettings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    api_key: str | None = None
    model_name: str = DEFAULT_MODEL_NAME
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES  # 0: no limit
    media_dirs: tuple[str, ...] = ()  # folders whose image files requests may name (none: no local files)
    allow_remote_media: bool = False  # fetch http(s) image URLs (public addresses only)


TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


def api_settings(cfg: Config, env: Mapping[str, str] | None = None, media_dirs: list[str] | None = None,
                 allow_remote_media: bool | None = None) -> ApiSettings:
    """Settings from the config, the command line's media options (None: not given) and the environment."""
    env = os.environ if env is None else env
    port = cfg.api.api_port
    if port is None and env.get("API_PORT"):
        port = _env_int(env, "API_PORT", "a port number")
        if not 0 <= port <= 65535:
            raise ConfigError(f"environment: API_PORT must be in 0..65535, got {port}")
    max_bytes = DEFAULT_MAX_REQUEST_BYTES
    if env.get("API_MAX_REQUEST_BYTES"):
        max_bytes = _env_int(env, "API_MAX_REQUEST_BYTES", "a number of bytes (0: no limit)")
        if max_bytes < 0:
            raise ConfigError(f"environment: API_MAX_REQUEST_BYTES must be 0 (no limit) or more, got {max_bytes}")
    return ApiSettings(
        host=cfg.api.api_host or env.get("API_HOST") or DEFAULT_HOST,
        port=DEFAULT_PORT if port is None else port,
        api_key=cfg.api.api_key or env.get("API_KEY") or None,
        model_name=cfg.api.api_model_name or env.get("API_MODEL_NAME") or DEFAULT_MODEL_NAME,
        max_request_bytes=max_bytes,
        media_dirs=_media_dirs(media_dirs, env, list(cfg.api.api_media_dir)),
        allow_remote_media=_remote_media(allow_remote_media if allow_remote_media is not None
                                         else cfg.api.api_allow_remote_media, env),
    )


def _media_dirs(given: list[str] | None, env: Mapping[str, str], configured: list[str]) -> tuple[str, ...]:
    """`--media-dir`, else the config's `api_media_dir`, else API_MEDIA_DIR."""
    source = "--media-dir"
    if not given and configured:
        given, source = configured, "config: api_media_dir"
    if not given:
        given = [part for part in env.get("API_MEDIA_DIR", "").split(os.pathsep) if part]
        source = "environment: API_MEDIA_DIR"
    for folder in given:
        if not os.path.isdir(folder):
            raise ConfigError(f"{source}: {folder} is not a directory (the folder whose images requests may name)")
    return tuple(os.path.abspath(folder) for folder in given)


def _remote_media(given: bool | None, env: Mapping[str, str]) -> bool:
    if given is not None:
        return given
    value = env.get("API_ALLOW_REMOTE_MEDIA", "").strip().lower()
    if value not in TRUE + FALSE:
        raise ConfigError(f"environment: API_ALLOW_REMOTE_MEDIA must be 1 or 0 (true/false), got "
                          f"{env['API_ALLOW_REMOTE_MEDIA']!r}")
    return value in TRUE


def _env_int(env: Mapping[str, str], name: str, what: str) -> int:
    try:
        return int(env[name])
    except ValueError:
        raise ConfigError(f"environment: {name} must be {what}, got {env[name]!r}") from None


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) reaches only this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    try:
        return bool(addresses) and all(ipaddress.ip_address(a.partition("%")[0]).is_loopback for a in addresses)
    except ValueError:
        return False


def exposure_warning(settings: ApiSettings) -> str | None:
    """The warning to log when the API is open to the network with no key, else None."""
    if settings.api_key or is_loopback(settings.host):
        return None
    return (f"the API listens on {settings.host}:{settings.port} with no API key: anyone who can reach this machine "
            "can use the model. Set api_key (or API_KEY) to require one, or api_host: 127.0.0.1 (the default) to "
            "serve this machine only")
