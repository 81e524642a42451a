"""Running the app: in the foreground for `toolace-r serve`, or in a thread for tests and benchmarks;
and building the back end a command line asks for (a local hf engine, or an upstream server).

Both run uvicorn with the connection limits of the app's ServeConfig (`uvicorn_config`): a limit on
open connections (503 beyond it), the idle keep-alive timeout, the largest request head, and a
deadline for a request head, which uvicorn lacks: its h11 protocol re-arms no timer while a request
head trickles in, so a client sending a header byte now and then holds a connection forever.
`GuardedH11Protocol` adds that deadline and also closes a fresh connection that never sends a byte.
The deadline for the body is the app's (errors.BodyLimit), where it can answer 408 in JSON.
"""
from __future__ import annotations

import socket
import threading
import time
from typing import Any

from toolace_r.engines.base import Engine

from .config import ServeConfig


def _protocol_class(header_timeout: float) -> type:
    """uvicorn's h11 protocol with a deadline for each request head (see the module docstring)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._head_timer: Any = None

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            # uvicorn arms its keep-alive timer only after a response: without this, a connection
            # that never sends anything is held open forever.
            self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive,
                                                                self.timeout_keep_alive_handler)

        def data_received(self, data: bytes) -> None:
            # Waiting for a request: none yet, or the last one is answered (bytes now are a new head,
            # or the rest of a body the app did not need). Its deadline runs from the first byte.
            before = self.cycle
            waiting = before is None or before.response_complete
            if waiting and self._head_timer is None:
                self._head_timer = self.loop.call_later(header_timeout, self._head_timeout)
            super().data_received(data)
            if self.cycle is not before and self.cycle is not None:
                self._cancel_head_timer()  # a complete head arrived: the app's own deadlines apply

        def on_response_complete(self) -> None:
            self._cancel_head_timer()
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            super().connection_lost(exc)

        def _cancel_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timeout(self) -> None:
            self._head_timer = None
            if self.transport.is_closing():
                return
            if self.conn.their_state is h11.IDLE and self.conn.our_state is h11.IDLE:
                # Part of a head, and no response yet on this cycle: say why before closing.
                # h11 cannot answer a request it has not parsed, so the bytes are written as they are.
                body = (b'{"error": {"message": "request head not received within '
                        + f"{header_timeout:g}".encode() + b' s", "type": "invalid_request_error", '
                        b'"param": null, "code": null}}')
                self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                                     b"connection: close\r\ncontent-length: " + str(len(body)).encode()
                                     + b"\r\n\r\n" + body)
            self.transport.close()

    return GuardedH11Protocol


def uvicorn_config(app: Any, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
                   config: ServeConfig | None = None) -> Any:
    """uvicorn's Config for `app` with the limits of `config` (default: the app's own ServeConfig)."""
    import uvicorn

    if config is None:
        state = getattr(getattr(app, "state", None), "serve", None)
        config = getattr(state, "config", None) or ServeConfig()
    return uvicorn.Config(
        app, host=host, port=port, log_level=log_level, lifespan="off",
        http=_protocol_class(config.header_timeout),
        timeout_keep_alive=config.keep_alive_timeout,  # type: ignore[arg-type]  # any number of seconds works
        # uvicorn answers 503 once its count (this connection included) reaches the limit.
        limit_concurrency=config.max_connections + 1,
        h11_max_incomplete_event_size=config.max_header_bytes,
    )


def serve_forever(app: Any, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Serve `app` with uvicorn until interrupted."""
    import uvicorn

    uvicorn.Server(uvicorn_config(app, host, port, log_level)).run()


class ServerThread:
    """A uvicorn server on a loopback port in a daemon thread; a context manager.

        with ServerThread(app) as server:
            openai.OpenAI(base_url=server.base_url, api_key="...")
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning") -> None:
        import uvicorn

        self.host = host
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))  # port 0: the system picks a free one, with no race
        self.port = self._sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn_config(app, host, self.port, log_level))
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True,
                                        name=f"toolace-r-serve-{self.port}")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def start(self, timeout: float = 30.0) -> "ServerThread":
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server on {self.url} did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=30)
        self._sock.close()

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def build_backend(model: str | None, *, upstream: str | None = None, upstream_model: str | None = None,
                  upstream_api_key: str | None = None, engine_options: dict[str, Any] | None = None,
                  ) -> tuple[Engine, Any, bool]:
    """(engine, tokenizer, batching) for a command line.

    Local: the hf engine on `model`, batched across requests. Upstream: the openai engine to `upstream`
    (already concurrent, so not batched here); with `model` its tokenizer renders prompts here and the
    upstream's /v1/completions only generates, else the upstream's chat API renders the messages.
    """
    from toolace_r.engines import get_engine

    options = dict(engine_options or {})
    if upstream:
        engine = get_engine("openai", base_url=upstream.rstrip("/"), model=upstream_model,
                            api_key=upstream_api_key, **options)
        tokenizer = None
        if model:
            from transformers import AutoTokenizer

            from toolace_r.models import resolve_model

            tokenizer = AutoTokenizer.from_pretrained(resolve_model(model))
        return engine, tokenizer, False
    if not model:
        raise ValueError("serve needs --model (a registered name or a checkpoint path) or --upstream URL")
    engine = get_engine("hf", model=model, **options)
    return engine, None, True
