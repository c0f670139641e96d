"""The served UI: loopback by default, and with --password nothing but the login page answers without it."""

from __future__ import annotations

import socket
import urllib.error
import urllib.parse
import urllib.request

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status(url: str, data: dict | None = None) -> int:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=30) as reply:
            return reply.status
    except urllib.error.HTTPError as err:
        return err.code


def test_password_guards_everything(tmp_path):
    pytest.importorskip("gradio", reason="needs gradio (pip install 'tunesmith[webui]')")
    from tunesmith.webui.app import Settings, launch
    from tunesmith.webui.paths import PathPolicy

    ui, demo, url = launch(Settings(PathPolicy.create(tmp_path), port=free_port(), password="s3cret"), block=False)
    try:
        assert url.startswith("http://127.0.0.1:")  # loopback unless --host says otherwise
        assert status(url + "config") == 401
        assert status(url + "login", {"username": "tunesmith", "password": "wrong"}) == 400
        assert status(url + "login", {"username": "tunesmith", "password": "s3cret"}) == 200
    finally:
        demo.close()
