"""Where and how `tunesmith api` listens: command-line options and config keys first, then LLaMA-Factory's
environment variables (API_HOST, API_PORT, API_KEY, API_MODEL_NAME), then defaults."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from ..config.errors import ConfigError
from ..config.schema import Config

DEFAULT_HOST = "0.0.0.0"
DEFAULT_PORT = 8000
DEFAULT_MODEL_NAME = "gpt-3.5-turbo"  # what LLaMA-Factory reports when API_MODEL_NAME is unset


@dataclass(frozen=True)
class ApiSettings:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    api_key: str | None = None
    model_name: str = DEFAULT_MODEL_NAME


def api_settings(cfg: Config, env: Mapping[str, str] | None = None) -> ApiSettings:
    env = os.environ if env is None else env
    port = cfg.api.api_port
    if port is None and env.get("API_PORT"):
        try:
            port = int(env["API_PORT"])
        except ValueError:
            raise ConfigError(f"environment: API_PORT must be a port number, got {env['API_PORT']!r}") from None
        if not 0 <= port <= 65535:
            raise ConfigError(f"environment: API_PORT must be in 0..65535, got {port}")
    return ApiSettings(
        host=cfg.api.api_host or env.get("API_HOST") or DEFAULT_HOST,
        port=DEFAULT_PORT if port is None else port,
        api_key=cfg.api.api_key or env.get("API_KEY") or None,
        model_name=cfg.api.api_model_name or env.get("API_MODEL_NAME") or DEFAULT_MODEL_NAME,
    )
