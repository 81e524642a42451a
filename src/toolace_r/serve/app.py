"""The FastAPI application: OpenAI's chat-completions, completions and models routes over any Engine,
with self-refinement of tool calls on the chat route.

    app = create_app(engine, ServeConfig(api_key="...", refine="adaptive"))

Each chat request runs `refine()` in a worker thread. A local engine is wrapped in a `BatchingEngine`
so the rounds of concurrent requests reach the model together; an engine that is itself thread-safe
and concurrent (the openai engine proxying to an upstream server) is used directly (`batching=False`).
Blocking work never runs on the event loop, and a failure in one request answers that request with an
error and nothing else. Whose fault a failure is decides its status: the client's request 4xx (checked
in translate.py before anything runs, or a prompt the engine refuses), the upstream's 502, and
anything else, the model's output included, is the server's to answer: 200 with what the model said,
or 500 for a real fault. A stream that fails after it started ends with an error chunk and
`data: [DONE]` (responses.guarded_stream).
"""
from __future__ import annotations

import functools
import hmac
import logging
from typing import Any, Callable

import anyio
from fastapi import Depends, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse

from toolace_r.engines.base import Engine, EngineError, WrappedEngine
from toolace_r.refine import refine

from .batching import BatchingEngine
from .config import ServeConfig
from .errors import ApiError, BodyLimit, StrictJSONResponse, install_error_handlers
from .responses import (chat_choice, chat_chunks, chat_response, completion_chunks, completion_response,
                        guarded_stream, new_id, now, trace_usage)
from .schemas import ChatCompletionRequest, CompletionRequest
from .translate import chat_plan, completion_requests

log = logging.getLogger("toolace_r.serve")


class _State:
    """What the routes share: the engine, the tokenizer prompts render with, the config, a limiter."""

    def __init__(self, engine: Engine, config: ServeConfig, tokenizer: Any) -> None:
        self.engine, self.config, self.tokenizer = engine, config, tokenizer
        self.vocab_size = len(tokenizer) if tokenizer is not None else None
        self._limiter: anyio.CapacityLimiter | None = None

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        # Created on first use: it belongs to the event loop the server runs.
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.config.max_concurrency)
        return self._limiter

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`fn` in a worker thread; engine failures become OpenAI-style errors of this request only.

        Only the engine's own refusals of a prompt are the client's (see `_PromptChecks`); any other
        exception, a ValueError from handling the model's output included, is left to `_guarded` (500).
        """
        try:
            return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs), limiter=self.limiter)
        except ApiError:
            raise
        except EngineError as exc:
            raise ApiError(502, f"generation failed: {exc}") from exc


class _PromptChecks(WrappedEngine):
    """The engine as the routes call it: a ValueError from `generate` is the engine refusing a prompt
    (longer than the model's context, say), answered 400; everything else is the wrapped engine's."""

    def __init__(self, inner: Engine) -> None:
        super().__init__(inner)
        self.name = inner.name

    def __getattr__(self, name: str) -> Any:  # anything else of the wrapped engine's
        if name == "inner":  # not set yet: no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def generate(self, requests: Any, progress: bool = False) -> Any:
        try:
            return self.inner.generate(requests, progress)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from exc


def _guarded(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Any unexpected exception in a route becomes a 500 answer of that request.

    Left to Starlette, it would be re-raised after the 500 and the connection dropped; here it is
    answered like every other error and the connection stays usable.
    """
    @functools.wraps(handler)
    async def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return await handler(*args, **kwargs)
        except ApiError:
            raise
        except Exception as exc:  # noqa: BLE001
            log.exception("request failed")
            raise ApiError(500, f"internal error: {type(exc).__name__}: {exc}") from exc

    return run


def create_app(engine: Engine, config: ServeConfig | None = None, *, tokenizer: Any = None,
               batching: bool = True) -> FastAPI:
    """The server app over `engine`.

    tokenizer: renders prompts (default: the engine's own); without one, the refine loop sends chat
        messages (the openai engine then uses the upstream's chat API).
    batching: wrap the engine in a BatchingEngine (config.max_batch, config.batch_wait_ms). The
        wrapper is `app.state.engine`; whoever created the app closes it (`app.state.engine.close()`).
    """
    cfg = config or ServeConfig()
    if batching and not isinstance(engine, BatchingEngine):
        engine = BatchingEngine(engine, cfg.max_batch, cfg.batch_wait_ms)
    state = _State(engine, cfg, tokenizer if tokenizer is not None else engine.tokenizer)
    checked = _PromptChecks(engine)
    # The docs routes are added below, behind the key, when the config asks for them.
    app = FastAPI(title="toolace-r", description="OpenAI-compatible tool calling with self-refinement",
                  version="1", docs_url=None, redoc_url=None, openapi_url=None,
                  default_response_class=StrictJSONResponse)
    app.state.engine = engine
    app.state.serve = state
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=cfg.max_body_bytes, timeout=cfg.body_timeout)
    auth = Depends(_auth(cfg))

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": cfg.served_model_name}

    @app.get("/v1/models", dependencies=[auth])
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": cfg.served_model_name, "object": "model", "created": now(),
                                            "owned_by": "toolace-r"}]}

    @app.post("/v1/chat/completions", dependencies=[auth])
    @_guarded
    async def chat_completions(body: ChatCompletionRequest) -> Any:
        plan = chat_plan(body, cfg)
        result = await state.run(refine, plan.items, checked, plan.config, tokenizer=state.tokenizer)
        policy = plan.config.stop_policy.name
        choices = [chat_choice(i, t, plan.tool_names, policy) for i, t in enumerate(result.traces)]
        use = trace_usage(result.traces)
        rid = new_id("chatcmpl")
        if plan.stream:
            chunks = chat_chunks(rid, cfg.served_model_name, choices, use if plan.include_usage else None)
            return StreamingResponse(guarded_stream(chunks), media_type="text/event-stream")
        return StrictJSONResponse(chat_response(rid, cfg.served_model_name, choices, use))

    @app.post("/v1/completions", dependencies=[auth])
    @_guarded
    async def completions(body: CompletionRequest) -> Any:
        requests = completion_requests(body, cfg, state.vocab_size)
        results = await state.run(checked.generate, requests)
        rid = new_id("cmpl")
        if body.stream:
            include = bool(body.stream_options and body.stream_options.include_usage)
            return StreamingResponse(guarded_stream(completion_chunks(rid, cfg.served_model_name, results, include)),
                                     media_type="text/event-stream")
        return StrictJSONResponse(completion_response(rid, cfg.served_model_name, results))

    if cfg.docs:
        _add_docs(app, auth)
    return app


def _add_docs(app: FastAPI, auth: Any) -> None:
    """/openapi.json, /docs and /redoc, behind the same key as the API.

    With a key, a browser opening /docs must send it too (a proxy that adds the header, say): the
    page's own fetch of /openapi.json carries no key.
    """
    @app.get("/openapi.json", dependencies=[auth], include_in_schema=False)
    async def openapi() -> JSONResponse:
        return StrictJSONResponse(app.openapi())

    @app.get("/docs", dependencies=[auth], include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - docs")

    @app.get("/redoc", dependencies=[auth], include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title=f"{app.title} - ReDoc")


def _auth(cfg: ServeConfig) -> Callable[[Request], None]:
    """A dependency that checks `Authorization: Bearer <key>` when the server has a key."""
    expected = cfg.api_key.encode() if cfg.api_key else None

    def check(request: Request) -> None:
        if expected is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
            raise ApiError(401, "missing or invalid API key: send 'Authorization: Bearer <key>'",
                           code="invalid_api_key")

    return check


__all__ = ["create_app"]
