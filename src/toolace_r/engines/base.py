"""The generation protocol every engine speaks: requests in, completions out.

Every stage of the project (sampling k answers per training item, refinement rounds, evaluation,
serving) goes through `Engine.generate(requests) -> results`, so the stages never care whether the
text came from a local transformers model, an OpenAI-compatible server or in-process vLLM.

Token accounting follows one rule across engines: `prompt_tokens` counts the prompt tokens that were
actually computed (prefilled) for a request and `cached_tokens` the ones whose KV was reused. The n
samples of one request share one prefill, so that prefill is counted once, on the first completion;
the others report their whole prompt as cached. Summing over completions thus gives real compute.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal, Sequence

FinishReason = Literal["stop", "length"]


class EngineError(RuntimeError):
    """A generation failed for a reason the caller should see as one clear line (bad key, no vLLM...)."""


@dataclass(frozen=True)
class SamplingParams:
    """How to sample. temperature 0 means greedy; top_k 0 and top_p 1 mean no truncation.

    `seed` makes sampling reproducible: sample j of a request draws from its own generator seeded by
    (seed, j), so its tokens do not depend on which other requests share the batch.
    """

    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 256
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        # A bare string would otherwise be iterated character by character as many stop strings.
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        else:
            object.__setattr__(self, "stop", tuple(self.stop))
        if self.n < 1:
            raise ValueError(f"SamplingParams.n must be >= 1, got {self.n}")
        if self.temperature < 0:
            raise ValueError(f"SamplingParams.temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"SamplingParams.top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"SamplingParams.top_k must be >= 0, got {self.top_k}")
        if self.max_new_tokens < 1:
            raise ValueError(f"SamplingParams.max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if any(not s for s in self.stop):
            raise ValueError("SamplingParams.stop must not contain empty strings")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass
class GenerationRequest:
    """One prompt to complete.

    Give a rendered prompt (`prompt`, from toolace_r.prompts) or its token ids (`prompt_ids`); when
    both are given the ids win. `messages`/`tools` serve chat-only endpoints that render the prompt
    themselves (the openai engine uses /v1/chat/completions when there is no prompt).
    """

    prompt: str | None = None
    prompt_ids: list[int] | None = None
    params: SamplingParams = field(default_factory=SamplingParams)
    messages: list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        if self.prompt is None and self.prompt_ids is None and self.messages is None:
            raise ValueError("GenerationRequest needs a prompt, prompt_ids or messages")
        if self.prompt_ids is not None:
            self.prompt_ids = [int(t) for t in self.prompt_ids]


@dataclass
class Completion:
    """One sampled continuation.

    token_ids are the generated tokens, including the end-of-sequence token or the tokens that
    completed a stop string; `text` leaves both out (as OpenAI and vLLM do).
    """

    text: str
    token_ids: list[int]
    finish_reason: FinishReason
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class GenerationResult:
    """The n completions of one request, in sample order."""

    completions: list[Completion]

    @property
    def texts(self) -> list[str]:
        return [c.text for c in self.completions]

    @property
    def prompt_tokens(self) -> int:
        return sum(c.prompt_tokens for c in self.completions)

    @property
    def cached_tokens(self) -> int:
        return sum(c.cached_tokens for c in self.completions)

    @property
    def completion_tokens(self) -> int:
        return sum(c.completion_tokens for c in self.completions)


class Engine:
    """Base class: a name, `generate` and `close`. Engines are also context managers.

    Two attributes tell callers that render prompts (the refine loop, the server) how to do it; the
    defaults suit an engine that takes chat messages and renders them itself:
    tokenizer: the transformers tokenizer prompts for this engine are rendered and counted with, or
        None: requests then carry `messages` instead of a prompt.
    max_context: the most tokens a prompt and its completion may hold together, or None when the
        engine does not know it; the refine loop stops an item whose next round would not fit
        (docs/method.md#guard).
    precision: the dtype the engine computes in and why (a precision.Choice), for engines that load the
        weights themselves; None when the engine cannot tell (a server).
    """

    name: str = "engine"
    tokenizer: Any = None
    max_context: int | None = None
    precision: Any = None

    def generate(
        self, requests: Sequence[GenerationRequest], progress: bool = False
    ) -> list[GenerationResult]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the model / connections. Safe to call twice."""

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WrappedEngine(Engine):
    """An engine that adds behaviour around `inner` (batching, error mapping): prompts are rendered
    and bounded as for the inner engine, so its tokenizer and context limit are the inner one's."""

    def __init__(self, inner: Engine) -> None:
        self.inner = inner

    @property
    def tokenizer(self) -> Any:  # type: ignore[override]
        return self.inner.tokenizer

    @property
    def max_context(self) -> int | None:  # type: ignore[override]
        return self.inner.max_context


def continue_request(
    request: GenerationRequest,
    completion: Completion,
    suffix: str,
    params: SamplingParams | None = None,
) -> GenerationRequest:
    """The request that continues `request` after `completion`, followed by `suffix`.

    This is the refine loop's (previous result, suffix text) form: the new prompt is the old prompt
    text, the previous answer and the text that opens the next round (`prompts.refine_suffix`). The
    hf engine's prefix cache and vLLM's prefix caching then reuse the KV of the earlier round, since
    the new prompt starts with the tokens already computed.
    """
    if request.prompt is None:
        raise ValueError(
            "continue_request needs a text prompt; for a token-id request build the ids yourself "
            "(prompt_ids + completion.token_ids + suffix ids)"
        )
    return replace(
        request,
        prompt=request.prompt + completion.text + suffix,
        prompt_ids=None,
        params=params or request.params,
    )


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading token ids two sequences share (where two tokenisations part ways)."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
