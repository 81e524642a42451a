"""Tests of the vllm engine.

Without vLLM: asking for the engine gives a clear error naming the install command. The mapping
between our protocol and vLLM's (sampling params, token ids, prompt/cached token accounting) is
tested against a stand-in `vllm` module. A real vLLM run is tested only where vLLM is installed
(a GPU machine) and skipped elsewhere.
"""
from __future__ import annotations

import importlib.util
import sys
import types
from dataclasses import dataclass, field

import pytest

from toolace_r.engines import EngineError, GenerationRequest, SamplingParams, get_engine

HAS_VLLM = importlib.util.find_spec("vllm") is not None


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed")
def test_missing_vllm_gives_install_hint():
    # no extra to install: vLLM brings its own torch, so the hint points to its own environment
    with pytest.raises(EngineError, match=r"vLLM's own environment.*--engine openai.*docs/scaling.md#vllm"):
        get_engine("vllm", model="smollm2-135m")


@dataclass
class FakeOutput:
    index: int
    text: str
    token_ids: list[int]
    finish_reason: str


@dataclass
class FakeRequestOutput:
    prompt_token_ids: list[int]
    outputs: list[FakeOutput]
    num_cached_tokens: int = 0


@dataclass
class FakeLLM:
    init: dict = field(default_factory=dict)
    calls: list = field(default_factory=list)

    def generate(self, prompts, params, use_tqdm=False):
        self.calls.append((prompts, params))
        outs = []
        for prompt, p in zip(prompts, params):
            ids = prompt["prompt_token_ids"] if isinstance(prompt, dict) else list(range(len(prompt)))
            samples = [FakeOutput(i, f"s{i}", [7] * (i + 1), "length" if i % 2 else "stop") for i in range(p.n)]
            outs.append(FakeRequestOutput(ids, list(reversed(samples)), num_cached_tokens=2))
        return outs


@pytest.fixture
def fake_vllm(monkeypatch):
    module = types.ModuleType("vllm")

    class FakeSamplingParams:
        def __init__(self, **kw):
            self.kw = kw
            self.n = kw["n"]

    created = []

    def make_llm(**kw):
        llm = FakeLLM(init=kw)
        created.append(llm)
        return llm

    module.SamplingParams = FakeSamplingParams
    module.LLM = make_llm
    module.created = created
    monkeypatch.setitem(sys.modules, "vllm", module)
    return module


def test_engine_maps_requests_and_outputs(fake_vllm, tmp_path):
    eng = get_engine("vllm", model=str(tmp_path), max_model_len=2048, extra={"enforce_eager": True})
    llm = fake_vllm.created[0]
    assert llm.init["model"] == str(tmp_path) and llm.init["enable_prefix_caching"] is True
    assert llm.init["max_model_len"] == 2048 and llm.init["enforce_eager"] is True
    reqs = [
        GenerationRequest(prompt="hello", params=SamplingParams(n=3, temperature=0.8, top_k=5, stop=("]",), seed=4)),
        GenerationRequest(prompt_ids=[1, 2, 3, 4], params=SamplingParams(max_new_tokens=9)),
    ]
    first, second = eng.generate(reqs)
    prompts, params = llm.calls[0]
    assert prompts == ["hello", {"prompt_token_ids": [1, 2, 3, 4]}]
    assert params[0].kw == dict(n=3, temperature=0.8, top_p=1.0, max_tokens=256, stop=["]"],
                                skip_special_tokens=True, top_k=5, seed=4)
    assert params[1].kw == dict(n=1, temperature=0.0, top_p=1.0, max_tokens=9, stop=None, skip_special_tokens=True)
    assert first.texts == ["s0", "s1", "s2"]  # sorted by sample index
    assert [c.finish_reason for c in first.completions] == ["stop", "length", "stop"]
    assert [c.token_ids for c in first.completions] == [[7], [7, 7], [7, 7, 7]]
    assert [c.prompt_tokens for c in first.completions] == [3, 0, 0]
    assert [c.cached_tokens for c in first.completions] == [2, 5, 5]
    assert second.completions[0].prompt_tokens == 2 and second.completions[0].completion_tokens == 1


def test_messages_only_request_is_refused(fake_vllm):
    eng = get_engine("vllm", llm=FakeLLM())
    with pytest.raises(ValueError, match="render_prompt"):
        eng.generate([GenerationRequest(messages=[{"role": "user", "content": "hi"}])])


@pytest.mark.slow
@pytest.mark.skipif(not HAS_VLLM, reason="vLLM is not installed")
def test_real_vllm_greedy_and_samples(embedded_model_dir):  # pragma: no cover - GPU machines only
    eng = get_engine("vllm", model=str(embedded_model_dir), gpu_memory_utilization=0.3)
    [result] = eng.generate([GenerationRequest(
        prompt="<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n",
        params=SamplingParams(n=4, temperature=0.8, max_new_tokens=16, seed=1))])
    assert len(result.completions) == 4
    assert all(0 < len(c.token_ids) <= 16 for c in result.completions)
