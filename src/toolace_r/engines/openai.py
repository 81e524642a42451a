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
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(requests), desc="generate", unit="req")

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
                models = self._with_retries(lambda: self.client.models.list()).data
                if not models:
                    raise EngineError(f"the server at {self.config.base_url} lists no models; set model=...")
                self._model = models[0].id
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
            kwargs = dict(common, messages=request.messages)
            if request.tools:
                kwargs["tools"] = [_openai_tool(t) for t in request.tools]
            response = self.client.chat.completions.create(**kwargs)
            texts = [(c.index, _chat_text(c.message), c.finish_reason) for c in response.choices]
        else:
            if not has_prompt:
                raise ValueError("the completions API needs request.prompt or request.prompt_ids")
            prompt = request.prompt_ids if request.prompt_ids is not None else request.prompt
            response = self.client.completions.create(prompt=prompt, **common)
            texts = [(c.index, c.text or "", c.finish_reason) for c in response.choices]
        return _result(sorted(texts, key=lambda t: t[0]), response.usage)

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


def _result(choices: list[tuple[int, str, str | None]], usage: Any) -> GenerationResult:
    """Completions with the request's token usage spread by the shared-prefill rule (base.py).

    Servers report one total of completion tokens for all n choices; it is split evenly (the first
    choices take the remainder), so only the sum is exact when n > 1.
    """
    n = len(choices)
    prompt = getattr(usage, "prompt_tokens", 0) or 0
    details = getattr(usage, "prompt_tokens_details", None)
    cached = (getattr(details, "cached_tokens", 0) or 0) if details is not None else 0
    total = getattr(usage, "completion_tokens", 0) or 0
    share, extra = divmod(total, n) if n else (0, 0)
    completions = []
    for i, (_, text, reason) in enumerate(choices):
        completions.append(Completion(
            text=text, token_ids=[], finish_reason="length" if reason == "length" else "stop",
            prompt_tokens=prompt - cached if i == 0 else 0, cached_tokens=cached if i == 0 else prompt,
            completion_tokens=share + (1 if i < extra else 0),
        ))
    return GenerationResult(completions)


def _chat_text(message: Any) -> str:
    """The answer text; tool calls the server parsed become a JSON list of {"name", "arguments"}."""
    calls = getattr(message, "tool_calls", None) or []
    if calls and not (message.content or "").strip():
        out = []
        for call in calls:
            try:
                arguments = json.loads(call.function.arguments or "{}")
            except json.JSONDecodeError:
                arguments = call.function.arguments  # keep it: the parser reports it as an error
            out.append({"name": call.function.name, "arguments": arguments})
        return json.dumps(out, ensure_ascii=False)
    return message.content or ""


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
