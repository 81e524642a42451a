"""Running the app: in the foreground for `toolace-r serve`, or in a thread for tests and benchmarks;
and building the back end a command line asks for (a local hf engine, or an upstream server).
"""
from __future__ import annotations

import socket
import threading
import time
from typing import Any

from toolace_r.engines.base import Engine


def serve_forever(app: Any, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Serve `app` with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level=log_level, lifespan="off")


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
        self.server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, lifespan="off"))
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
