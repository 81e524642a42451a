"""Which examples a run evaluates: a benchmark by name, the first `limit` items per category, and a
digest of the examples so two runs can show they scored the same items.

    examples = benchmark_slice("bfcl", "simple_python,multiple", limit=10)
    examples_digest(examples)  # recorded in each run's config
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import Any, Callable, Sequence


def _bfcl_examples(categories: str, data_dir: str | None, limit: int | None) -> list[Any]:
    from toolace_r.data import load

    source = "bfcl:" + (categories or "all") + (f"@{data_dir}" if data_dir else "")
    return list(load(source, limit=limit))


def _source_examples(prefix: str, what: str) -> Callable[[str, str | None, int | None], list[Any]]:
    """A benchmark whose data the user downloads: its loader, with --data-dir required."""
    def examples(categories: str, data_dir: str | None, limit: int | None) -> list[Any]:
        from toolace_r.data import load

        if not data_dir:
            raise ValueError(f"--benchmark {prefix} needs --data-dir: the folder of your {what} checkout")
        return list(load(f"{prefix}:{categories or 'all'}@{data_dir}", limit=limit))
    return examples


# benchmark name -> loader(categories "a,b,...", data dir or None, limit per load or None); each is
# scored by its own checker (evaluation/benchmarks.py)
BENCHMARKS: dict[str, Callable[[str, str | None, int | None], list[Any]]] = {
    "bfcl": _bfcl_examples,
    "acebench": _source_examples("acebench", "ACEBench (github.com/ACEBench/ACEBench)"),
    "apibank": _source_examples("apibank", "DAMO-ConvAI (its api-bank/ folder)"),
}


def load_benchmark(name: str, categories: str = "", data_dir: str | None = None,
                   limit: int | None = None) -> list[Any]:
    """The examples of a benchmark; an unknown name is a ValueError listing the known ones."""
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r} (known: {', '.join(sorted(BENCHMARKS))})")
    return BENCHMARKS[name](categories, data_dir, limit)


def benchmark_slice(benchmark: str, categories: str, data_dir: str | None = None,
                    limit: int | None = None) -> list[Any]:
    """A benchmark's examples, at most `limit` per category (the first ones, in file order)."""
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 (examples per category), got {limit}")
    examples = load_benchmark(benchmark, categories, data_dir)
    if limit is None:
        return examples
    taken: Counter = Counter()
    out = []
    for ex in examples:
        if taken[ex.category] < limit:
            taken[ex.category] += 1
            out.append(ex)
    return out


def examples_digest(examples: Sequence[Any]) -> str:
    """sha256 of the examples as JSON: two runs on the same inputs show the same digest."""
    h = hashlib.sha256()
    for ex in examples:
        h.update(json.dumps(ex.to_dict(), sort_keys=True, ensure_ascii=False, default=repr).encode("utf-8") + b"\n")
    return h.hexdigest()
