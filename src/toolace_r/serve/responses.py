"""OpenAI-shaped responses: chat completions (tool_calls or content), text completions, and their
server-sent-event chunk streams.

An answer is final only once refinement stops, so a stream replays the final answer as chunks in
OpenAI's format (a role chunk, content or tool-call delta chunks, a finish chunk, optionally a usage
chunk, then `data: [DONE]`): the official client's `stream=True` iteration works unchanged.

All JSON here is written by files.dumps (strict JSON: non-finite numbers as null, lone surrogates
escaped), the tool-call `arguments` strings included, so whatever the model said can be sent.
"""
from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from toolace_r.calls import parse
from toolace_r.engines.base import GenerationResult
from toolace_r.files import dumps
from toolace_r.refine import Trace

from .errors import error_body

log = logging.getLogger("toolace_r.serve")
DONE = "data: [DONE]\n\n"

STREAM_PIECE = 24  # characters of content per streamed chunk


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def now() -> int:
    return int(time.time())


@dataclass
class ChatChoice:
    index: int
    content: str | None
    tool_calls: list[dict[str, Any]] | None
    finish_reason: str
    refinement: dict[str, Any]


def chat_choice(index: int, trace: Trace, tool_names: set[str], policy: str) -> ChatChoice:
    """The final answer of one trace as an OpenAI choice.

    The answer becomes `tool_calls` when it parses as one or more calls to offered tools; anything else
    (prose, a parse error, a call to a tool that was not offered) is returned honestly as content.
    This holds for tool_choice "required" too: the model is not forced (no constrained decoding and
    no retry), so an answer without a call comes back as content with finish_reason "stop".
    """
    text = trace.final
    last = trace.rounds[-1]
    refinement = {"policy": policy, "rounds": trace.refinements, "stop_reason": trace.stop_reason}
    parsed = parse(text)
    if parsed.is_call and parsed.calls and all(c.name in tool_names for c in parsed.calls):
        try:
            calls = [{"id": "call_" + uuid.uuid4().hex[:24], "type": "function",
                      "function": {"name": c.name, "arguments": dumps(c.arguments)}} for c in parsed.calls]
        except (TypeError, ValueError, RecursionError):
            # Values JSON cannot hold (bytes, an integer too long to write...): the model's answer is
            # still the answer, returned as its text.
            calls = None
        if calls is not None:
            return ChatChoice(index, None, calls, "tool_calls", refinement)
    finish = "length" if last.finish_reason == "length" and not last.kept_previous else "stop"
    return ChatChoice(index, text, None, finish, refinement)


def trace_usage(traces: list[Trace]) -> dict[str, Any]:
    prompt = sum(r.prompt_tokens + r.cached_tokens for t in traces for r in t.rounds)
    cached = sum(r.cached_tokens for t in traces for r in t.rounds)
    completion = sum(r.completion_tokens for t in traces for r in t.rounds)
    return usage(prompt, completion, cached)


def usage(prompt: int, completion: int, cached: int = 0) -> dict[str, Any]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached}}


def chat_response(rid: str, model: str, choices: list[ChatChoice], use: dict[str, Any]) -> dict[str, Any]:
    out_choices = []
    for c in choices:
        message: dict[str, Any] = {"role": "assistant", "content": c.content}
        if c.tool_calls:
            message["tool_calls"] = c.tool_calls
        out_choices.append({"index": c.index, "message": message, "finish_reason": c.finish_reason,
                            "logprobs": None, "refinement": c.refinement})
    return {"id": rid, "object": "chat.completion", "created": now(), "model": model,
            "choices": out_choices, "usage": use,
            # Extra field, ignored by OpenAI clients: the refinement of the first choice.
            "refinement": choices[0].refinement if choices else None}


def _sse(obj: Any) -> str:
    return "data: " + dumps(obj) + "\n\n"


def guarded_stream(chunks: Iterable[str]) -> Iterator[bytes]:
    """The chunks as bytes; if producing one fails, an error chunk and `data: [DONE]` end the stream.

    The 200 status is sent with the first chunk, so a failure after it can only be told in the stream:
    as OpenAI and vLLM do, a `data: {"error": {...}}` event (the official client raises APIError on
    it), then `data: [DONE]` so that no client waits for more.
    """
    try:
        for chunk in chunks:
            yield chunk.encode("utf-8")
    except Exception as exc:  # noqa: BLE001 - told to the client, logged for the operator
        log.exception("stream failed")
        body = error_body(500, f"internal error while streaming: {type(exc).__name__}: {exc}")
        yield _sse(body).encode("utf-8")
        yield DONE.encode("utf-8")


def _pieces(text: str) -> list[str]:
    return [text[i: i + STREAM_PIECE] for i in range(0, len(text), STREAM_PIECE)] or [""]


def chat_chunks(rid: str, model: str, choices: list[ChatChoice], use: dict[str, Any] | None) -> Iterator[str]:
    """The chunk stream of a finished chat completion (usage chunk only when asked for)."""
    created = now()

    def chunk(index: int, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        body = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra}
        return _sse(body)

    for c in choices:
        yield chunk(c.index, {"role": "assistant", "content": ""})
        if c.tool_calls:
            for k, call in enumerate(c.tool_calls):
                yield chunk(c.index, {"tool_calls": [{"index": k, "id": call["id"], "type": "function",
                                                      "function": {"name": call["function"]["name"],
                                                                   "arguments": ""}}]})
                yield chunk(c.index, {"tool_calls": [{"index": k, "function": {
                    "arguments": call["function"]["arguments"]}}]})
        else:
            for piece in _pieces(c.content or ""):
                yield chunk(c.index, {"content": piece})
        yield chunk(c.index, {}, c.finish_reason, refinement=c.refinement)
    if use is not None:
        yield _sse({"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": [], "usage": use})
    yield DONE


# --- text completions ----------------------------------------------------------------------------

def completion_choices(results: list[GenerationResult]) -> list[dict[str, Any]]:
    """Choices in OpenAI's order: prompt by prompt, the n samples of each."""
    out = []
    for result in results:
        for c in result.completions:
            out.append({"index": len(out), "text": c.text, "finish_reason": c.finish_reason, "logprobs": None})
    return out


def results_usage(results: list[GenerationResult]) -> dict[str, Any]:
    # The n samples share their prompt: count it once per prompt (base.py's accounting rule).
    prompt = sum(r.completions[0].prompt_tokens + r.completions[0].cached_tokens for r in results if r.completions)
    cached = sum(r.completions[0].cached_tokens for r in results if r.completions)
    return usage(prompt, sum(r.completion_tokens for r in results), cached)


def completion_response(rid: str, model: str, results: list[GenerationResult]) -> dict[str, Any]:
    return {"id": rid, "object": "text_completion", "created": now(), "model": model,
            "choices": completion_choices(results), "usage": results_usage(results)}


def completion_chunks(rid: str, model: str, results: list[GenerationResult], include_usage: bool) -> Iterator[str]:
    created = now()
    for choice in completion_choices(results):
        for piece in _pieces(choice["text"]):
            yield _sse({"id": rid, "object": "text_completion", "created": created, "model": model,
                        "choices": [{"index": choice["index"], "text": piece, "finish_reason": None,
                                     "logprobs": None}]})
        yield _sse({"id": rid, "object": "text_completion", "created": created, "model": model,
                    "choices": [{"index": choice["index"], "text": "", "finish_reason": choice["finish_reason"],
                                 "logprobs": None}]})
    if include_usage:
        yield _sse({"id": rid, "object": "text_completion", "created": created, "model": model,
                    "choices": [], "usage": results_usage(results)})
    yield DONE
