"""The `openai` engine: any OpenAI-compatible endpoint (vLLM, SGLang, llama.cpp server, OpenAI).

A request with a rendered prompt (or prompt ids) goes to /v1/completions, raw, the way BFCL's local
handlers query a model: the prompt is exactly what prompts.py rendered, so the server's chat
template is never involved. A request with only messages (+ tools) goes to /v1/chat/completions,
for chat-only endpoints; tool calls the server parsed come back as a JSON list of
{"name", "arguments"}, which calls.parse reads.

Requests run on a thread pool bounded by `concurrency`; each is retried with exponential backoff
(honouring Retry-After) on 429, 5xx, timeouts and dropped connections, while other 4xx errors and
authentication failures stop at once with a message that says what to fix. The client's own retry
loop is switched off so that the policy here is the only one and can be configured and tested.

Replies are read from their JSON text and checked here, not through the client's typed objects
(which accept anything): a reply that is not JSON, not an object, has no choices or a choice
without its text is an EngineError naming what is wrong, never an AttributeError further on. Lone
surrogates (which JSON escapes can carry but no UTF-8 request body can) become U+FFFD in the text
sent and received, so an answer fed back into the next refinement round can always be sent.
"""
from __future__ import annotations

import json
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Sequence

from toolace_r.files import dumps
from toolace_r.jsonvalues import replace_surrogates
from toolace_r.progress import progress_bar

from .base import Completion, Engine, EngineError, GenerationRequest, GenerationResult


@dataclass
class OpenAIEngineConfig:
    """Settings of the openai engine.

    base_url: the server's API root, e.g. http://127.0.0.1:8000/v1.
    api_key: None reads $OPENAI_API_KEY, and local servers without a key get a placeholder.
    model: the served model name; None asks the server (/v1/models) and takes the first.
    api: "auto" (completions for prompts, chat for messages-only requests), "completions" or "chat".
    concurrency: most requests in flight at once.
    timeout: seconds per HTTP request. max_retries: retries after the first attempt.
    backoff / backoff_max: first and largest wait between retries, in seconds (doubling, jittered).
    """

    base_url: str = "http://127.0.0.1:8000/v1"
    api_key: str | None = None
    model: str | None = None
    api: str = "auto"
    concurrency: int = 8
    timeout: float = 120.0
    max_retries: int = 4
    backoff: float = 0.5
    backoff_max: float = 16.0

    def __post_init__(self) -> None:
        if self.api not in ("auto", "completions", "chat"):
            raise ValueError(f"unknown api {self.api!r}; known: auto, completions, chat")
        if self.concurrency < 1 or self.max_retries < 0 or self.timeout <= 0:
            raise ValueError("concurrency must be >= 1, max_retries >= 0 and timeout > 0")


class OpenAIEngine(Engine):
    """Generation through an OpenAI-compatible HTTP API; see the module docstring."""

    name = "openai"
    # The server holds the chat template and the context limit: without a tokenizer given to the
    # caller, requests carry messages for /v1/chat/completions, and a prompt over the limit is the
    # server's error.
    tokenizer = None
    max_context = None

    def __init__(self, config: OpenAIEngineConfig | None = None, **overrides: Any) -> None:
        try:
            import openai
        except ImportError as exc:  # pragma: no cover - openai is a dev dependency
            raise EngineError("the openai engine needs the openai client: pip install openai") from exc
        cfg = config or OpenAIEngineConfig()
        if overrides:
            cfg = OpenAIEngineConfig(**{**cfg.__dict__, **overrides})
        self.config = cfg
        self._openai = openai
        key = cfg.api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"  # local servers take any key
        self.client = openai.OpenAI(base_url=cfg.base_url, api_key=key, timeout=cfg.timeout, max_retries=0)
        self._model = cfg.model
        self._lock = threading.Lock()
        self.retries = 0  # retries made so far, for logs and tests

    # --- public API --------------------------------------------------------------------------

    def generate(
        self, requests: Sequence[GenerationRequest], progress: bool = False
    ) -> list[GenerationResult]:
        if not requests:
            return []
        model = self.model_name()
        bar = progress_bar(progress, len(requests), "generate", "req")

        def run(request: GenerationRequest) -> GenerationResult:
            result = self._with_retries(lambda: self._call(model, request))
            if bar is not None:
                bar.update(1)
            return result

        try:
            with ThreadPoolExecutor(max_workers=self.config.concurrency) as pool:
                return list(pool.map(run, requests))
        finally:
            if bar is not None:
                bar.close()

    def model_name(self) -> str:
        """The configured model, else the first one the server lists."""
        with self._lock:
            if self._model is None:
                reply = _reply_json(self._with_retries(lambda: self.client.models.with_raw_response.list()),
                                    self.config.base_url, "model list")
                models = reply.get("data")
                if not isinstance(models, list) or not models:
                    raise EngineError(f"the server at {self.config.base_url} lists no models; set model=...")
                first = models[0].get("id") if isinstance(models[0], dict) else None
                if not isinstance(first, str) or not first:
                    raise EngineError(f"the server at {self.config.base_url} lists a model without an id; "
                                      "set model=...")
                self._model = first
            return self._model

    def close(self) -> None:
        self.client.close()

    # --- one request -------------------------------------------------------------------------

    def _call(self, model: str, request: GenerationRequest) -> GenerationResult:
        p = request.params
        common: dict[str, Any] = {
            "model": model, "n": p.n, "temperature": p.temperature, "top_p": p.top_p,
            "max_tokens": p.max_new_tokens, "stop": list(p.stop) or None,
        }
        if p.seed is not None:
            common["seed"] = p.seed
        if p.top_k:
            common["extra_body"] = {"top_k": p.top_k}  # a vLLM/SGLang extension, ignored by OpenAI
        has_prompt = request.prompt is not None or request.prompt_ids is not None
        use_chat = self.config.api == "chat" or (self.config.api == "auto" and not has_prompt)
        if use_chat:
            if request.messages is None:
                raise ValueError("the chat API needs request.messages")
            kwargs = dict(common, messages=replace_surrogates(request.messages))
            if request.tools:
                kwargs["tools"] = [_openai_tool(t) for t in request.tools]
            raw = self.client.chat.completions.with_raw_response.create(**kwargs)
            what = "chat completion"
        else:
            if not has_prompt:
                raise ValueError("the completions API needs request.prompt or request.prompt_ids")
            prompt = request.prompt_ids if request.prompt_ids is not None else replace_surrogates(request.prompt)
            raw = self.client.completions.with_raw_response.create(prompt=prompt, **common)
            what = "completion"
        reply = _reply_json(raw, self.config.base_url, what)
        texts = _reply_texts(reply, chat=use_chat, where=f"the {what} from {self.config.base_url}")
        return _result(sorted(texts, key=lambda t: t[0]), reply.get("usage"))

    def _with_retries(self, call):
        openai = self._openai
        cfg = self.config
        for attempt in range(cfg.max_retries + 1):
            try:
                return call()
            except openai.AuthenticationError as exc:
                raise EngineError(
                    f"authentication failed at {cfg.base_url} (HTTP 401): set the key with "
                    "$OPENAI_API_KEY or --engine-option api_key=..."
                ) from exc
            except openai.PermissionDeniedError as exc:
                raise EngineError(f"permission denied at {cfg.base_url} (HTTP 403): {_message(exc)}") from exc
            except (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError) as exc:
                # APITimeoutError is an APIConnectionError; 5xx other than 500 also land here or below.
                error = exc
            except openai.APIStatusError as exc:
                if exc.status_code < 500 and exc.status_code != 429:
                    raise EngineError(
                        f"request rejected by {cfg.base_url} (HTTP {exc.status_code}): {_message(exc)}"
                    ) from exc
                error = exc
            if attempt == cfg.max_retries:
                raise EngineError(
                    f"giving up on {cfg.base_url} after {attempt + 1} attempts: {_describe(error)}"
                ) from error
            with self._lock:
                self.retries += 1
            time.sleep(self._wait(attempt, error))
        raise AssertionError("unreachable")

    def _wait(self, attempt: int, error: Exception) -> float:
        response = getattr(error, "response", None)
        header = response.headers.get("retry-after") if response is not None else None
        try:
            if header is not None:
                return min(float(header), self.config.backoff_max)
        except ValueError:
            pass  # an HTTP date: fall back to our own schedule
        wait = min(self.config.backoff * 2**attempt, self.config.backoff_max)
        return wait * (0.5 + random.random() / 2)  # jitter, so parallel workers do not retry in step


def _reply_json(raw: Any, base_url: str, what: str) -> dict[str, Any]:
    """The JSON object of a successful reply; anything else is the upstream's fault (EngineError)."""
    where = f"the {what} from {base_url}"
    try:
        data = json.loads(raw.content)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError included
        raise EngineError(f"{where} is not JSON ({type(exc).__name__}: {_short(exc)})") from None
    if not isinstance(data, dict):
        raise EngineError(f"{where} is not a JSON object (got {_json_kind(data)})")
    return data


def _reply_texts(reply: dict[str, Any], *, chat: bool, where: str) -> list[tuple[int, str, str | None]]:
    """(index, text, finish_reason) of each choice of a checked reply."""
    choices = reply.get("choices")
    if not isinstance(choices, list) or not choices:
        raise EngineError(f"{where} has no choices (got {_json_kind(choices)})")
    out = []
    for k, choice in enumerate(choices):
        if not isinstance(choice, dict):
            raise EngineError(f"{where}: choices[{k}] is not an object (got {_json_kind(choice)})")
        index = choice.get("index", k)
        if not isinstance(index, int) or isinstance(index, bool):
            raise EngineError(f"{where}: choices[{k}].index is not an integer")
        reason = choice.get("finish_reason")
        reason = reason if isinstance(reason, str) else None
        if chat:
            message = choice.get("message")
            if not isinstance(message, dict):
                raise EngineError(f"{where}: choices[{k}] has no message (got {_json_kind(message)})")
            text = _chat_text(message, f"{where}: choices[{k}].message")
        else:
            text = choice.get("text")
            if not isinstance(text, str):
                raise EngineError(f"{where}: choices[{k}].text is not a string (got {_json_kind(text)})")
        out.append((index, replace_surrogates(text), reason))
    return out


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if value == [] or value == {}:
        return f"an empty {'array' if isinstance(value, list) else 'object'}"
    return {dict: "an object", list: "an array", str: "a string", int: "a number",
            float: "a number"}.get(type(value), type(value).__name__)


def _short(exc: Exception, limit: int = 200) -> str:
    text = str(exc)
    return text if len(text) <= limit else text[:limit] + "..."


def _count(obj: Any, key: str) -> int:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _result(choices: list[tuple[int, str, str | None]], usage: Any) -> GenerationResult:
    """Completions with the request's token usage spread by the shared-prefill rule (base.py).

    Servers report one total of completion tokens for all n choices; it is split evenly (the first
    choices take the remainder), so only the sum is exact when n > 1. Missing or odd counts are 0.
    """
    n = len(choices)
    prompt = _count(usage, "prompt_tokens")
    cached = _count(usage.get("prompt_tokens_details") if isinstance(usage, dict) else None, "cached_tokens")
    total = _count(usage, "completion_tokens")
    share, extra = divmod(total, n) if n else (0, 0)
    completions = []
    for i, (_, text, reason) in enumerate(choices):
        completions.append(Completion(
            text=text, token_ids=[], finish_reason="length" if reason == "length" else "stop",
            prompt_tokens=prompt - cached if i == 0 else 0, cached_tokens=cached if i == 0 else prompt,
            completion_tokens=share + (1 if i < extra else 0),
        ))
    return GenerationResult(completions)


def _chat_text(message: dict[str, Any], where: str) -> str:
    """The answer text; tool calls the server parsed become a JSON list of {"name", "arguments"}."""
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        raise EngineError(f"{where}.content is not a string (got {_json_kind(content)})")
    calls = message.get("tool_calls") or []
    if calls and not (content or "").strip():
        if not isinstance(calls, list):
            raise EngineError(f"{where}.tool_calls is not an array (got {_json_kind(calls)})")
        out = []
        for j, call in enumerate(calls):
            function = call.get("function") if isinstance(call, dict) else None
            name = function.get("name") if isinstance(function, dict) else None
            if not isinstance(name, str):
                raise EngineError(f"{where}.tool_calls[{j}] has no function name")
            arguments = function.get("arguments") or "{}"
            if isinstance(arguments, str):
                try:
                    arguments = json.loads(arguments)
                except (ValueError, RecursionError):
                    pass  # keep the text: the parser reports it as an error
            out.append({"name": name, "arguments": arguments})
        # dumps: the upstream's arguments may hold what json.dumps would write as bare NaN.
        return dumps(out)
    return content or ""


def _openai_tool(tool: Any) -> dict[str, Any]:
    if isinstance(tool, dict) and tool.get("type") == "function":
        return tool
    from toolace_r.tools import normalize_tool

    return normalize_tool(tool).to_openai()


def _message(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return str(exc)


def _describe(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    if status is not None:
        return f"HTTP {status}: {_message(exc)}"
    return f"{type(exc).__name__}: {exc}"
