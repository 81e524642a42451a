"""Which items an iteration trains on: selection policies by name, per-group quotas, and the warm-up.

Policies (docs/method.md#selection), each `policy(records, ever_solved, cfg) -> set of ids`:
- `grow`: every item solved at least once so far (s > 0 now or in an earlier iteration); the set only grows.
- `window`: lo < s < hi, plus a replay share of mastered items (s >= hi).
- `all`: every item (plain SFT: the control).
Quotas then top up any category group below its least share, so parallel and no-call items are never
starved. The warm-up adds items for a model that solves nothing yet (`warmup.when` says in which iterations).
"""
from __future__ import annotations

import math
import random
from typing import Any, Callable, Sequence

from .config import SelectionConfig, WarmupConfig

GROUPS = ("parallel", "multiple", "irrelevance", "simple")

Policy = Callable[[Sequence[dict[str, Any]], set, SelectionConfig], set]
POLICIES: dict[str, Policy] = {}


def register_policy(name: str) -> Callable[[Policy], Policy]:
    def add(fn: Policy) -> Policy:
        POLICIES[name] = fn
        return fn
    return add


def get_policy(name: str) -> Policy:
    try:
        return POLICIES[name]
    except KeyError:
        raise KeyError(f"unknown selection policy {name!r}; known: {', '.join(sorted(POLICIES))}") from None


def category_group(category: str) -> str:
    """The quota group of a category name (BFCL's names and `data.call_shape`'s)."""
    c = category.lower()
    if "irrelevance" in c or "no_call" in c:
        return "irrelevance"
    if "parallel" in c:
        return "parallel"
    if "multiple" in c:
        return "multiple"
    return "simple"


@register_policy("grow")
def _grow(records, ever_solved, cfg):
    return set(ever_solved) | {r["id"] for r in records if r["solve_rate"] > 0}


@register_policy("window")
def _window(records, ever_solved, cfg):
    inside = sorted(r["id"] for r in records if cfg.lo < r["solve_rate"] < cfg.hi)
    mastered = sorted(r["id"] for r in records if r["solve_rate"] >= cfg.hi)
    n_replay = min(len(mastered), math.ceil(cfg.replay_share * len(inside)))
    return set(inside) | set(random.Random(cfg.seed).sample(mastered, n_replay))


@register_policy("all")
def _all(records, ever_solved, cfg):
    return {r["id"] for r in records}


def _closest_to_solvable(r: dict[str, Any]) -> tuple:
    # Highest solve rate first, then the lowest gold NLL (the model's own sense of "nearly there").
    nll = r.get("gold_nll")
    return (-r["solve_rate"], nll if nll is not None else math.inf, r["id"])


def apply_quotas(records: Sequence[dict[str, Any]], chosen: set, quotas: dict[str, float]) -> dict[str, list[str]]:
    """Add items to `chosen` (in place) until each group has its least share; returns what was added."""
    unknown = sorted(set(quotas) - set(GROUPS))
    if unknown:
        raise KeyError(f"unknown quota group(s) {unknown}; known: {', '.join(GROUPS)}")
    added: dict[str, list[str]] = {}
    if not chosen:
        return added  # a share of nothing is nothing: quotas never create a selection on their own
    by_group: dict[str, list[dict[str, Any]]] = {g: [] for g in GROUPS}
    for r in records:
        by_group[category_group(r.get("category", ""))].append(r)
    total = len(chosen)
    for group in GROUPS:
        share = quotas.get(group, 0.0)
        have = sum(1 for r in by_group[group] if r["id"] in chosen)
        need = math.ceil(share * total) - have
        if need <= 0:
            continue
        pool = sorted((r for r in by_group[group] if r["id"] not in chosen), key=_closest_to_solvable)
        extra = [r["id"] for r in pool[:need]]
        chosen.update(extra)
        if extra:
            added[group] = extra
    return added


def warmup_ids(records: Sequence[dict[str, Any]], cfg: WarmupConfig,
               quotas: dict[str, float] | None = None, exclude: set | frozenset = frozenset()) -> list[str]:
    """The warm-up items: the `size` with the lowest NLL, a seeded random draw of it, or none.

    With `quotas`, each group first gets its least share of the warm-up (its own best-ranked items),
    then the rest is filled by rank over all items: ranking by NLL alone favours whatever shape the
    model already finds likely (long parallel calls, in practice) and can leave a group out entirely.
    Items in `exclude` (already selected) are passed over; the size still counts all `records`.
    """
    if cfg.policy == "none":
        return []
    n = cfg.count(len(records))
    if cfg.policy == "nll":
        missing = [r["id"] for r in records if r.get("gold_nll") is None]
        if missing:
            raise ValueError("warm-up policy 'nll' needs gold NLLs (sampling.gold_nll=true); "
                             f"missing for {missing[:3]}")
        ranked = sorted(records, key=lambda r: (r["gold_nll"], r["id"]))
    elif cfg.policy == "seed":
        order = sorted(r["id"] for r in records)
        random.Random(cfg.seed).shuffle(order)
        by_id = {r["id"]: r for r in records}
        ranked = [by_id[i] for i in order]
    else:
        raise KeyError(f"unknown warm-up policy {cfg.policy!r}; known: nll, seed, none")
    ranked = [r for r in ranked if r["id"] not in exclude]
    chosen: list[str] = []
    for group in GROUPS:
        share = (quotas or {}).get(group, 0.0)
        if share <= 0:
            continue
        members = [r["id"] for r in ranked if category_group(r.get("category", "")) == group]
        chosen += members[:min(math.ceil(share * n), n - len(chosen))]
    taken = set(chosen)
    chosen += [r["id"] for r in ranked if r["id"] not in taken][:n - len(chosen)]
    order = {r["id"]: i for i, r in enumerate(records)}
    return sorted(chosen, key=order.__getitem__)


def select(records: Sequence[dict[str, Any]], cfg: SelectionConfig, ever_solved: set,
           previous: Sequence[str] | None, iteration: int) -> dict[str, Any]:
    """The selection of one iteration, as written to selection.json.

    `selected` is the policy's choice with quotas; `train_ids` adds the warm-up (iteration 0, and later
    ones as `warmup.when` says);
    `growth` counts selected items that were not selected in the previous iteration.
    """
    policy = get_policy(cfg.policy)
    core = policy(records, ever_solved, cfg)
    chosen = set(core)
    quota_added = apply_quotas(records, chosen, cfg.quotas)
    warms = cfg.warmup.warms(iteration, bool(chosen))
    warm = warmup_ids(records, cfg.warmup, cfg.quotas if cfg.warmup.stratify else None,
                      exclude=chosen if cfg.warmup.beside_selection else frozenset()) if warms else []
    train = set(chosen) | set(warm)
    prev = set(previous or [])
    order = [r["id"] for r in records]  # data order keeps the files stable and diffable
    by_group = {g: 0 for g in GROUPS}
    for r in records:
        if r["id"] in train:
            by_group[category_group(r.get("category", ""))] += 1
    return {
        "iteration": iteration,
        "policy": cfg.policy,
        "selected": [i for i in order if i in chosen],
        "quota_added": quota_added,
        "warmup": [i for i in order if i in set(warm)],
        "warmup_policy": cfg.warmup.policy if warms else None,
        "train_ids": [i for i in order if i in train],
        "train_by_group": by_group,
        "growth": len(chosen - prev),
        "ever_solved": sorted(set(ever_solved) | {r["id"] for r in records if r["solve_rate"] > 0}),
    }
