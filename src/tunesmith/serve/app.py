"""OpenAI-compatible HTTP API on FastAPI: /v1/models, /v1/chat/completions (plain and streamed), /docs.

Neither prompt building nor generation runs on the event loop: a request's prompt is built and tokenized on
a small pool of prompt threads (a huge prompt holds up no one else), then becomes a job for the engine: the
Hugging Face engine generates waiting jobs together in batches (hf_engine.py), an engine that does not batch
serves them one at a time in arrival order, so concurrent requests all get answered. Images and videos
(`image_url` and `video_url` content parts, for a vision-language model) are read on the prompt threads too
(serve/media.py says which URLs are allowed; a video is written to a temporary file that lives while its prompt
is built). A streamed reply's text crosses from that thread to the loop through an asyncio queue; when the client goes away, the job is cancelled (it
stops at the next token, or never starts) and the queue moves on. Bad requests get a 4xx with an
OpenAI-style error body; a body over the size limit gets a 413 before it is parsed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import replace

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..infer.engine import Engine, InvalidRequest, Reply, Sampling
from ..infer.vision import image_problem, video_problem
from .media import read_media_url
from .protocol import (AssistantMessage, ChatCompletion, ChatCompletionRequest, Choice, ErrorResponse, FunctionCall,
                       ModelCard, ModelList, ToolCallOut, Usage, completion_id)
from .settings import ApiSettings, exposure_warning

logger = logging.getLogger(__name__)

PROMPT_WORKERS = 4  # prompts tokenized at once: a few huge ones leave room for the rest
MAX_WAITING = 256  # requests handed to a batching engine at once (the rest queue here)

ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error",
               405: "invalid_request_error", 413: "invalid_request_error", 422: "invalid_request_error"}


class ApiError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


def error_body(status: int, message: str, param: str | None = None, code: str | None = None) -> dict:
    kind = ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


class GenerationQueue:
    """One generation thread; jobs run in the order they were submitted. Prompts are prepared beforehand on a
    few threads of their own, off the event loop."""

    def __init__(self, engine: Engine, settings: ApiSettings | None = None):
        self.engine = engine
        self.settings = settings or ApiSettings()
        # an engine that batches takes every waiting request at once; otherwise they wait here, in order
        waiting = MAX_WAITING if engine.concurrent else 1
        self.pool = ThreadPoolExecutor(max_workers=waiting, thread_name_prefix="tunesmith-request")
        self.prompts = ThreadPoolExecutor(max_workers=PROMPT_WORKERS, thread_name_prefix="tunesmith-prompt")

    async def prepare(self, messages: list[dict], tools: list[dict] | None = None,
                      **overrides) -> tuple[list[int], Sampling]:
        """The prompt's token ids and the request's decoding options (InvalidRequest for a bad request)."""
        def build() -> tuple[list[int], Sampling]:
            with tempfile.TemporaryDirectory(prefix="tunesmith-media-") as folder:  # the prompt reads its videos
                prompt_ids = self.engine.prompt_ids(with_media(self.engine, messages, self.settings, folder), tools)
            return prompt_ids, self.engine.sampling(len(prompt_ids), **overrides)

        return await asyncio.get_running_loop().run_in_executor(self.prompts, build)

    async def run(self, prompt_ids: list[int], options: Sampling, on_text=None,
                  cancel: threading.Event | None = None) -> Reply:
        cancel = cancel or threading.Event()
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.pool, self.engine.generate, prompt_ids, options, on_text, cancel)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            cancel.set()  # the caller went away: stop (or skip) the job so the queue moves on
            raise

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.prompts.shutdown(wait=False, cancel_futures=True)


class BodySizeLimit:
    """ASGI middleware: a request body over ``limit`` bytes (0: no limit) gets a 413 before anything parses it,
    at once when its Content-Length says so, else as soon as the bytes read pass the limit."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not self.limit:
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers", ())).get(b"content-length", b"").strip()
        if length.isdigit() and int(length) > self.limit:
            return await self._too_large(scope, receive, send)
        chunks, size = [], 0
        while True:  # read the body here (the app would read it whole anyway), counting
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before its request was complete
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return await self._too_large(scope, receive, send)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        pending = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replay():  # the body once, then the client's own messages (a disconnect)
            return pending.pop() if pending else await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope, receive, send) -> None:
        message = (f"the request body is larger than this server's limit of {self.limit} bytes "
                   "(the environment variable API_MAX_REQUEST_BYTES sets it)")
        await JSONResponse(error_body(413, message), status_code=413)(scope, receive, send)


def _validation_message(err: RequestValidationError) -> tuple[str, str | None]:
    errors = err.errors()
    if not errors:
        return "invalid request", None
    first = errors[0]
    if first.get("type") == "json_invalid":
        return f"the request body is not valid JSON: {first.get('ctx', {}).get('error', first.get('msg'))}", None
    loc = [str(part) for part in first.get("loc", ()) if part != "body"]
    param = ".".join(loc) or None
    message = first.get("msg", "invalid value")
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    return (f"{param}: {message}" if param else message), param


def with_media(engine: Engine, messages: list[dict], settings: ApiSettings, folder: str) -> list[dict]:
    """The messages with their image and video parts' URLs read: images into bytes, videos into files under
    ``folder`` (a video is decoded from a file). InvalidRequest names the part when a medium is refused or
    unreadable, or the model takes none."""
    if not any(message.get("image_urls") or message.get("video_urls") for message in messages):
        return messages
    if engine.vision is None:
        raise InvalidRequest(engine.image_refusal(), "messages")
    out = []
    for message in messages:
        message = dict(message)
        images, videos = [], []
        for url, where in message.pop("image_urls", ()):
            data = read_media_url(url, settings, where, "image")
            if (problem := image_problem(data)) is not None:
                raise InvalidRequest(f"{where}: {problem}", f"{where}.image_url.url")
            images.append(data)
        for url, where in message.pop("video_urls", ()):
            path = os.path.join(folder, f"video-{len(os.listdir(folder))}")
            with open(path, "wb") as file:
                file.write(read_media_url(url, settings, where, "video"))
            if (problem := video_problem(engine.vision, path)) is not None:
                raise InvalidRequest(f"{where}: {problem.replace(path, 'the video')}", f"{where}.video_url.url")
            videos.append(path)
        if images:
            message["images"] = images
        if videos:
            message["videos"] = videos
        out.append(message)
    return out


def create_app(engine: Engine, settings: ApiSettings) -> FastAPI:
    jobs = GenerationQueue(engine, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        jobs.close()

    app = FastAPI(title="tunesmith API", version=__version__, lifespan=lifespan,
                  description="OpenAI-compatible chat completions for a model trained with tunesmith. "
                              f"Model: `{settings.model_name}`.")
    app.add_middleware(BodySizeLimit, limit=settings.max_request_bytes)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, err: ApiError):
        return JSONResponse(error_body(err.status, err.message, err.param, err.code), status_code=err.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: RequestValidationError):
        message, param = _validation_message(err)
        return JSONResponse(error_body(400, message, param), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, err: StarletteHTTPException):
        message = str(err.detail)
        if err.status_code == 400 and err.__cause__ is not None:  # e.g. a body that is not UTF-8: say why
            message = f"{message}: {err.__cause__}"
        return JSONResponse(error_body(err.status_code, message), status_code=err.status_code,
                            headers=getattr(err, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception):
        logger.exception("request failed")
        return JSONResponse(error_body(500, f"internal error: {err}"), status_code=500)

    async def authorised(request: Request) -> None:
        if not settings.api_key:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip(), settings.api_key):
            raise ApiError(401, "Incorrect API key provided" if header else "Missing API key: send "
                           "`Authorization: Bearer <key>`", code="invalid_api_key")

    responses = {400: {"model": ErrorResponse}, 401: {"model": ErrorResponse}, 413: {"model": ErrorResponse}}

    @app.get("/v1/models", response_model=ModelList, dependencies=[Depends(authorised)], responses=responses)
    async def list_models() -> ModelList:
        return ModelList(data=[ModelCard(id=settings.model_name)])

    @app.post("/v1/chat/completions", response_model=ChatCompletion, dependencies=[Depends(authorised)],
              responses=responses)
    async def chat_completions(body: ChatCompletionRequest, request: Request):
        try:  # tokenizing a long prompt takes a while: not on the event loop
            tools = body.offered_tools()
            marks = (engine.vision.image_mark, engine.vision.video_mark) if engine.vision is not None else (
                "<image>", "<video>")
            prompt_ids, options = await jobs.prepare(
                [m.as_dict(marks[0], i, marks[1]) for i, m in enumerate(body.messages)], tools, temperature=body.temperature, top_p=body.top_p,
                max_new_tokens=body.max_completion_tokens or body.max_tokens, stop=tuple(body.stop or ()),
                seed=body.seed)
        except InvalidRequest as err:
            raise ApiError(400, str(err), err.param) from None
        per_choice = [replace(options, seed=None if body.seed is None else body.seed + i) for i in range(body.n)]
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return StreamingResponse(_stream(jobs, prompt_ids, per_choice, settings.model_name, include_usage,
                                             reads_calls=tools is not None),
                                     media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        replies = []
        for opts in per_choice:
            reply = await _unless_gone(request, jobs.run(prompt_ids, opts))
            if reply is None:  # the client went away: its job was cancelled, nobody is left to answer
                return Response(status_code=499)
            replies.append(reply)
        completion = sum(r.completion_tokens for r in replies)
        return ChatCompletion(
            id=completion_id(), created=int(time.time()), model=settings.model_name,
            choices=[Choice(index=i, message=message, finish_reason=finish)
                     for i, (message, finish) in enumerate(_answer(engine, r, tools is not None) for r in replies)],
            usage=Usage(prompt_tokens=len(prompt_ids), completion_tokens=completion,
                        total_tokens=len(prompt_ids) + completion))

    return app


async def _unless_gone(request: Request, job, poll: float = 0.5):
    """The job's result, or None (and the job cancelled) once the client has disconnected."""
    task = asyncio.ensure_future(job)
    while True:
        done, _ = await asyncio.wait({task}, timeout=poll)
        if done:
            return task.result()
        if await request.is_disconnected():
            task.cancel()
            return None


def _answer(engine: Engine, reply: Reply, reads_calls: bool) -> tuple[AssistantMessage, str]:
    """The reply as an assistant message: its tool calls when tools were offered and the whole reply is a call in
    the template's tool format (a reply cut at the token budget is never read as a call), else its text."""
    parsed = engine.tool_calls(reply.text) if reads_calls and reply.finish_reason == "stop" else None
    if parsed is None:
        return AssistantMessage(content=reply.text), reply.finish_reason
    calls = [ToolCallOut(function=FunctionCall(name=c.name, arguments=c.arguments)) for c in parsed.calls]
    return AssistantMessage(content=parsed.content or None, tool_calls=calls), "tool_calls"


def _event(data: dict) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


async def _stream(jobs: GenerationQueue, prompt_ids: list[int], per_choice: list[Sampling], model: str,
                  include_usage: bool, reads_calls: bool = False):
    """Server-sent chunks. With tools offered, a reply is held until it is complete (a call is only known to be
    one at its end), then sent as its tool_calls or as its text in one chunk."""
    base = {"id": completion_id(), "object": "chat.completion.chunk", "created": int(time.time()), "model": model}

    def chunk(index: int, delta: dict, finish: str | None = None) -> str:
        return _event({**base, "choices": [{"index": index, "delta": delta, "finish_reason": finish,
                                            "logprobs": None}]})

    loop = asyncio.get_running_loop()
    cancel = threading.Event()
    completion = 0
    try:
        for index, options in enumerate(per_choice):
            pieces: asyncio.Queue = asyncio.Queue()
            yield chunk(index, {"role": "assistant", "content": ""})
            job = asyncio.ensure_future(jobs.run(prompt_ids, options,
                                                 lambda text: loop.call_soon_threadsafe(pieces.put_nowait, text),
                                                 cancel))
            while not job.done() or not pieces.empty():
                getter = asyncio.ensure_future(pieces.get())
                await asyncio.wait({getter, job}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    if not reads_calls:
                        yield chunk(index, {"content": getter.result()})
                else:
                    getter.cancel()
            reply = job.result()
            completion += reply.completion_tokens
            finish = reply.finish_reason
            if reads_calls:
                message, finish = _answer(jobs.engine, reply, reads_calls)
                if message.tool_calls:
                    if message.content:
                        yield chunk(index, {"content": message.content})
                    yield chunk(index, {"tool_calls": [{"index": k, **call.model_dump()}
                                                       for k, call in enumerate(message.tool_calls)]})
                elif reply.text:
                    yield chunk(index, {"content": reply.text})
            yield chunk(index, {}, finish)
        if include_usage:
            yield _event({**base, "choices": [], "usage": {"prompt_tokens": len(prompt_ids),
                                                           "completion_tokens": completion,
                                                           "total_tokens": len(prompt_ids) + completion}})
        yield "data: [DONE]\n\n"
    except Exception as err:  # noqa: BLE001 - the status line is sent: report in the stream
        logger.exception("streamed generation failed")
        yield _event(error_body(500, f"internal error: {err}"))
        yield "data: [DONE]\n\n"
    finally:
        cancel.set()


def run_server(engine: Engine, settings: ApiSettings) -> None:
    import uvicorn

    app = create_app(engine, settings)
    if (warning := exposure_warning(settings)) is not None:
        logger.warning(warning)
    shown = "localhost" if settings.host in ("0.0.0.0", "::") else settings.host
    print(f"tunesmith api: http://{shown}:{settings.port}/v1 (docs: http://{shown}:{settings.port}/docs)"
          + (", key required" if settings.api_key else ""), flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")
