"""The inference engine behind chat and api: messages -> the training template's prompt -> generate, streamed.

The Hugging Face backend (hf_engine.py) generates concurrent requests together and streams each through a
decoder that decodes as tokens arrive, holds back text that may still become a stop string, and counts tokens
for usage. Generation ends at eos, at the template's end-of-turn tokens, at a request's
stop strings, at the token budget, or when the caller cancels (a disconnected client).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from ..config.schema import Config, GeneratingArgs
from ..model.generation import generation_config
from ..templates.tool_calls import ParsedReply, parse_tool_calls
from ..types import Conversation, Message

logger = logging.getLogger(__name__)

ROLE_NAMES = {"user": "user", "assistant": "assistant", "tool": "observation", "observation": "observation",
              "function": "observation"}


class InvalidRequest(ValueError):
    """A request the engine cannot serve as asked (bad messages, prompt too long). ``param`` names the field."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class Sampling:
    """Decoding options of one request (defaults from the config's generating section)."""

    do_sample: bool = True
    temperature: float = 0.95
    top_p: float = 0.7
    top_k: int = 50
    num_beams: int = 1
    max_new_tokens: int = 1024
    repetition_penalty: float = 1.0
    length_penalty: float = 1.0
    skip_special_tokens: bool = True
    stop: tuple[str, ...] = ()
    seed: int | None = None

    @classmethod
    def from_config(cls, gen: GeneratingArgs, prompt_len: int = 0) -> Sampling:
        budget = gen.max_new_tokens if gen.max_new_tokens > 0 else max(gen.max_length - prompt_len, 1)
        return cls(do_sample=gen.do_sample, temperature=gen.temperature, top_p=gen.top_p, top_k=gen.top_k,
                   num_beams=gen.num_beams, max_new_tokens=budget, repetition_penalty=gen.repetition_penalty,
                   length_penalty=gen.length_penalty, skip_special_tokens=gen.skip_special_tokens)


class Prompt(list):
    """A prompt's token ids (a list of ints) and, when it has images or videos, their model inputs in ``media``
    (infer/vision.py's PromptMedia); a plain list of ids is a text prompt."""

    def __init__(self, ids=(), media=None):
        super().__init__(ids)
        self.media = media


@dataclass
class Reply:
    text: str
    finish_reason: str  # stop | length | cancelled
    prompt_tokens: int
    completion_tokens: int


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be tokenized, or None: a lone surrogate (what a JSON escape like \\ud800, or bytes that
    were not valid UTF-8 read with errors="surrogateescape", leave in a Python string) has no UTF-8 form."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        return (f"is not valid Unicode text: it holds a lone surrogate (U+{ord(text[err.start]):04X}) at character "
                f"{err.start}")
    return None


def to_conversation(messages: list[dict], for_reply: bool = True, tools: list[dict] | None = None,
                    call_words: tuple[str, str] = ("<tool_call>", "</tool_call>"),
                    image_mark: str = "<image>", video_mark: str = "<video>") -> Conversation:
    """OpenAI-style messages -> Conversation. System/developer messages must come first; ``for_reply``: the
    last message is the user's (or a tool result) that the reply answers. An assistant message with
    ``tool_calls`` becomes a function message (its text, if any, in front of the calls inside ``call_words``);
    ``tools`` (OpenAI tool schemas) go to the template, which writes them into the system prompt.

    A user message may carry ``images`` and ``videos`` (lists): each ``image_mark`` (``video_mark``) in its text
    stands for the next image (video); a message whose text has none of a kind gets one per item of that kind in
    front of its text, videos before images (as LLaMA-Factory's chat puts them)."""
    if not messages:
        raise InvalidRequest("`messages` must hold at least one message", "messages")
    system_parts, turns, images, videos = [], [], [], []
    for i, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        calls = message.get("tool_calls") or None
        if calls is not None and role != "assistant":
            raise InvalidRequest(f"messages[{i}]: only assistant messages carry tool_calls", f"messages.{i}.tool_calls")
        if content is None and calls is not None:
            content = ""
        if not isinstance(content, str):
            raise InvalidRequest(f"messages[{i}].content must be text", f"messages.{i}.content")
        if (problem := text_problem(content)) is not None:
            raise InvalidRequest(f"messages[{i}].content {problem}", f"messages.{i}.content")
        for key, mark, found in (("images", image_mark, images), ("videos", video_mark, videos)):
            if message.get(key):
                if not isinstance(message[key], (list, tuple)):
                    raise InvalidRequest(f"messages[{i}].{key} must be a list of {key}", f"messages.{i}.{key}")
                content = _place_media(i, role, content, message[key], mark, key[:-1])
                found.extend(message[key])
        if role in ("system", "developer"):
            if turns:
                raise InvalidRequest(f"messages[{i}]: a {role} message must come before the conversation",
                                     f"messages.{i}.role")
            system_parts.append(content)
        elif calls is not None:
            turns.append(Message("function", _function_content(i, content, calls, call_words)))
        elif role in ROLE_NAMES:
            turns.append(Message(ROLE_NAMES[role], content))
        else:
            raise InvalidRequest(f"messages[{i}].role must be system, user, assistant or tool, got {role!r}",
                                 f"messages.{i}.role")
    if not turns:
        raise InvalidRequest("`messages` holds no user message", "messages")
    if for_reply and turns[-1].role in ("assistant", "function"):
        raise InvalidRequest("the last message must be the user's (or a tool result), not the assistant's",
                             f"messages.{len(messages) - 1}.role")
    tools_json = json.dumps(tools, ensure_ascii=False) if tools else ""
    return Conversation(tuple(turns), system="\n".join(system_parts), tools=tools_json, images=tuple(images),
                        videos=tuple(videos))


def _place_media(i: int, role: str, content: str, items: list, mark: str, kind: str) -> str:
    """A user message's text with a placeholder for each of its images (``kind`` image) or videos."""
    if role != "user":
        raise InvalidRequest(f"messages[{i}]: only user messages carry images and videos, not {role} messages",
                             f"messages.{i}.content")
    found = content.count(mark)
    if found == 0:
        return mark * len(items) + content
    if found != len(items):
        raise InvalidRequest(f"messages[{i}] holds {found} `{mark}` placeholder(s) but {len(items)} {kind}(s): each "
                             f"placeholder stands for one {kind}, in order (or give none: one per {kind} is put in "
                             "front of the text)", f"messages.{i}.content")
    return content


def _function_content(i: int, text: str, calls: list[dict], call_words: tuple[str, str]) -> str:
    """An assistant message's tool calls as the JSON list a function message holds, after its text."""
    parsed = []
    for j, call in enumerate(calls):
        where = f"messages.{i}.tool_calls.{j}.function"
        function = call.get("function") or {}
        name, arguments = function.get("name"), function.get("arguments", "{}")
        if not isinstance(name, str) or not name:
            raise InvalidRequest(f"messages[{i}].tool_calls[{j}].function.name must be a non-empty name",
                                 f"{where}.name")
        try:
            arguments = json.loads(arguments) if isinstance(arguments, str) else arguments
        except json.JSONDecodeError as err:
            raise InvalidRequest(f"messages[{i}].tool_calls[{j}].function.arguments is not valid JSON: {err}",
                                 f"{where}.arguments") from None
        if not isinstance(arguments, dict):
            raise InvalidRequest(f"messages[{i}].tool_calls[{j}].function.arguments must be a JSON object",
                                 f"{where}.arguments")
        parsed.append({"name": name, "arguments": arguments})
    body = json.dumps(parsed, ensure_ascii=False)
    return f"{text}{call_words[0]}{body}{call_words[1]}" if text.strip() else body


class Engine:
    """Backend-independent front: prompts from messages, sampling defaults, streaming helpers."""

    name = "engine"
    concurrent = False  # generate() may be called from several threads at once (the engine batches them)

    def __init__(self, cfg: Config, tokenizer, template, stop_ids: list[int], default_system: str | None,
                 context_limit: int | None, vision=None):
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.template = template
        self.stop_ids = stop_ids
        self.default_system = default_system
        self.context_limit = context_limit
        self.vision = vision  # infer/vision.py's VisionInputs for a vision-language model, else None

    # -- prompts ----------------------------------------------------------------------------------------
    def image_refusal(self) -> str:
        """Why this engine takes no images or videos."""
        return "this model reads text only (it is not a vision-language model), so it cannot take images or videos"

    def prompt_ids(self, messages: list[dict], tools: list[dict] | None = None) -> Prompt:
        """The prompt's token ids, with the model inputs of its images and videos (InvalidRequest for a bad
        request)."""
        marks = (self.vision.image_mark, self.vision.video_mark) if self.vision is not None else ("<image>", "<video>")
        conv = to_conversation(messages, tools=tools, call_words=self.template.tool_call_words, image_mark=marks[0],
                               video_mark=marks[1])
        if conv.has_media and self.vision is None:
            raise InvalidRequest(self.image_refusal(), "messages")
        if self.vision is not None and (conv.has_media or any(mark in m.content for m in conv.messages
                                                              for mark in marks)):
            conv = self.vision.expand(conv)
        tok = self.tokenizer
        text = self.template.generation_prompt(conv, tok.bos_token or "", tok.eos_token or "", self.default_system)
        ids = tok.encode(text, add_special_tokens=False)
        return Prompt(ids, self.vision.inputs(conv, ids) if conv.has_media else None)

    def tool_calls(self, text: str) -> ParsedReply | None:
        """The tool calls a reply makes, in the template's tool format, or None (the reply is text)."""
        return parse_tool_calls(self.template.tool_format, text)

    def sampling(self, prompt_len: int, **overrides) -> Sampling:
        """Config defaults, then a request's values (None = not given); the budget fits the context."""
        base = Sampling.from_config(self.cfg.generating, prompt_len)
        given = {k: v for k, v in overrides.items() if v is not None}
        if given.get("temperature") == 0:
            given["do_sample"] = False
        elif "temperature" in given or "top_p" in given:
            given.setdefault("do_sample", True)
        options = replace(base, **given)
        if self.context_limit:
            room = self.context_limit - prompt_len
            if room <= 0:
                raise InvalidRequest(f"the prompt has {prompt_len} tokens; this model's context is "
                                     f"{self.context_limit} tokens", "messages")
            options = replace(options, max_new_tokens=min(options.max_new_tokens, room))
        return options

    # -- generation -------------------------------------------------------------------------------------
    def generate(self, prompt_ids: list[int], options: Sampling, on_text: Callable[[str], None] | None = None,
                 cancel: threading.Event | None = None) -> Reply:
        """A reply to the prompt (a Prompt with its images' inputs, or the token ids of a text prompt)."""
        raise NotImplementedError

    def chat(self, messages: list[dict], **overrides) -> Reply:
        ids = self.prompt_ids(messages)
        return self.generate(ids, self.sampling(len(ids), **overrides))

    def stream(self, messages: list[dict], **overrides) -> Iterator[str]:
        """Text pieces as they are generated; generation runs on its own thread and stops if the consumer
        stops early."""
        ids = self.prompt_ids(messages)
        options = self.sampling(len(ids), **overrides)
        pieces: queue.Queue = queue.Queue()
        cancel = threading.Event()
        done = object()

        def work() -> None:
            try:
                self.generate(ids, options, on_text=pieces.put, cancel=cancel)
            except BaseException as err:  # noqa: BLE001 - handed to the consumer
                pieces.put(err)
            finally:
                pieces.put(done)

        thread = threading.Thread(target=work, name="tunesmith-generate", daemon=True)
        thread.start()
        try:
            while (item := pieces.get()) is not done:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            cancel.set()
            thread.join()


@dataclass
class _Decoder:
    """Incremental decoding of generated ids: stop tokens end the reply, stop strings cut it, and text that
    could still grow into a stop string (or an incomplete character) is held back until it is safe."""

    tokenizer: object
    stop_ids: set[int]
    skip_special_tokens: bool
    stops: tuple[str, ...]
    on_text: Callable[[str], None] | None
    cancel: threading.Event | None
    budget: int | None = None  # tokens this reply may take (a row of a batch stops there by itself)
    ids: list[int] = field(default_factory=list)
    text: str = ""
    emitted: int = 0
    count: int = 0
    finish: str | None = None

    def feed(self, token_ids: list[int]) -> None:
        for tid in token_ids:
            if self.finish is not None:
                return
            self.count += 1
            if tid in self.stop_ids:
                self.finish = "stop"
            else:
                self.ids.append(tid)
                if self.budget is not None and self.count >= self.budget:
                    self.finish = "length"
        self.text = self.tokenizer.decode(self.ids, skip_special_tokens=self.skip_special_tokens)
        cut = min((i for i in (self.text.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.text, self.finish = self.text[:cut], "stop"
        if self.finish is not None and self.cancel is not None:
            self.cancel.set()
        self._emit(final=self.finish is not None)

    def _emit(self, final: bool) -> None:
        safe = len(self.text)
        if not final:
            if self.text.endswith("\ufffd"):
                safe -= 1
            for stop in self.stops:  # the longest tail that is the start of a stop string waits
                for k in range(min(len(stop) - 1, len(self.text)), 0, -1):
                    if self.text.endswith(stop[:k]):
                        safe = min(safe, len(self.text) - k)
                        break
        if safe > self.emitted and self.on_text is not None:
            self.on_text(self.text[self.emitted:safe])
        self.emitted = max(self.emitted, safe)

    @property
    def done(self) -> bool:
        return self.finish is not None or (self.cancel is not None and self.cancel.is_set())

    def close(self) -> None:
        self._emit(final=True)
