"""The chat tab (also `tunesmith webchat` alone): load a model or a training run's output folder with the same
config keys `tunesmith chat` reads, and stream replies from infer/'s engine."""

from __future__ import annotations

import threading
from typing import Any, Iterator

from ..config.errors import ConfigError
from ..config.load import load_config
from .paths import PathPolicy


class ChatSession:
    """One loaded engine shared by the browser sessions of this UI (generation is serialized by the engine)."""

    def __init__(self, policy: PathPolicy) -> None:
        self.policy = policy
        self.engine = None
        self.source = ""
        self.lock = threading.Lock()

    def load(self, model: str, extra: list[str] | None = None) -> str:
        """``model``: a model folder, a training output folder, or a config file (as `tunesmith chat` takes)."""
        model = (model or "").strip()
        if model.endswith((".yaml", ".yml", ".json")):
            argv = [str(self.policy.check(model, "config"))]
        else:
            argv = [f"model_name_or_path={self.policy.check_model(model)}"]
        cfg = load_config(argv + list(extra or []), purpose="infer")
        if cfg.model.model_name_or_path:
            self.policy.check_model(cfg.model.model_name_or_path)
        for adapter in cfg.model.adapter_name_or_path:
            self.policy.check(adapter, "adapter_name_or_path")
        from ..infer.backends import create_engine

        with self.lock:
            self.engine = create_engine(cfg)
            self.source = model
        return f"loaded {model}"

    def reply(self, history: list[dict], message: str, system: str = "", max_new_tokens: int | None = None,
              temperature: float | None = None) -> Iterator[list[dict]]:
        """The history with the user's message and the reply growing as it streams."""
        if self.engine is None:
            raise ConfigError("no model loaded: load a model or a training output folder first")
        history = [*history, {"role": "user", "content": message}, {"role": "assistant", "content": ""}]
        messages = ([{"role": "system", "content": system}] if system and system.strip() else []) + [
            {"role": m["role"], "content": _text(m["content"])} for m in history[:-1]]
        text = ""
        overrides: dict[str, Any] = {"max_new_tokens": int(max_new_tokens) if max_new_tokens else None,
                                     "temperature": temperature}
        for piece in self.engine.stream(messages, **overrides):
            text += piece
            history[-1] = {"role": "assistant", "content": text}
            yield history
        yield history


def _text(content: Any) -> str:
    """Chatbot messages may carry lists of parts; the engine takes text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
    if isinstance(content, dict):
        return str(content.get("text", ""))
    return str(content)


def chat_tab(gr, session: ChatSession, default_model: str = ""):
    """The chat widgets; returns the model path box (the train tab fills it with its output folder)."""
    with gr.Row():
        model = gr.Textbox(label="model, training output folder or chat config", value=default_model,
                           elem_id="chat_model", scale=4)
        load = gr.Button("Load", elem_id="chat_load", scale=1)
    status = gr.Markdown(f"loaded {session.source}" if session.engine else "no model loaded", elem_id="chat_status")
    with gr.Row():
        system = gr.Textbox(label="system prompt", elem_id="chat_system")
        max_new = gr.Number(label="max_new_tokens", value=64, precision=0, elem_id="chat_max_new_tokens")
        temperature = gr.Number(label="temperature (0: greedy)", value=0, elem_id="chat_temperature")
    bot = gr.Chatbot(label="chat", elem_id="chat_history", height=320)
    with gr.Row():
        message = gr.Textbox(label="message", elem_id="chat_message", scale=4)
        send = gr.Button("Send", variant="primary", elem_id="chat_send", scale=1)
        clear = gr.Button("Clear", elem_id="chat_clear", scale=1)

    def do_load(path):
        try:
            return session.load(path)
        except (ConfigError, OSError) as err:
            return f"error: {err}"

    def do_send(history, text, system_text, max_tokens, temp):
        if not text or not text.strip():
            yield history or [], ""
            return
        try:
            for updated in session.reply(history or [], text, system_text, max_tokens, temp):
                yield updated, ""
        except ConfigError as err:
            raise gr.Error(str(err)) from None

    load.click(do_load, [model], [status])
    send.click(do_send, [bot, message, system, max_new, temperature], [bot, message])
    message.submit(do_send, [bot, message, system, max_new, temperature], [bot, message])
    clear.click(lambda: [], None, [bot])
    return model
