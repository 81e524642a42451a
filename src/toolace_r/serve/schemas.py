"""Request bodies of the OpenAI API subset the server speaks, as pydantic models.

Unknown fields are allowed (OpenAI clients send many, and ours are extra fields too: `refine`,
`max_rounds`, `top_k`); fields the server cannot honour are rejected by the app with a clear 400
rather than silently ignored when ignoring them would change the answer (logprobs, echo, suffix).
"""
from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

# OpenAI allows [a-zA-Z0-9_-]{1,64}; ToolACE and BFCL names also carry dots (math.factorial).
FUNCTION_NAME = r"^[A-Za-z0-9_.\-]{1,64}$"


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class FunctionSpec(_Open):
    name: str = Field(pattern=FUNCTION_NAME)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolSpec(_Open):
    type: Literal["function"]
    function: FunctionSpec


class FunctionCall(_Open):
    name: str
    arguments: str = "{}"


class ToolCallSpec(_Open):
    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionCall


class ContentPart(_Open):
    type: str
    text: str | None = None


class ChatMessage(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Union[str, list[ContentPart], None] = None
    name: str | None = None
    tool_calls: list[ToolCallSpec] | None = None
    tool_call_id: str | None = None


class NamedFunction(_Open):
    name: str


class NamedToolChoice(_Open):
    type: Literal["function"]
    function: NamedFunction


class StreamOptions(_Open):
    include_usage: bool = False


Stop = Union[str, list[str], None]


class SamplingFields(_Open):
    model: str | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    n: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)
    stop: Stop = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    top_k: int | None = Field(default=None, ge=0)  # a vLLM extension the openai engine sends


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1)
    tools: list[ToolSpec] | None = None
    tool_choice: Union[Literal["none", "auto", "required"], NamedToolChoice, None] = None
    max_completion_tokens: int | None = Field(default=None, ge=1)
    parallel_tool_calls: bool | None = None
    logprobs: bool | None = None
    # Ours: the stop policy (a key such as "adaptive" or "fixed:2"; true = the server's default,
    # false = "none") and the round cap for this request.
    refine: Union[bool, str, None] = None
    max_rounds: int | None = Field(default=None, ge=0)


class CompletionRequest(SamplingFields):
    prompt: Union[str, list[str], list[int], list[list[int]]]
    echo: bool | None = None
    logprobs: int | None = None
    suffix: str | None = None
    best_of: int | None = None
