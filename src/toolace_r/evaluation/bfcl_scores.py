"""BFCL's leaderboard scores, V4 and V3, with BFCL's own arithmetic, never from a part that is missing.

`leaderboard(scores)` takes {category: (correct, total)} and gives, per version, every named score:
its accuracy when all the categories it needs were scored (else None, with the categories it lacks),
and the overall under the same rule. The formulas are those of BFCL's leaderboard helpers (bfcl-eval's
`eval_checker/eval_runner_helper.py` for V4; the V3 release's for V3; docs/bfcl.md#overall):

V4   simple        = mean(simple_python, simple_java, simple_javascript)
     non_live      = mean(simple, multiple, parallel, parallel_multiple)
     live          = count-weighted mean(live_simple, live_multiple, live_parallel, live_parallel_multiple)
     irrelevance   = mean(irrelevance, live_irrelevance)
     multi_turn    = mean(multi_turn_base, _miss_func, _miss_param, _long_context)
     web_search    = mean(web_search_base, web_search_no_snippet)
     memory        = mean(memory_kv, memory_vector, memory_rec_sum)
     agentic       = mean(web_search, memory)
     overall       = 10 non_live + 10 live + 10 irrelevance + 30 multi_turn + 40 agentic, over 100
V3   non_live      = mean(simple, multiple, parallel, parallel_multiple, irrelevance)
     live          = count-weighted mean(the four live AST categories, live_irrelevance, live_relevance)
     multi_turn    = as in V4
     overall       = mean(live, non_live, multi_turn)

Two differences from BFCL's tables, both on purpose: BFCL counts a category that was not run as 0 (and
prints "N/A" beside it), here a score that lacks a category has no value; and the agentic categories
need a web-search API and memory back-ends that this project does not run, so V4's overall is never
complete here (`NOT_RUN` says why). The sums run in BFCL's order, so a complete score is BFCL's float.
"""
from __future__ import annotations

from typing import Any, Mapping

# name -> (how, parts): parts are categories or earlier names; how is "mean", "weighted" or weights
V4: dict[str, tuple[Any, tuple[str, ...]]] = {
    "simple": ("mean", ("simple_python", "simple_java", "simple_javascript")),
    "non_live": ("mean", ("simple", "multiple", "parallel", "parallel_multiple")),
    "live": ("weighted", ("live_simple", "live_multiple", "live_parallel", "live_parallel_multiple")),
    "irrelevance": ("mean", ("irrelevance", "live_irrelevance")),
    "multi_turn": ("mean", ("multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param",
                            "multi_turn_long_context")),
    "web_search": ("mean", ("web_search_base", "web_search_no_snippet")),
    "memory": ("mean", ("memory_kv", "memory_vector", "memory_rec_sum")),
    "agentic": ("mean", ("web_search", "memory")),
    "overall": ((10, 10, 10, 30, 40), ("non_live", "live", "irrelevance", "multi_turn", "agentic")),
}
V3: dict[str, tuple[Any, tuple[str, ...]]] = {
    "simple": V4["simple"],
    "non_live": ("mean", ("simple", "multiple", "parallel", "parallel_multiple", "irrelevance")),
    "live": ("weighted", ("live_simple", "live_multiple", "live_parallel", "live_parallel_multiple",
                          "live_irrelevance", "live_relevance")),
    "multi_turn": V4["multi_turn"],
    "overall": ("mean", ("live", "non_live", "multi_turn")),
}
VERSIONS = {"v4": V4, "v3": V3}

NOT_RUN = {c: "agentic: needs a web-search API key and BFCL's memory back-ends; toolace-r does not run it"
           for c in ("web_search_base", "web_search_no_snippet", "memory_kv", "memory_vector", "memory_rec_sum")}


def leaderboard(scores: Mapping[str, tuple[int, int]]) -> dict[str, Any]:
    """{"v4": {...}, "v3": {...}}: per version, each score as {"accuracy", "total", "categories",
    "missing"} and "overall" the same; "not_run" names the categories this project never runs."""
    cats = {c: (correct / total, total) for c, (correct, total) in scores.items() if total}
    out: dict[str, Any] = {}
    for version, table in VERSIONS.items():
        done: dict[str, dict[str, Any]] = {}
        for name, (how, parts) in table.items():
            done[name] = _score(how, parts, cats, done)
        missing = done["overall"]["missing"]
        out[version] = {"scores": done, "overall": done["overall"]["accuracy"],
                        "complete": not missing,
                        "not_run": sorted({NOT_RUN[c] for c in missing if c in NOT_RUN})}
    return out


def _score(how: Any, parts: tuple[str, ...], cats: dict[str, tuple[float, int]],
           done: dict[str, dict[str, Any]]) -> dict[str, Any]:
    values, categories, missing = [], [], []
    for part in parts:
        if part in done:
            sub = done[part]
            categories += sub["categories"]
            missing += sub["missing"]
            values.append((sub["accuracy"], sub["total"]))
        elif part in cats:
            categories.append(part)
            values.append(cats[part])
        else:
            missing.append(part)
    accuracy = None if missing else _combine(how, values)
    return {"accuracy": accuracy, "total": sum(t for _, t in values), "categories": categories,
            "missing": missing}


def _combine(how: Any, values: list[tuple[float, int]]) -> float:
    """BFCL's calculate_unweighted_accuracy / calculate_weighted_accuracy /
    calculate_percentage_weighted_accuracy, summed in the same order."""
    if how == "mean":
        total = 0
        for acc, _ in values:
            total += acc
        return total / len(values)
    if how == "weighted":
        total, count = 0, 0
        for acc, n in values:
            count += n
            total += acc * n
        return total / count
    weight_sum = sum(how)
    total = 0.0
    for (acc, _), w in zip(values, [w / weight_sum for w in how]):
        total += acc * w
    return total


def describe(board: dict[str, Any]) -> list[str]:
    """Markdown lines: each version's overall, or what it lacks (the parts it has, named)."""
    lines = []
    for version, res in board.items():
        scores = res["scores"]
        parts = VERSIONS[version]["overall"][1]
        if res["complete"]:
            lines.append(f"- BFCL {version.upper()} overall: **{100 * res['overall']:.2f}**")
            continue
        have = [f"{p} {100 * scores[p]['accuracy']:.2f}" for p in parts if scores[p]["accuracy"] is not None]
        lacking = [p for p in parts if scores[p]["accuracy"] is None]
        lines.append(f"- BFCL {version.upper()} overall: not computed, it lacks "
                     + "; ".join(f"{p} ({', '.join(scores[p]['missing'])})" for p in lacking)
                     + (f". Complete parts: {', '.join(have)}." if have else ". No part is complete."))
        lines += [f"  - {why}" for why in res["not_run"]]
    return lines
