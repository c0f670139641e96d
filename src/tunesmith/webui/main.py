"""Command-line options of `tunesmith webui` and `tunesmith webchat`."""

from __future__ import annotations

import argparse

from ..config.errors import ConfigError


def parser(chat_only: bool) -> argparse.ArgumentParser:
    name = "webchat" if chat_only else "webui"
    p = argparse.ArgumentParser(
        prog=f"tunesmith {name}",
        description=("Chat with a model in the browser." if chat_only else
                     "The whole workflow in the browser: configure, preview data, train (a `tunesmith train` "
                     "subprocess on the YAML shown), watch progress and curves, evaluate / predict, chat, export."))
    if chat_only:
        p.add_argument("model", help="a model folder, a training output folder or a chat config (.yaml)")
    else:
        p.add_argument("config", nargs="?", help="a training config (.yaml) to fill the form with")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine "
                                                       "only; 0.0.0.0 opens it to the network)")
    p.add_argument("--port", type=int, default=None, help="port (default: the first free one from 7860)")
    p.add_argument("--share", action="store_true", help="also publish a public gradio.live link (off by default)")
    p.add_argument("--password", default=None, help="ask for this password (user name: --user)")
    p.add_argument("--user", default="tunesmith", help="user name with --password (default tunesmith)")
    p.add_argument("--allow-path", action="append", default=[], metavar="DIR",
                   help="also allow models, data and outputs under DIR (default: the working directory only; "
                        "repeatable)")
    return p


def main(argv: list[str], chat_only: bool = False) -> int:
    args = parser(chat_only).parse_args(argv)
    try:
        import gradio  # noqa: F401
    except ImportError as err:
        raise ConfigError(f"tunesmith {'webchat' if chat_only else 'webui'} needs gradio ({err}); install it with "
                          "`pip install 'tunesmith[webui]'`") from None
    from ..utils.logging import offline_environment, setup_logging
    from .app import Settings, launch
    from .paths import PathPolicy

    policy = PathPolicy.create(allowed=tuple(args.allow_path))
    settings = Settings(policy, host=args.host, port=args.port, share=args.share, user=args.user,
                        password=args.password)
    if not chat_only and args.config:
        from .form import form_from_yaml

        path = policy.check(args.config, "config")
        form, extra = form_from_yaml(path.read_text(encoding="utf-8"), str(path))
        settings.defaults.update(form, extra=extra, config_path=str(path))
    offline_environment()
    setup_logging()
    if chat_only:
        from .app import WebUI

        ui = WebUI(settings)
        ui.chat.load(args.model)  # before the page is served: a bad path fails here, with one line
        settings.defaults["chat_model"] = args.model
        launch(settings, chat_only=True, ui=ui)
    else:
        launch(settings)
    return 0
