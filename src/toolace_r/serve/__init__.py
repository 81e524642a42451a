"""OpenAI-compatible server: any model, self-refining tool calls, behind the OpenAI API.

    from toolace_r.serve import ServeConfig, create_app, serve_forever
    app = create_app(engine, ServeConfig(api_key="secret"))

Modules: config (ServeConfig), schemas (request bodies), translate (requests -> refine/engine inputs),
responses (OpenAI-shaped answers and SSE chunks), errors (OpenAI error JSON, body limit), batching
(cross-request batching), app (the FastAPI app), server (uvicorn: foreground or in a thread).
FastAPI and uvicorn are the `serve` extra; importing this package needs them.
"""
from .batching import BatchingEngine, BatchStats
from .config import API_KEY_ENV, ServeConfig
from .app import create_app
from .server import ServerThread, serve_forever

__all__ = ["API_KEY_ENV", "BatchStats", "BatchingEngine", "ServeConfig", "ServerThread", "create_app",
           "serve_forever"]
