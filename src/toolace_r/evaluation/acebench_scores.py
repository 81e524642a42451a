"""ACEBench's scores from verdicts (docs/acebench.md): accuracy per category (multi-turn categories per
conversation, with its "process accuracy"), the group means, and the summary with ACEBench's weights;
categories not scored count as 0, as ACEBench counts them, and are listed as missing.
"""
from __future__ import annotations

from typing import Any, Mapping

from toolace_r.data.acebench import AGENT_CATEGORIES, NORMAL_CATEGORIES, SPECIAL_CATEGORIES
from toolace_r.evaluation.checker import Verdict

SPECIAL_PREFIX = "special"
MULTI_TURN_PREFIX = "normal_multi_turn"
NORMAL_WEIGHT, SPECIAL_WEIGHT, AGENT_WEIGHT = 0.578, 0.2676, 0.1545
GROUPS = {
    "atom": tuple(c for c in NORMAL_CATEGORIES if c.startswith("normal_atom_")),
    "single_turn": ("normal_single_turn_single_function", "normal_single_turn_parallel_function"),
    "multi_turn": ("normal_multi_turn_user_switch", "normal_multi_turn_user_adjust"),
    "normal_summary": NORMAL_CATEGORIES,
    "special_summary": SPECIAL_CATEGORIES,
    "agent_summary": AGENT_CATEGORIES,
}


def _is_valid(result: Any) -> bool:
    return bool(result.valid if isinstance(result, Verdict) else result)


def _pairs(results: Any) -> list[tuple[str, bool]]:
    items = results.items() if isinstance(results, Mapping) else results
    return [(str(i), _is_valid(r)) for i, r in items]


def category_score(category: str, results: Any) -> dict[str, Any]:
    """ACEBench's score for one category from {id: Verdict|bool} or [(id, Verdict|bool)] in data order.

    Single-turn normal categories: correct/items rounded to 3; special ones unrounded; multi-turn ones
    per conversation (the id's second-to-last field): a conversation counts iff all its turns are right,
    plus ACEBench's "process accuracy" (mean share of right turns)."""
    pairs = _pairs(results)
    correct = sum(v for _, v in pairs)
    out: dict[str, Any] = {"correct": correct, "total": len(pairs)}
    if not pairs:
        out["accuracy"] = 0
        return out
    if category.startswith(MULTI_TURN_PREFIX):
        conversations: dict[str, list[bool]] = {}
        for ex_id, valid in pairs:
            conversations.setdefault(ex_id.split("_")[-2], []).append(valid)
        out["accuracy"] = round(sum(all(v) for v in conversations.values()) / len(conversations), 3)
        out["process_accuracy"] = round(sum(round(sum(v) / len(v), 3) for v in conversations.values())
                                        / len(conversations), 3)
        out["conversations"] = len(conversations)
        out["conversations_correct"] = sum(all(v) for v in conversations.values())
    elif category.startswith(SPECIAL_PREFIX):
        out["accuracy"] = correct / len(pairs)
    else:
        out["accuracy"] = round(correct / len(pairs), 3)
    return out


def aggregate(results_by_category: Mapping[str, Any]) -> dict[str, Any]:
    """ACEBench's category accuracies, group means and summary from verdicts per category.

    Categories not given count as 0, as in ACEBench's leaderboard; `present` and `missing` say which
    were given, and the agent part (never scored here) is always missing, so `summary` is at most
    0.578 + 0.2676 = 0.8456."""
    categories = {c: category_score(c, r) for c, r in results_by_category.items()}
    unknown = sorted(set(categories) - set(NORMAL_CATEGORIES) - set(SPECIAL_CATEGORIES) - set(AGENT_CATEGORIES))
    if unknown:
        raise ValueError(f"unknown ACEBench categories: {', '.join(unknown)}")

    def acc(c: str) -> float:
        return categories[c]["accuracy"] if c in categories else 0

    groups = {g: round(sum(acc(c) for c in cats) / len(cats), 3) for g, cats in GROUPS.items()}
    summary = round(groups["special_summary"] * SPECIAL_WEIGHT + groups["normal_summary"] * NORMAL_WEIGHT
                    + groups["agent_summary"] * AGENT_WEIGHT, 3)
    parts = {"normal": NORMAL_CATEGORIES, "special": SPECIAL_CATEGORIES, "agent": AGENT_CATEGORIES}
    return {
        "categories": categories,
        "groups": groups,
        "summary": summary,
        "weights": {"normal": NORMAL_WEIGHT, "special": SPECIAL_WEIGHT, "agent": AGENT_WEIGHT},
        "present": {p: [c for c in cats if c in categories] for p, cats in parts.items()},
        "missing": {p: [c for c in cats if c not in categories] for p, cats in parts.items()},
        "note": "missing categories count as 0 (ACEBench's rule); the agent part is not scored here",
    }
