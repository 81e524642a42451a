"""Every stop policy of one model from one shared run: `refine_grid` (docs/method.md#grid).

Scoring a model under none, adaptive, checked, fixed:1..3 and vote:N runs round 0, the same greedy
computation, once per policy when each policy runs alone. `refine_grid` gives the results of those
separate runs (answers, parsed calls, stop reasons, every round's tokens) from less work:

- round 0 runs once (every config must agree on its prompt, sampling, parse format and chunk size);
- policies whose refine prompts do not depend on the policy (no check, no feedback, no votes: none,
  fixed:N, adaptive, adaptive:exact) with the same guard and refine sampling are read off ONE chain,
  fixed:D with D the deepest round any of them may reach: greedy decoding makes each one's rounds a
  prefix of the chain's, so its trace is the chain's rounds replayed through its own stop test and cap
  (and the loop's context stop, which depends only on the rounds before);
- the others (checked, vote:N, any policy with feedback or samples) run from the shared round 0.

Token accounting equals that of separate runs on fresh engines: each branch (the chain, each other
policy) runs on its own fork of the engine's prefix cache, which holds round 0's entries (of this chunk
and earlier ones) and nothing of another branch, so round r of a branch finds in the cache only round 0
and its own earlier rounds, as a separate run does. Work goes chunk by chunk (`RefineConfig.chunk_size`),
like the loop, so a chunk's KV stays in the bounded cache. Engines without a prefix cache just run; an
engine whose cache the grid cannot fork (vLLM's own prefix caching, a server's) reports its cached tokens
as it sees them, which may count more reuse than separate runs would (the answers are the same).
Where a separate run would see more (the same item twice, in two chunks) or its cache would evict
other entries than the grid's, the cached/prompt split can differ; answers cannot.

Wall time cannot be split between policies that read the same work: each result's `round_seconds` are
the seconds of the shared work it reads (round 0 for every policy; a chain policy's refinement rounds
are the chain's, which ran every item the chain kept, so an upper bound of its own), and its `seconds`
their sum. The grid's own wall seconds are `GridResult.seconds`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import Any, Iterator, Mapping, Sequence

from toolace_r.engines.base import Engine
from toolace_r.progress import progress_bar
from toolace_r.refine.config import RefineConfig
from toolace_r.refine.loop import _Loop, as_conversation
from toolace_r.refine.policies import StopPolicy
from toolace_r.refine.traces import RefineResult, Trace


class GridResult(dict):
    """policy name -> `RefineResult`, in the order of the configs; `seconds`: the grid's wall seconds,
    `round0_seconds`: those of the shared round 0."""

    def __init__(self, results: Mapping[str, RefineResult], seconds: float = 0.0, round0_seconds: float = 0.0):
        super().__init__(results)
        self.seconds = seconds
        self.round0_seconds = round0_seconds


def reads_chain(policy: StopPolicy) -> bool:
    """Whether a policy's refine prompts are the same whatever the policy (no check findings, no
    feedback, no votes): its trace can then be read off a shared fixed:D chain."""
    return (not policy.check and not policy.feedback and policy.votes <= 1
            and type(policy).notes is StopPolicy.notes)


def refine_grid(items: Sequence[Any], engine: Engine, configs: Mapping[str, RefineConfig], tokenizer: Any = None,
                progress: bool = False) -> GridResult:
    """The result of `refine(items, fresh engine, cfg)` for each named config, from one shared run (see the
    module docstring). ValueError when the configs disagree on round 0 (prompt, round0 sampling, parse
    format, chunk size): then they share nothing and should run separately."""
    cfgs = dict(configs)
    if not cfgs:
        return GridResult({})
    first = next(iter(cfgs.values()))
    for name, c in cfgs.items():
        for f in ("round0", "prompt", "parse_format", "chunk_size"):
            if getattr(c, f) != getattr(first, f):
                raise ValueError(f"refine_grid: config {name!r} has another {f} than {next(iter(cfgs))!r}; "
                                 "configs share round 0 only when its prompt, sampling, parse format and chunk "
                                 "size agree (run them separately)")
    tok = tokenizer if tokenizer is not None else engine.tokenizer
    convs = [as_conversation(item, i) for i, item in enumerate(items)]
    loops = {name: _Loop(engine, c, tok) for name, c in cfgs.items()}
    round0 = _Loop(engine, dataclasses.replace(first, policy="none"), tok)

    # chain policies grouped by what their refine prompts and rounds depend on besides the answers
    groups: dict[tuple, list[str]] = {}
    branches: list[str] = []
    for name, c in cfgs.items():
        if reads_chain(loops[name].policy):
            groups.setdefault((c.guard, c.refine), []).append(name)
        else:
            branches.append(name)
    chains: dict[tuple, _Loop | None] = {}
    for key, names in groups.items():
        depth = max(loops[n].cap for n in names)
        c = cfgs[names[0]]
        chains[key] = _Loop(engine, dataclasses.replace(c, policy=f"fixed:{depth}", max_rounds=depth), tok) \
            if depth > 0 else None

    owner = _cache_owner(engine)
    traces: dict[str, list[Trace]] = {name: [] for name in cfgs}
    bar = progress_bar(progress, len(convs), f"refine grid ({len(cfgs)} policies)")
    start = time.perf_counter()
    try:
        for lo in range(0, len(convs), first.chunk_size):
            chunk = convs[lo: lo + first.chunk_size]
            # round 0 on the engine's own cache: it holds round-0 entries only, for every branch to fork
            shared = [t.rounds[0] for t in round0.run_chunk(chunk, None, None, offset=lo)]
            for key, names in groups.items():
                chain_loop = chains[key]
                if chain_loop is None:
                    chain = [Trace(c.id, [dataclasses.replace(r)], "single_pass") for c, r in zip(chunk, shared)]
                else:
                    with _branch(owner):
                        chain = chain_loop.run_chunk(chunk, shared, None, offset=lo)
                for name in names:
                    traces[name] += [_replay(loops[name], t) for t in chain]
            for name in branches:
                with _branch(owner):
                    traces[name] += loops[name].run_chunk(chunk, shared, None, offset=lo)
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    total = time.perf_counter() - start
    r0_seconds = round0.round_seconds[0] if round0.round_seconds else 0.0
    out: dict[str, RefineResult] = {}
    for name, c in cfgs.items():
        loop = loops[name]
        if name in branches:
            source = loop.round_seconds
        else:
            key = (c.guard, c.refine)
            source = chains[key].round_seconds if chains[key] is not None else []
        deepest = max((len(t.rounds) for t in traces[name]), default=1)
        seconds = [r0_seconds] + [source[r] if r < len(source) else 0.0 for r in range(1, deepest)]
        out[name] = RefineResult(traces[name], c, seconds, sum(seconds), loop.fmt.name, loop.parse_format)
    return GridResult(out, total, r0_seconds)


def _replay(loop: _Loop, chain: Trace) -> Trace:
    """A chain policy's trace: the chain's rounds, stopped where this policy's loop would stop them."""
    rounds = []
    for r, rnd in enumerate(chain.rounds):
        rounds.append(dataclasses.replace(rnd))
        reason = loop._stop_reason(rounds, r)
        if reason is not None:
            return Trace(chain.id, rounds, reason)
    # The chain goes at least as deep as this policy's cap; it stopped earlier only because the next
    # prompt would not fit, and that prompt is this policy's next prompt too.
    if chain.stop_reason != "context":
        raise RuntimeError(f"refine_grid: the chain of item {chain.id} stopped ({chain.stop_reason}) before "
                           f"policy {loop.policy.name} did")
    return Trace(chain.id, rounds, "context")


def _cache_owner(engine: Any) -> Any:
    """The engine (itself or one it wraps) whose `prefix_cache` generation uses, or None."""
    seen = 0
    while engine is not None and seen < 8:
        if getattr(engine, "prefix_cache", None) is not None:
            return engine
        engine, seen = getattr(engine, "inner", None), seen + 1
    return None


@contextlib.contextmanager
def _branch(owner: Any) -> Iterator[None]:
    """Run the block on a fork of the owner's prefix cache, then put the round-0 cache back."""
    if owner is None:
        yield
        return
    base = owner.prefix_cache
    owner.prefix_cache = base.fork()
    try:
        yield
    finally:
        owner.prefix_cache = base
