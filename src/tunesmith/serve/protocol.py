"""Request and response shapes of the OpenAI chat completions API (the subset tunesmith serves)."""

from __future__ import annotations

import time
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..infer.engine import text_problem


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None

    def as_dict(self) -> dict:
        content = self.content
        if isinstance(content, list):
            content = "".join(part.text for part in content)
        return {"role": self.role, "content": content}


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
    tools: list[dict] | None = Field(None, description="Not supported: a non-empty list is refused.")

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

    @field_validator("tools")
    @classmethod
    def _no_tools(cls, value):
        if value:
            raise ValueError("tool calls are not supported by this server")
        return value


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


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
