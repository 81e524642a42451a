"""Tests of cross-request batching (serve/batching.py) with a recording engine, no server."""
from __future__ import annotations

import threading
import time
from typing import Sequence

import pytest

from toolace_r.engines.base import Completion, Engine, GenerationRequest, GenerationResult
from toolace_r.serve.batching import BatchingEngine


class Echo(Engine):
    """Answers each prompt with itself; records the size of every call; fails on a prompt "bad"."""

    name = "echo"
    tokenizer = "the tokenizer"
    max_context = 123

    def __init__(self, delay: float = 0.02) -> None:
        self.delay = delay
        self.calls: list[int] = []
        self.threads: set[str] = set()
        self.closed = False

    def generate(self, requests: Sequence[GenerationRequest], progress: bool = False) -> list[GenerationResult]:
        self.calls.append(len(requests))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        if any(r.prompt == "bad" for r in requests):
            raise ValueError("bad prompt")
        return [GenerationResult([Completion(r.prompt or "", [], "stop")]) for r in requests]

    def close(self) -> None:
        self.closed = True


def _concurrently(engine: Engine, prompts_per_caller: list[list[str]]) -> list[object]:
    """Call engine.generate from one thread per caller, all released at once; results or exceptions."""
    out: list[object] = [None] * len(prompts_per_caller)
    barrier = threading.Barrier(len(prompts_per_caller))

    def call(i: int) -> None:
        barrier.wait()
        try:
            out[i] = [r.texts[0] for r in engine.generate([GenerationRequest(prompt=p) for p in prompts_per_caller[i]])]
        except Exception as exc:  # noqa: BLE001
            out[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(prompts_per_caller))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return out


def test_concurrent_calls_share_engine_calls_and_get_their_own_results():
    inner = Echo()
    engine = BatchingEngine(inner, max_batch=16, max_wait_ms=200)
    callers = [[f"p{i}"] for i in range(6)] + [["a", "b", "c"]]
    out = _concurrently(engine, callers)
    assert out == [[f"p{i}"] for i in range(6)] + [["a", "b", "c"]]
    assert sum(inner.calls) == 9 and len(inner.calls) < 7  # fewer engine calls than callers
    assert inner.threads == {"toolace-r-batcher"}  # only the dispatcher touches the engine
    assert engine.stats.requests == 9 and engine.stats.jobs == 7
    engine.close()


def test_max_batch_bounds_a_call_and_never_splits_a_caller():
    inner = Echo()
    engine = BatchingEngine(inner, max_batch=4, max_wait_ms=100)
    callers = [["x1", "x2", "x3"]] + [[f"p{i}"] for i in range(7)]
    out = _concurrently(engine, callers)
    assert out[0] == ["x1", "x2", "x3"] and out[1:] == [[f"p{i}"] for i in range(7)]
    assert max(inner.calls) <= 4 and sum(inner.calls) == 10
    engine.close()


def test_max_batch_one_serves_one_by_one():
    inner = Echo(delay=0.005)
    engine = BatchingEngine(inner, max_batch=1, max_wait_ms=50)
    _concurrently(engine, [[f"p{i}"] for i in range(5)])
    assert inner.calls == [1] * 5
    engine.close()


def test_a_failing_request_fails_alone():
    inner = Echo()
    engine = BatchingEngine(inner, max_batch=16, max_wait_ms=200)
    out = _concurrently(engine, [["ok1"], ["bad"], ["ok2"]])
    assert out[0] == ["ok1"] and out[2] == ["ok2"]
    assert isinstance(out[1], ValueError) and "bad prompt" in str(out[1])
    assert engine.generate([GenerationRequest(prompt="later")])[0].texts == ["later"]  # dispatcher alive
    engine.close()


def test_passes_tokenizer_and_context_through_and_closes():
    inner = Echo()
    engine = BatchingEngine(inner, max_batch=2, max_wait_ms=0)
    assert engine.tokenizer == "the tokenizer" and engine.max_context == 123
    assert engine.generate([]) == []
    engine.close()
    engine.close()  # twice is fine
    assert inner.closed
    with pytest.raises(RuntimeError, match="closed"):
        engine.generate([GenerationRequest(prompt="x")])
    with pytest.raises(ValueError):
        BatchingEngine(inner, max_batch=0)
