"""Settings of the OpenAI-compatible server: what it serves, how it refines, and its limits.

Every limit is a field here and a command-line flag, so a deployment can tighten or loosen it; a request
over a limit gets an OpenAI-style 4xx error instead of tying up the model.
"""
from __future__ import annotations

from dataclasses import dataclass

from toolace_r.refine import get_policy

API_KEY_ENV = "TOOLACE_R_API_KEY"


@dataclass
class ServeConfig:
    """How the server behaves.

    served_model_name: the model id `/v1/models` lists and requests must name (None/"" in a request is
        accepted too).
    api_key: when set, every /v1 route needs `Authorization: Bearer <api_key>`.
    refine / max_rounds: the default stop policy and round cap; a request may override both in its
        extra fields `refine` (a policy key, or true/false) and `max_rounds`, up to `max_rounds_cap`.
    guard: the refine loop's guard (see refine.RefineConfig).
    answer_format: what the model answers in: "auto", "pythonic" or "native" (prompts.PromptConfig); the
        format it was trained in, so that prompts match training and its answers parse.
    default_max_tokens: tokens per answer when a request gives no max_tokens; `max_tokens_cap` bounds
        what a request may ask for.
    max_body_bytes, max_tools, max_messages, max_n, max_prompts: request size bounds.
    max_batch / batch_wait_ms: cross-request batching (a local engine): most requests handed to the
        engine in one call, and how long the dispatcher waits for more after the first one arrives.
        max_batch 1 serves requests one by one.
    max_concurrency: requests processed at once (worker threads); more wait in line.
    max_connections: open connections the server answers; a request on one more gets 503 (idle and
        half-sent requests count too, so the timeouts below are what frees their places).
    keep_alive_timeout: seconds an idle connection (fresh, or between requests) stays open.
    header_timeout: seconds from the first byte of a request to the end of its head (method, path,
        headers); a client still sending headers then gets 408 and the connection is closed.
    body_timeout: seconds from the end of the head to the end of the body; else 408 and closed.
    max_header_bytes: a request head still incomplete past this size gets 400 and the connection is
        closed (h11's limit on an event it is waiting to complete; one read may bring a larger head).
    docs: serve /docs, /redoc and /openapi.json (behind the API key when there is one). Off by
        default: API clients need none of them, and the pages load their scripts from a CDN.
    """

    served_model_name: str = "toolace-r"
    api_key: str | None = None
    refine: str = "adaptive"
    max_rounds: int = 3
    max_rounds_cap: int = 3
    guard: str = "off"
    answer_format: str = "auto"
    default_max_tokens: int = 256
    max_tokens_cap: int = 2048
    max_body_bytes: int = 1 << 20
    max_tools: int = 128
    max_messages: int = 256
    max_n: int = 8
    max_prompts: int = 64
    max_batch: int = 16
    batch_wait_ms: float = 10.0
    max_concurrency: int = 64
    max_connections: int = 512
    keep_alive_timeout: float = 5.0
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_header_bytes: int = 16 * 1024
    docs: bool = False

    def __post_init__(self) -> None:
        get_policy(self.refine)  # an unknown policy fails now, listing the known ones
        if not 0 <= self.max_rounds <= self.max_rounds_cap:
            raise ValueError(f"max_rounds must be in 0..max_rounds_cap ({self.max_rounds_cap}), got {self.max_rounds}")
        positive = ("default_max_tokens", "max_tokens_cap", "max_body_bytes", "max_tools", "max_messages",
                    "max_n", "max_prompts", "max_batch", "max_concurrency", "max_connections", "max_header_bytes")
        bad = [name for name in positive if getattr(self, name) < 1]
        if bad:
            raise ValueError(f"ServeConfig: {', '.join(bad)} must be >= 1")
        if self.default_max_tokens > self.max_tokens_cap:
            raise ValueError("default_max_tokens must not exceed max_tokens_cap")
        if self.batch_wait_ms < 0:
            raise ValueError("batch_wait_ms must be >= 0")
        timeouts = ("keep_alive_timeout", "header_timeout", "body_timeout")
        slow = [name for name in timeouts if not getattr(self, name) > 0]  # NaN fails too
        if slow:
            raise ValueError(f"ServeConfig: {', '.join(slow)} must be > 0 seconds")
