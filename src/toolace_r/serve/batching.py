"""Cross-request batching: many HTTP requests, one engine call.

`BatchingEngine` wraps an engine that must be driven from one thread (the hf engine is not thread-safe)
and that is faster on a batch than on its requests one by one. Its `generate()` may be called from any
number of threads: it queues the call's requests and blocks. One dispatcher thread takes the first
queued call, keeps collecting calls for up to `max_wait_ms` (or until `max_batch` requests are in hand),
runs the wrapped engine once on all of them and hands each caller its own results. Each HTTP request
runs the refine loop against this wrapper, so the rounds of concurrent requests batch together.

A call's requests are never split across engine calls. When a combined call fails, each call in it is
retried on its own, so one bad request (a prompt too long for the context, say) fails alone.
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from toolace_r.engines.base import Engine, GenerationRequest, GenerationResult, WrappedEngine


@dataclass
class _Job:
    requests: list[GenerationRequest]
    done: threading.Event = field(default_factory=threading.Event)
    results: list[GenerationResult] | None = None
    error: BaseException | None = None


@dataclass
class BatchStats:
    """Counters for logs, tests and the load benchmark."""

    engine_calls: int = 0
    jobs: int = 0
    requests: int = 0
    largest_batch: int = 0

    @property
    def mean_batch(self) -> float:
        return self.requests / self.engine_calls if self.engine_calls else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"engine_calls": self.engine_calls, "jobs": self.jobs, "requests": self.requests,
                "largest_batch": self.largest_batch, "mean_batch": round(self.mean_batch, 3)}


class BatchingEngine(WrappedEngine):
    """An Engine that funnels concurrent `generate()` calls into batched calls of `inner`."""

    def __init__(self, inner: Engine, max_batch: int = 16, max_wait_ms: float = 10.0, *,
                 close_inner: bool = True) -> None:
        if max_batch < 1 or max_wait_ms < 0:
            raise ValueError("max_batch must be >= 1 and max_wait_ms >= 0")
        super().__init__(inner)
        self.close_inner = close_inner
        self.name = f"batching({inner.name})"
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.stats = BatchStats()
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._held: _Job | None = None  # a job that did not fit the last batch: it opens the next one
        self._closed = False
        self._thread = threading.Thread(target=self._dispatch, name="toolace-r-batcher", daemon=True)
        self._thread.start()

    def generate(self, requests: Sequence[GenerationRequest], progress: bool = False) -> list[GenerationResult]:
        if not requests:
            return []
        if self._closed:
            raise RuntimeError("the batching engine is closed")
        job = _Job(list(requests))
        self._queue.put(job)
        job.done.wait()
        if job.error is not None:
            raise job.error
        assert job.results is not None
        return job.results

    def close(self) -> None:
        """Stop the dispatcher (after the calls already queued) and close the wrapped engine (unless
        `close_inner` is False: a caller that reuses it, e.g. a benchmark comparing settings)."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout=60)
        if self.close_inner:
            self.inner.close()

    # --- the dispatcher thread -----------------------------------------------------------------

    def _dispatch(self) -> None:
        while True:
            first = self._held if self._held is not None else self._queue.get()
            self._held = None
            if first is None:
                return
            batch = self._collect(first)
            self._run(batch)
            if batch and batch[-1] is None:  # close() was called while collecting
                return

    def _collect(self, first: _Job) -> list[_Job]:
        """`first` plus the jobs that arrive within the wait window, up to max_batch requests."""
        batch, size = [first], len(first.requests)
        deadline = time.monotonic() + self.max_wait
        while size < self.max_batch:
            left = deadline - time.monotonic()
            try:
                job = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                batch.append(None)  # type: ignore[arg-type]
                break
            if size + len(job.requests) > self.max_batch:
                self._held = job
                break
            batch.append(job)
            size += len(job.requests)
        return batch

    def _run(self, batch: list[_Job | None]) -> None:
        jobs = [job for job in batch if job is not None]
        try:
            results = self._call([r for job in jobs for r in job.requests])
        except BaseException as exc:  # noqa: BLE001 - handed to the callers, never kills the thread
            if len(jobs) == 1:
                jobs[0].error = exc
                jobs[0].done.set()
                return
            for job in jobs:  # find the culprit: each job alone
                self._run([job])
            return
        lo = 0
        for job in jobs:
            job.results = results[lo: lo + len(job.requests)]
            lo += len(job.requests)
            job.done.set()
        self.stats.jobs += len(jobs)

    def _call(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        results = self.inner.generate(requests)
        if len(results) != len(requests):
            raise RuntimeError(f"engine returned {len(results)} results for {len(requests)} requests")
        stats = self.stats
        stats.engine_calls += 1
        stats.requests += len(requests)
        stats.largest_batch = max(stats.largest_batch, len(requests))
        return results
