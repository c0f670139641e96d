"""Request and response shapes of the OpenAI chat completions API (the subset tunesmith serves)."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..infer.engine import text_problem


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ImageUrl(BaseModel):
    model_config = ConfigDict(extra="ignore")

    url: str = Field(description="data:image/<type>;base64,<data>; a local file under the server's --media-dir; "
                                 "an http(s) URL when the server allows remote media.")
    detail: Literal["auto", "low", "high"] | None = Field(None, description="Accepted; images are always read "
                                                                            "at the model's own resolution.")


class ImagePart(BaseModel):
    type: Literal["image_url"]
    image_url: ImageUrl


class VideoUrl(BaseModel):
    model_config = ConfigDict(extra="ignore")

    url: str = Field(description="data:video/<type>;base64,<data>; a local file under the server's --media-dir; "
                                 "an http(s) URL when the server allows remote media.")


class VideoPart(BaseModel):
    type: Literal["video_url"]
    video_url: VideoUrl


ContentPart = Annotated[TextPart | ImagePart | VideoPart, Field(discriminator="type")]
PART_KINDS = ("text", "image_url", "video_url")


class FunctionCall(BaseModel):
    name: str
    arguments: str = Field(description="The call's arguments: a JSON object, as text.")


class ToolCallItem(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = Field(None, description="Text, or a list of text, image_url and "
                                                                       "video_url parts (images and videos: "
                                                                       "vision-language models).")
    tool_calls: list[ToolCallItem] | None = Field(None, description="An assistant message's calls (sent back in "
                                                                    "a conversation that uses tools).")
    tool_call_id: str | None = Field(None, description="A tool message: the call it answers.")

    @field_validator("content", mode="before")
    @classmethod
    def _known_parts(cls, value):
        if isinstance(value, list):
            for n, part in enumerate(value):
                kind = part.get("type") if isinstance(part, dict) else None
                if kind not in PART_KINDS:
                    raise ValueError(f"content part {n} has type {kind!r}; this server reads `text`, `image_url` "
                                     "and `video_url` parts")
        return value

    def as_dict(self, image_mark: str = "<image>", index: int = 0, video_mark: str = "<video>") -> dict:
        """The engine's message: an image (video) part becomes ``image_mark`` (``video_mark``) where it stands, its
        URL one of ``image_urls`` (``video_urls``), with the part's place, ``messages.<index>.content.<n>``, for
        errors."""
        content, urls = self.content, {"image_urls": [], "video_urls": []}
        if isinstance(content, list):
            pieces = []
            for n, part in enumerate(content):
                if isinstance(part, ImagePart):
                    pieces.append(image_mark)
                    urls["image_urls"].append((part.image_url.url, f"messages.{index}.content.{n}"))
                elif isinstance(part, VideoPart):
                    pieces.append(video_mark)
                    urls["video_urls"].append((part.video_url.url, f"messages.{index}.content.{n}"))
                else:
                    pieces.append(part.text)
            content = "".join(pieces)
        out = {"role": self.role, "content": content, **{key: found for key, found in urls.items() if found}}
        if self.tool_calls:
            out["tool_calls"] = [call.model_dump() for call in self.tool_calls]
        return out


class FunctionSpec(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str | None = None
    parameters: dict | None = Field(None, description="The arguments' JSON Schema.")


class ToolSpec(BaseModel):
    type: Literal["function"]
    function: FunctionSpec

    def as_dict(self) -> dict:
        return {"type": "function", "function": self.function.model_dump(exclude_none=True)}


class NamedToolChoice(BaseModel):
    type: Literal["function"]
    function: dict


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, description="Any name: the server serves one model.")
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: float | None = Field(None, ge=0, le=2, description="0 decodes greedily.")
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1, description="Reply token budget (default: the config's "
                                                            "max_new_tokens).")
    max_completion_tokens: int | None = Field(None, ge=1, description="Newer name of max_tokens.")
    stop: str | list[str] | None = Field(None, description="Up to 4 strings that end the reply.")
    n: int = Field(1, ge=1, le=8, description="Replies to generate.")
    seed: int | None = Field(None, ge=-2**63, le=2**63 - 1, description="Makes sampling repeatable (a 64-bit "
                                                                         "integer).")
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[ToolSpec] | None = Field(None, max_length=128, description="Functions the model may call; they "
                                         "are written into the prompt in the template's tool format, and a reply "
                                         "that is a call comes back as `tool_calls`.")
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = Field(
        None, description="auto (the default with tools): the model decides; none: the tools are not offered. "
                          "required and a named function are refused: the server cannot force a call.")

    @field_validator("stop")
    @classmethod
    def _stop_strings(cls, value):
        stops = [value] if isinstance(value, str) else (value or [])
        if len(stops) > 4:
            raise ValueError("at most 4 stop strings")
        if any(not s for s in stops):
            raise ValueError("stop strings must not be empty")
        for i, stop in enumerate(stops):
            if (problem := text_problem(stop)) is not None:
                raise ValueError(f"stop string {i} {problem}")
        return stops

    @field_validator("tool_choice")
    @classmethod
    def _choice_we_can_honour(cls, value):
        if value == "required" or isinstance(value, NamedToolChoice):
            raise ValueError("only `auto` and `none` are supported: generation is not constrained, so a call cannot "
                             "be forced (the reply is returned as `tool_calls` whenever the model writes a call)")
        return value

    def offered_tools(self) -> list[dict] | None:
        """The tools written into the prompt (none with tool_choice none)."""
        if not self.tools or self.tool_choice == "none":
            return None
        return [tool.as_dict() for tool in self.tools]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ToolCallOut(BaseModel):
    id: str = Field(default_factory=lambda: f"call_{uuid.uuid4().hex[:24]}")
    type: Literal["function"] = "function"
    function: FunctionCall


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    tool_calls: list[ToolCallOut] | None = None


class Choice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: str
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(default_factory=lambda: int(time.time()))
    owned_by: str = "tunesmith"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"
