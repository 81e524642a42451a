"""OpenAI-style errors: every failure a client sees is {"error": {"message", "type", "param", "code"}}.

Handlers turn our `ApiError`, Starlette's HTTP errors, FastAPI's validation errors (422, answered as
400 like OpenAI does) and any unexpected exception (500) into that shape. An exception inside one
request therefore ends that request only; the server keeps serving.

Every JSON body the server writes is strict JSON (`StrictJSONResponse`, through files.dumps): no bare
NaN/Infinity, lone surrogates escaped, so any client's parser reads it and encoding never fails.
The `BodyLimit` middleware bounds the request body in size and in the time the client takes to send it.
"""
from __future__ import annotations

import logging
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from toolace_r.files import dumps

log = logging.getLogger("toolace_r.serve")

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 405: "invalid_request_error", 413: "invalid_request_error",
          408: "invalid_request_error", 429: "rate_limit_error", 502: "upstream_error"}


class StrictJSONResponse(JSONResponse):
    """A JSON response rendered by files.dumps: strict JSON that always encodes as UTF-8."""

    def render(self, content: Any) -> bytes:
        return dumps(content).encode("utf-8")


class ApiError(Exception):
    """A request the server answers with an error status and an OpenAI-shaped body."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 type: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.type = type or _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")


def error_body(status: int, message: str, *, param: str | None = None, code: str | None = None,
               type: str | None = None) -> dict[str, Any]:
    kind = type or _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def error_response(status: int, message: str, *, headers: dict[str, str] | None = None,
                   **fields: Any) -> JSONResponse:
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return StrictJSONResponse(error_body(status, message, **fields), status_code=status, headers=headers or None)


def _unparsable_body(exc: StarletteHTTPException) -> str | None:
    """Why FastAPI could not parse a body, in words, for its generic "error parsing the body" 400.

    json.loads raises RecursionError on a body nested too deeply and ValueError on an integer
    literal too long to convert; FastAPI chains the original exception.
    """
    cause = exc.__cause__
    if exc.status_code != 400 or cause is None:
        return None
    if isinstance(cause, RecursionError):
        return "the request body is nested too deeply to parse"
    if isinstance(cause, (ValueError, UnicodeDecodeError)):
        return f"the request body is not valid JSON ({cause})"
    return None


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    errors = exc.errors()
    for err in errors:
        if err.get("type") == "json_invalid":
            detail = (err.get("ctx") or {}).get("error", "")
            return f"the request body is not valid JSON ({detail})", None
    parts, param = [], None
    for err in errors[:5]:
        loc = [str(x) for x in err.get("loc", ()) if x != "body"]
        where = ".".join(loc) or "body"
        param = param or (loc[0] if loc else None)
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "invalid request: " + "; ".join(parts) + more, param


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, param=exc.param, code=exc.code, type=exc.type)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(exc)
        return error_response(400, message, param=param)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = _unparsable_body(exc) or (exc.detail if isinstance(exc.detail, str) else dumps(exc.detail))
        return error_response(exc.status_code, detail, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request %s %s failed", request.method, request.url.path)
        return error_response(500, f"internal error: {type(exc).__name__}: {exc}")


class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` gets 413 before the app parses it, and a body
    that has not fully arrived `timeout` seconds after the request head gets 408.

    The declared Content-Length is checked first; a chunked body is counted as it arrives. The
    timeout bounds the whole body, not each read: a client sending a byte now and then (slow loris)
    would pass any per-read limit. Both errors close the connection, so the rest of a body that is
    still coming is never read. The time to send the head is bounded in the server (server.py).
    """

    def __init__(self, app: Any, max_bytes: int, timeout: float | None = None) -> None:
        self.app, self.max_bytes, self.timeout = app, max_bytes, timeout

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._reject(scope, receive, send)
            return
        seen = 0
        complete = False
        deadline = anyio.current_time() + self.timeout if self.timeout else None

        async def counted() -> dict:
            nonlocal seen, complete
            if complete or deadline is None:
                # After the body only a disconnect can come; waiting for it is not reading the body.
                message = await receive()
            else:
                with anyio.move_on_after(max(deadline - anyio.current_time(), 0.0)) as waited:
                    message = await receive()
                if waited.cancelled_caught:
                    raise StarletteHTTPException(408, f"request body not received within {self.timeout:g} s",
                                                 headers=_CLOSE)
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise StarletteHTTPException(413, self._message(), headers=_CLOSE)
                complete = not message.get("more_body", False)
            return message

        await self.app(scope, counted, send)

    def _message(self) -> str:
        return f"request body too large: the limit is {self.max_bytes} bytes"

    async def _reject(self, scope: dict, receive: Any, send: Any) -> None:
        await error_response(413, self._message(), headers=_CLOSE)(scope, receive, send)


# The body of a rejected request may still be arriving: the server closes the connection after
# this answer instead of reading (and discarding) the rest.
_CLOSE = {"Connection": "close"}
