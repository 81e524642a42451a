"""Selection policies, quotas and the warm-up (pure functions over sample records)."""
from __future__ import annotations

import pytest

from toolace_r.training.config import SelectionConfig, WarmupConfig
from toolace_r.training.selection import POLICIES, apply_quotas, category_group, get_policy, select, warmup_ids


def rec(i, s, cat="live_simple", nll=None):
    return {"id": i, "category": cat, "solve_rate": s, "samples": [], "gold_nll": nll}


def cfg(**kw):
    kw.setdefault("quotas", {})
    kw.setdefault("warmup", WarmupConfig(policy="none"))
    return SelectionConfig(**kw)


def test_registry_lists_known_keys_on_unknown():
    assert {"grow", "window", "all"} <= set(POLICIES)
    with pytest.raises(KeyError, match="grow"):
        get_policy("nope")


def test_category_groups():
    assert category_group("live_parallel_multiple") == "parallel"
    assert category_group("exec_multiple") == "multiple"
    assert category_group("live_irrelevance") == "irrelevance"
    assert category_group("jsonl_irrelevance") == "irrelevance"
    assert category_group("simple_python") == "simple"


def test_grow_keeps_everything_ever_solved():
    it0 = select([rec("a", 0.5), rec("b", 0.0), rec("c", 0.0)], cfg(), set(), None, 0)
    assert it0["selected"] == ["a"]
    # a is no longer solved but stays; c is new
    it1 = select([rec("a", 0.0), rec("b", 0.0), rec("c", 0.25)], cfg(), set(it0["ever_solved"]),
                 it0["selected"], 1)
    assert it1["selected"] == ["a", "c"] and it1["growth"] == 1
    it2 = select([rec("a", 0.0), rec("b", 0.0), rec("c", 0.0)], cfg(), set(it1["ever_solved"]),
                 it1["selected"], 2)
    assert it2["selected"] == ["a", "c"] and it2["growth"] == 0


def test_window_drops_mastered_and_unreachable_with_replay():
    records = [rec("u", 0.0), rec("m1", 1.0), rec("m2", 1.0), rec("w1", 0.5), rec("w2", 0.25)]
    none = select(records, cfg(policy="window", replay_share=0.0), set(), None, 1)
    assert none["selected"] == ["w1", "w2"]
    some = select(records, cfg(policy="window", replay_share=0.5), set(), None, 1)
    assert set(some["selected"]) - {"w1", "w2"} <= {"m1", "m2"} and len(some["selected"]) == 3


def test_all_selects_everything():
    records = [rec("a", 0.0), rec("b", 1.0)]
    assert select(records, cfg(policy="all"), set(), None, 0)["selected"] == ["a", "b"]


def test_quotas_top_up_starved_groups_closest_first():
    records = [rec(f"s{i}", 0.5) for i in range(8)] + [
        rec("p_far", 0.0, "live_parallel", nll=3.0), rec("p_near", 0.0, "live_parallel", nll=1.0),
        rec("i1", 0.0, "irrelevance", nll=2.0)]
    chosen = {r["id"] for r in records if r["solve_rate"] > 0}
    added = apply_quotas(records, chosen, {"parallel": 0.1, "irrelevance": 0.1, "multiple": 0.1})
    assert added == {"parallel": ["p_near"], "irrelevance": ["i1"]}  # ceil(0.1*8)=1 each; no multiple exists
    assert "p_far" not in chosen
    assert apply_quotas(records, set(), {"parallel": 0.5}) == {}  # quotas never create a selection


def test_warmup_nll_takes_lowest_and_seed_is_reproducible():
    records = [rec("a", 0, nll=2.0), rec("b", 0, nll=0.5), rec("c", 0, nll=1.0), rec("d", 0, nll=9.0)]
    assert warmup_ids(records, WarmupConfig(policy="nll", size=0.5)) == ["b", "c"]
    assert warmup_ids(records, WarmupConfig(policy="nll", size=1)) == ["b"]
    s1 = warmup_ids(records, WarmupConfig(policy="seed", size=0.5, seed=3))
    assert s1 == warmup_ids(records, WarmupConfig(policy="seed", size=0.5, seed=3)) and len(s1) == 2
    assert warmup_ids(records, WarmupConfig(policy="none")) == []
    with pytest.raises(ValueError, match="gold NLL"):
        warmup_ids([rec("x", 0)], WarmupConfig(policy="nll"))


def test_warmup_stratified_by_quotas_keeps_every_group():
    # NLL alone would take the four parallel items; quotas reserve each group its share first.
    records = [rec(f"p{i}", 0, "live_parallel", nll=0.1 * i) for i in range(4)]
    records += [rec("m0", 0, "live_multiple", nll=3.0), rec("m1", 0, "live_multiple", nll=2.5),
                rec("i0", 0, "live_irrelevance", nll=5.0), rec("s0", 0, "live_simple", nll=4.0)]
    plain = warmup_ids(records, WarmupConfig(policy="nll", size=4))
    assert plain == ["p0", "p1", "p2", "p3"]
    quotas = {"parallel": 0.25, "multiple": 0.25, "irrelevance": 0.25, "simple": 0.25}
    strat = warmup_ids(records, WarmupConfig(policy="nll", size=4), quotas)
    assert strat == ["p0", "m1", "i0", "s0"]  # each group's lowest-NLL item, in data order
    half = warmup_ids(records, WarmupConfig(policy="nll", size=4), {"irrelevance": 0.25})
    assert half == ["p0", "p1", "p2", "i0"]  # the rest filled by overall rank
    # select() applies them unless warmup.stratify is off
    on = select(records, SelectionConfig(quotas=quotas, warmup=WarmupConfig(policy="nll", size=4)), set(), None, 0)
    off = select(records, SelectionConfig(quotas=quotas, warmup=WarmupConfig(policy="nll", size=4, stratify=False)),
                 set(), None, 0)
    assert on["warmup"] == strat and off["warmup"] == plain


def test_warmup_only_on_iteration_zero_and_recorded():
    records = [rec("a", 0, nll=1.0), rec("b", 0, nll=2.0)]
    c = cfg(warmup=WarmupConfig(policy="nll", size=1))
    it0 = select(records, c, set(), None, 0)
    assert it0["selected"] == [] and it0["warmup"] == ["a"] and it0["train_ids"] == ["a"]
    assert it0["warmup_policy"] == "nll"
    it1 = select(records, c, set(), [], 1)
    assert it1["warmup"] == [] and it1["train_ids"] == []


def test_warmup_while_nothing_selected_repeats_only_while_nothing_is_selected():
    records = [rec("a", 0, nll=1.0), rec("b", 0, nll=2.0)]
    c = cfg(warmup=WarmupConfig(policy="nll", size=1, when="while_nothing_selected:3"))
    assert select(records, c, set(), [], 1)["warmup"] == ["a"]
    assert select(records, c, set(), [], 3)["warmup"] == []  # past N
    solved = [rec("a", 0, nll=1.0), rec("b", 0.5, nll=2.0)]
    assert select(solved, c, set(), [], 1)["warmup"] == []  # something is selected: no warm-up


def test_warmup_every_iteration_below_n_adds_unselected_items():
    records = [rec("a", 0.5, nll=3.0), rec("b", 0, nll=0.5), rec("c", 0, nll=1.0), rec("d", 0, nll=9.0)]
    warm = WarmupConfig(policy="nll", size=2, when="while_nothing_selected:2")
    only_when_empty = select(records, cfg(warmup=warm), set(), ["a"], 1)
    assert only_when_empty["selected"] == ["a"] and only_when_empty["warmup"] == []
    warm.when = "every_iteration_below:2"
    both = select(records, cfg(warmup=warm), set(), ["a"], 1)
    assert both["selected"] == ["a"] and both["warmup"] == ["b", "c"] and both["train_ids"] == ["a", "b", "c"]
    assert both["growth"] == 0  # warm-up items never count as growth
    assert select(records, cfg(warmup=warm), set(), ["a"], 2)["warmup"] == []  # past N
    # the selected item is passed over, not counted in the warm-up
    assert select([rec("b", 1.0, nll=0.1), *records[1:]], cfg(warmup=warm), set(), None, 1)["warmup"] == ["c", "d"]


def test_warmup_unknown_when_or_size_is_an_error():
    for when in ("always", "first:2", "every_iteration_below:0", "while_nothing_selected"):
        with pytest.raises(ValueError, match="warmup.when"):
            WarmupConfig(when=when)
    with pytest.raises(ValueError, match="warmup.size"):
        WarmupConfig(size=1.5)
    assert WarmupConfig(size=1).count(10) == 1 and WarmupConfig(size=1.0).count(10) == 10


# A reference rule for each shipped config's warm-up, as (share, rounds, always): iteration 0, or
# iterations below `rounds` while nothing is selected (or always, with `always`, passing over the
# selected items). The config's `size` and `when` must pick exactly these items.
OLD_WARMUP = {"demo.yaml": (0.1, 2, True), "demo_quick.yaml": (0.5, 2, True),
              "train_smollm2_quick.yaml": (0.5, 2, False), "recipes/llama31_8b_toolace.yaml": (0.25, 1, False),
              "recipes/qwen25_7b_toolace.yaml": (0.25, 1, False)}


@pytest.mark.parametrize("name", sorted(OLD_WARMUP))
def test_shipped_configs_warm_up_as_before(name):
    import dataclasses
    import random
    from pathlib import Path

    from toolace_r.config import load_config
    from toolace_r.pipeline.config import PipelineConfig
    from toolace_r.training.config import TrainConfig

    path = Path(__file__).resolve().parents[1] / "configs" / name
    sel = (load_config(PipelineConfig, path).training if name.startswith("demo") else
           load_config(TrainConfig, path)).selection
    share, rounds, always = OLD_WARMUP[name]
    rng = random.Random(0)
    cats = ["live_simple", "live_multiple", "live_parallel", "live_irrelevance", "exec_parallel_multiple"]
    for trial in range(20):
        solving = trial % 3  # 0: nothing solved, then some items solved
        records = [rec(f"i{j:02d}", rng.choice([0.0, 0.0, 0.5, 1.0]) if solving else 0.0, rng.choice(cats),
                       nll=rng.random()) for j in range(23)]
        for iteration in range(4):
            got = select(records, sel, set(), None, iteration)
            chosen = set(got["selected"])
            warms = iteration == 0 or (iteration < rounds and (not chosen or always))
            old = dataclasses.replace(sel.warmup, size=share, when="first")
            want = warmup_ids(records, old, sel.quotas if sel.warmup.stratify else None,
                              exclude=chosen if always else frozenset()) if warms else []
            assert got["warmup"] == want, (name, trial, iteration)
