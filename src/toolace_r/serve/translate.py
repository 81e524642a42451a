"""OpenAI requests in, refine-loop and engine inputs out; the checks a request must pass on the way.

A chat request becomes a `ChatPlan`: the conversation (tools + messages) the refine loop answers, its
`RefineConfig`, and what the response needs to know (which tools were offered, n, streaming). A
completions request becomes a list of `GenerationRequest`s. Every check failure is an `ApiError` (400)
naming the field, so a client sees what to fix. No prompt text is built here: prompts.py renders.

Hostile input stops here: nesting is bounded before anything recursive touches it (tool schemas,
past calls' arguments), values JSON allows but nothing downstream can use are refused with a 400,
and lone surrogates (valid as JSON escapes, not as text any tokenizer or HTTP body can encode) become
U+FFFD in everything the model is shown, as a UTF-8 decoder does with invalid bytes.
"""
from __future__ import annotations


import json
from dataclasses import dataclass, replace
from typing import Any

from toolace_r.calls import MAX_DEPTH, ToolCall, json_depth, render
from toolace_r.engines.base import GenerationRequest, SamplingParams
from toolace_r.prompts import PromptConfig, tool_calls_message
from toolace_r.refine import RefineConfig, get_policy
from toolace_r.jsonvalues import json_problem, replace_surrogates
from toolace_r.tools import MAX_SCHEMA_DEPTH, Tool, normalize_tool

from .config import ServeConfig
from .errors import ApiError
from .schemas import ChatCompletionRequest, ChatMessage, CompletionRequest, NamedToolChoice, SamplingFields

# Prompt rendering for a conversation without tools (no tools given, or tool_choice "none"): the
# ToolACE system prompt would ask for calls, so the system message holds only the client's own.
PLAIN_CHAT = PromptConfig(system_prompt="", tools_block="", system_join="")

MAX_STOP = 4  # as OpenAI

MAX_TOKEN_ID = 2**31  # token ids are int32 in every engine; the vocabulary, when known, is tighter

@dataclass
class ChatPlan:
    """What one chat request asks of the refine loop."""

    items: list[dict[str, Any]]
    config: RefineConfig
    tool_names: set[str]
    n: int
    stream: bool
    include_usage: bool


def check_model(body: SamplingFields, cfg: ServeConfig) -> None:
    if body.model not in (None, "", cfg.served_model_name):
        raise ApiError(404, f"the model {body.model!r} does not exist; this server serves "
                            f"{cfg.served_model_name!r}", param="model", code="model_not_found")


def sampling(body: SamplingFields, cfg: ServeConfig, max_tokens: int | None, n: int = 1) -> SamplingParams:
    """The request's sampling settings, bounded by the server's limits. Greedy unless asked otherwise."""
    if max_tokens is not None and max_tokens > cfg.max_tokens_cap:
        raise ApiError(400, f"max_tokens is {max_tokens}; this server allows at most {cfg.max_tokens_cap}",
                       param="max_tokens")
    stop = replace_surrogates([body.stop] if isinstance(body.stop, str) else list(body.stop or []))
    if len(stop) > MAX_STOP or any(not s for s in stop):
        raise ApiError(400, f"stop takes at most {MAX_STOP} non-empty strings", param="stop")
    return SamplingParams(n=n, temperature=body.temperature or 0.0, top_p=body.top_p or 1.0,
                          top_k=body.top_k or 0, max_new_tokens=max_tokens or cfg.default_max_tokens,
                          stop=tuple(stop), seed=body.seed)


def _check_n(n: int | None, cfg: ServeConfig) -> int:
    n = n or 1
    if n > cfg.max_n:
        raise ApiError(400, f"n is {n}; this server allows at most {cfg.max_n}", param="n")
    return n


# --- chat ----------------------------------------------------------------------------------------

def chat_plan(body: ChatCompletionRequest, cfg: ServeConfig) -> ChatPlan:
    check_model(body, cfg)
    if body.logprobs:
        raise ApiError(400, "logprobs are not supported by this server", param="logprobs")
    if len(body.messages) > cfg.max_messages:
        raise ApiError(400, f"{len(body.messages)} messages; this server allows at most {cfg.max_messages}",
                       param="messages")
    tools = offered_tools(body, cfg)
    n = _check_n(body.n, cfg)
    params = sampling(body, cfg, body.max_completion_tokens or body.max_tokens)
    messages = [_message(m, i) for i, m in enumerate(body.messages)]
    config = refine_config(body, cfg, params, with_tools=bool(tools), n=n)
    items = [{"id": str(i), "tools": tools, "messages": messages} for i in range(n)]
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return ChatPlan(items, config, {t.name for t in tools}, n, body.stream, include_usage)


def offered_tools(body: ChatCompletionRequest, cfg: ServeConfig) -> list[Tool]:
    """The tools the prompt shows, after tool_choice: none drops them all, a named one keeps only it."""
    specs = body.tools or []
    if len(specs) > cfg.max_tools:
        raise ApiError(400, f"{len(specs)} tools; this server allows at most {cfg.max_tools}", param="tools")
    tools = []
    for i, spec in enumerate(specs):
        function = spec.function
        try:
            if function.parameters is not None:
                check_parameters(function.parameters, f"function {function.name!r}: parameters")
            # Only the fields a prompt shows: extra fields a client adds are never walked.
            shown: dict[str, Any] = {"name": function.name}
            if function.description is not None:
                shown["description"] = replace_surrogates(function.description)
            if function.parameters is not None:
                shown["parameters"] = replace_surrogates(function.parameters)
            tools.append(normalize_tool({"type": "function", "function": shown}))
        except (ValueError, TypeError, RecursionError) as exc:
            # normalize_tool refuses what it cannot read with a ValueError; the others are a
            # schema it chokes on, which is still the client's to fix.
            reason = str(exc) if isinstance(exc, ValueError) else f"unreadable schema ({type(exc).__name__})"
            raise ApiError(400, f"tools[{i}]: {reason}", param="tools") from None
    names = [t.name for t in tools]
    if len(set(names)) != len(names):
        raise ApiError(400, "tools: function names must be unique", param="tools")
    choice = body.tool_choice
    if choice == "none":
        return []
    if choice == "required" and not tools:
        raise ApiError(400, 'tool_choice "required" needs tools', param="tool_choice")
    if isinstance(choice, NamedToolChoice):
        kept = [t for t in tools if t.name == choice.function.name]
        if not kept:
            raise ApiError(400, f"tool_choice names {choice.function.name!r}, which is not among the tools",
                           param="tool_choice")
        return kept
    return tools


JSON_TYPES = ("string", "number", "integer", "boolean", "array", "object", "null")


def check_parameters(schema: Any, where: str) -> None:
    """A client's `parameters` must be a JSON Schema object (the datasets' looser shapes are not API input)."""
    if not isinstance(schema, dict):
        raise ValueError(f"{where}: expected a JSON Schema object")
    # Bounded before anything recursive touches it; the same bound as every tool schema (tools.py).
    if json_problem(schema, MAX_SCHEMA_DEPTH, only_depth=True):
        raise ValueError(f"{where}: nested deeper than {MAX_SCHEMA_DEPTH} levels of objects and arrays")
    if schema.get("type", "object") != "object":
        raise ValueError(f"{where}: the type must be \"object\", got {schema.get('type')!r}")
    _check_schema(schema, where)


def _check_schema(schema: Any, where: str, depth: int = 0) -> None:
    if not isinstance(schema, dict):
        raise ValueError(f"{where}: a schema must be an object")
    if depth > 16:
        raise ValueError(f"{where}: schema nested too deeply")
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [] if kind is None else [kind]
    bad = [k for k in kinds if k not in JSON_TYPES]
    if bad:
        raise ValueError(f"{where}: unknown type {bad[0]!r}; JSON Schema types are {', '.join(JSON_TYPES)}")
    properties = schema.get("properties", {})
    if not isinstance(properties, dict):
        raise ValueError(f"{where}: 'properties' must be an object")
    for name, sub in properties.items():
        _check_schema(sub, f"{where}.{name}", depth + 1)
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise ValueError(f"{where}: 'required' must be a list of property names")
    missing = [r for r in required if r not in properties]
    if missing:
        raise ValueError(f"{where}: required names {missing[0]!r}, which is not among the properties")
    if "items" in schema:
        _check_schema(schema["items"], f"{where}[]", depth + 1)


def refine_config(body: ChatCompletionRequest, cfg: ServeConfig, params: SamplingParams, *,
                  with_tools: bool, n: int) -> RefineConfig:
    """The server's refinement defaults overridden by the request's `refine` and `max_rounds`."""
    if body.refine is None or body.refine is True:
        policy = cfg.refine
    elif body.refine is False:
        policy = "none"
    else:
        policy = body.refine
        try:
            get_policy(policy)
        except ValueError as exc:
            raise ApiError(400, str(exc), param="refine") from None
    max_rounds = cfg.max_rounds if body.max_rounds is None else body.max_rounds
    if max_rounds > cfg.max_rounds_cap:
        raise ApiError(400, f"max_rounds is {max_rounds}; this server allows at most {cfg.max_rounds_cap}",
                       param="max_rounds")
    if not with_tools:
        policy = "none"  # refining prose is not what the refine instruction (or training) is about
    try:
        prompt = PromptConfig(answer_format=cfg.answer_format) if with_tools else \
            replace(PLAIN_CHAT, answer_format=cfg.answer_format)
        return RefineConfig(policy=policy, max_rounds=max_rounds, guard=cfg.guard, round0=params, refine=params,
                            chunk_size=n, prompt=prompt)
    except ValueError as exc:
        raise ApiError(400, str(exc), param="refine") from None


def _message(m: ChatMessage, index: int) -> dict[str, Any]:
    """A message as prompts.py takes it: a role and a text content."""
    where = f"messages[{index}]"
    if isinstance(m.content, list):
        texts = []
        for part in m.content:
            if part.type != "text" or part.text is None:
                raise ApiError(400, f"{where}: only text content parts are supported, got {part.type!r}",
                               param="messages")
            texts.append(part.text)
        content = "".join(texts)
    else:
        content = m.content or ""
    content = replace_surrogates(content)
    role = "system" if m.role == "developer" else m.role
    if m.tool_calls:
        if role != "assistant":
            raise ApiError(400, f"{where}: only assistant messages carry tool_calls", param="messages")
        # A past call is shown to the model in the format it answers in (prompts.py writes it).
        calls = [_past_call(call.function.name, call.function.arguments, f"{where}.tool_calls[{j}].function")
                 for j, call in enumerate(m.tool_calls)]
        return tool_calls_message(calls, content)
    elif role == "user" and not content:
        raise ApiError(400, f"{where}: a user message needs content", param="messages")
    return {"role": role, "content": content}


def _past_call(name: str, raw_arguments: str | None, where: str) -> ToolCall:
    """One call of the history, checked to be writable in pythonic syntax; else 400 naming the field."""
    raw = raw_arguments or "{}"
    # Bounded before json.loads, which recurses (a RecursionError deep down); as deep as the parser
    # reads the model's own answers.
    if json_depth(raw) > MAX_DEPTH:
        raise ApiError(400, f"{where}.arguments: nested deeper than {MAX_DEPTH} levels", param="messages")
    try:
        arguments = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # bad JSON, or an integer literal too long to convert
        raise ApiError(400, f"{where}.arguments: not valid JSON ({exc})", param="messages") from None
    if not isinstance(arguments, dict):
        raise ApiError(400, f"{where}.arguments: must be a JSON object", param="messages")
    call = ToolCall(replace_surrogates(name), replace_surrogates(arguments))
    try:
        render([call], "pythonic")
    except (ValueError, TypeError, RecursionError) as exc:  # names pythonic syntax cannot write
        raise ApiError(400, f"{where}: {exc}", param="messages") from None
    return call


# --- completions ---------------------------------------------------------------------------------

def completion_requests(body: CompletionRequest, cfg: ServeConfig, vocab_size: int | None) -> list[GenerationRequest]:
    """One GenerationRequest per prompt (a string or token ids); n samples each."""
    check_model(body, cfg)
    for field in ("echo", "suffix"):
        if getattr(body, field):
            raise ApiError(400, f"{field} is not supported by this server", param=field)
    if body.logprobs is not None:
        raise ApiError(400, "logprobs are not supported by this server", param="logprobs")
    if body.best_of not in (None, 1):
        raise ApiError(400, "best_of is not supported by this server", param="best_of")
    params = sampling(body, cfg, body.max_tokens, n=_check_n(body.n, cfg))
    prompt = body.prompt
    if isinstance(prompt, str):
        prompts: list[Any] = [prompt]
    elif prompt and all(isinstance(p, int) for p in prompt):
        prompts = [prompt]
    else:
        prompts = list(prompt)
    if not prompts:
        raise ApiError(400, "prompt is empty", param="prompt")
    if len(prompts) > cfg.max_prompts:
        raise ApiError(400, f"{len(prompts)} prompts; this server allows at most {cfg.max_prompts}", param="prompt")
    out = []
    for p in prompts:
        if isinstance(p, str):
            out.append(GenerationRequest(prompt=replace_surrogates(p), params=params))
            continue
        # Without a tokenizer here (an upstream renders) the vocabulary is unknown: ids are still
        # bounded, so that no integer the upstream cannot take is forwarded.
        limit = vocab_size or MAX_TOKEN_ID
        if not p or any(not 0 <= t < limit for t in p):
            raise ApiError(400, f"prompt token ids must be a non-empty list of ids in 0..{limit - 1}", param="prompt")
        out.append(GenerationRequest(prompt_ids=list(p), params=params))
    return out
