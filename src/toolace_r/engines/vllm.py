"""The `vllm` engine: in-process vLLM, for GPU-scale sampling (an optional extra).

vLLM already does what the hf engine does by hand, at GPU scale: `SamplingParams(n=k)` shares one
prefill among the k samples and `enable_prefix_caching` reuses the KV of any earlier prompt prefix,
so refinement rounds and the shared system prompt cost only their new tokens. vLLM is imported
when the engine is built, never when this module is, so the project runs without it; asking for
the engine without vLLM installed is an `EngineError` that says how to install it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from .base import Completion, Engine, EngineError, GenerationRequest, GenerationResult, SamplingParams

# vLLM pins its own torch, so it is no extra of toolace-r (pyproject.toml): it gets an environment of its own.
INSTALL_HINT = ("install toolace-r into vLLM's own environment (`pip install vllm` first), or run "
                "`vllm serve` there and use --engine openai; see docs/scaling.md#vllm")


@dataclass
class VLLMEngineConfig:
    """Settings of the vllm engine.

    model: a name known to toolace_r.models, a checkpoint folder or a Hugging Face id.
    extra: further keyword arguments for `vllm.LLM` (e.g. {"enforce_eager": true}).
    """

    model: str | None = None
    dtype: str = "auto"
    seed: int = 0
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.85
    max_model_len: int | None = None
    enable_prefix_caching: bool = True
    skip_special_tokens: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def _import_vllm():
    try:
        import vllm
    except ImportError as exc:
        raise EngineError(f"the vllm engine needs vLLM, which is not installed: {INSTALL_HINT}") from exc
    return vllm


class VLLMEngine(Engine):
    """Generation with an in-process `vllm.LLM`; see the module docstring."""

    name = "vllm"

    def __init__(self, config: VLLMEngineConfig | None = None, *, llm: Any = None, **overrides: Any) -> None:
        cfg = config or VLLMEngineConfig()
        if overrides:
            cfg = VLLMEngineConfig(**{**cfg.__dict__, **overrides})
        self.config = cfg
        self._vllm = _import_vllm()
        if llm is None:
            if cfg.model is None:
                raise ValueError("the vllm engine needs a model: set `model` (a name or a path)")
            from toolace_r.models import resolve_model

            kwargs = dict(
                model=resolve_model(cfg.model), dtype=cfg.dtype, seed=cfg.seed,
                tensor_parallel_size=cfg.tensor_parallel_size, gpu_memory_utilization=cfg.gpu_memory_utilization,
                enable_prefix_caching=cfg.enable_prefix_caching,
            )
            if cfg.max_model_len is not None:
                kwargs["max_model_len"] = cfg.max_model_len
            llm = self._vllm.LLM(**{**kwargs, **cfg.extra})
        self.llm = llm

    @property
    def tokenizer(self) -> Any:
        """The LLM's tokenizer (None once closed, or for an `llm` object that does not offer one)."""
        get = getattr(self.llm, "get_tokenizer", None)
        return get() if get is not None else None

    @property
    def max_context(self) -> int | None:
        """The configured `max_model_len`; None leaves the limit to vLLM (the model's own)."""
        return self.config.max_model_len

    def generate(
        self, requests: Sequence[GenerationRequest], progress: bool = False
    ) -> list[GenerationResult]:
        if not requests:
            return []
        prompts = [self._prompt(i, r) for i, r in enumerate(requests)]
        params = [self._params(r.params, i) for i, r in enumerate(requests)]
        outputs = self.llm.generate(prompts, params, use_tqdm=progress)
        return [self._result(out) for out in outputs]

    def close(self) -> None:
        self.llm = None

    def _prompt(self, index: int, request: GenerationRequest) -> Any:
        if request.prompt_ids is not None:
            return {"prompt_token_ids": list(request.prompt_ids)}
        if request.prompt is not None:
            return request.prompt
        raise ValueError(
            f"request {index}: the vllm engine needs a rendered prompt or prompt_ids; render messages "
            "with toolace_r.prompts.render_prompt"
        )

    def _params(self, p: SamplingParams, index: int) -> Any:
        kwargs: dict[str, Any] = dict(
            n=p.n, temperature=p.temperature, top_p=p.top_p, max_tokens=p.max_new_tokens,
            stop=list(p.stop) or None, skip_special_tokens=self.config.skip_special_tokens,
        )
        if p.top_k > 0:  # left out otherwise: vLLM versions disagree on the "no top-k" value (-1 or 0)
            kwargs["top_k"] = p.top_k
        seed = p.seed if p.seed is not None else (None if p.greedy else self.config.seed + index)
        if seed is not None:
            kwargs["seed"] = seed
        return self._vllm.SamplingParams(**kwargs)

    @staticmethod
    def _result(out: Any) -> GenerationResult:
        prompt = len(out.prompt_token_ids or [])
        cached = getattr(out, "num_cached_tokens", None) or 0
        completions = []
        for i, c in enumerate(sorted(out.outputs, key=lambda c: c.index)):
            completions.append(Completion(
                text=c.text, token_ids=list(c.token_ids),
                finish_reason="length" if c.finish_reason == "length" else "stop",
                prompt_tokens=prompt - cached if i == 0 else 0, cached_tokens=cached if i == 0 else prompt,
                completion_tokens=len(c.token_ids),
            ))
        return GenerationResult(completions)
