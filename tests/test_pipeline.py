"""The end-to-end pipeline (`toolace-r demo`): arms, the token-matched control, the grid of refinement
policies, the report's figures and verdicts, resuming, and identical reruns.

Training (corpus, SFT, merge) runs for real on the tiny random model; evaluation answers come from a
scripted engine so that fixes and breaks are known in advance, plus one run with the real hf engine.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from test_training_loop import ITEMS, scripted_factory, write_data
from toolace_r.config import load_config
from toolace_r.engines import Engine, GenerationResult
from toolace_r.engines.base import Completion
from toolace_r.data.select import benchmark_slice
from toolace_r.pipeline import PipelineConfig, run_pipeline
from toolace_r.pipeline.control import control_corpus
from toolace_r.training.sft import row_tokens
from toolace_r.training.difficulty import gold_target

CATS = "simple_python,multiple,irrelevance"
HELD_OUT = benchmark_slice("bfcl", CATS, limit=1)
GOLD = {ex.id: gold_target(ex, "No function fits.") for ex in HELD_OUT}


def _item(question: str) -> str:
    hits = [ex.id for ex in HELD_OUT if ex.messages[-1]["content"] == question]
    assert len(hits) == 1, question
    return hits[0]


class EvalEngine(Engine):
    """Answers by arm, item and round (round = answers already in the prompt).

    trained (toolace_r): simple_python wrong then fixed; multiple right and kept; irrelevance prose.
    control: simple_python stays wrong; multiple right, then broken by refinement; irrelevance prose.
    base: prose everywhere.
    """

    calls = 0

    def __init__(self, arm: str):
        self.arm = arm

    def answer(self, item: str, rnd: int) -> str:
        if self.arm == "base" or item.startswith("irrelevance"):
            return "I cannot help with that."
        if item.startswith("simple"):
            return GOLD[item] if self.arm == "toolace_r" and rnd >= 1 else "[wrong_tool(x=1)]"
        return "[wrong_tool(y=2)]" if self.arm == "control" and rnd >= 1 else GOLD[item]

    def generate(self, requests, progress=False):
        EvalEngine.calls += len(requests)
        out = []
        for req in requests:  # no tokenizer: refine sends the conversation as chat messages
            rnd = sum(m["role"] == "assistant" for m in req.messages)
            question = next(m["content"] for m in req.messages if m["role"] == "user")
            text = self.answer(_item(question), rnd)
            out.append(GenerationResult([Completion(text, [], "stop", prompt_tokens=100, completion_tokens=10)]))
        return out


def eval_factory(model_dir: str) -> Engine:
    p = Path(model_dir)
    arm = "control" if p.parent.name == "control" else "toolace_r" if p.parent.name.startswith("iter_") else "base"
    return EvalEngine(arm)


def make_cfg(tiny_model_dir, data, *extra):
    return load_config(PipelineConfig, None, overrides(tiny_model_dir, data, *extra))


def overrides(tiny_model_dir, data, *extra):
    return [
        f"model={tiny_model_dir}", "progress=false",
        f"training.data.train=jsonl:{data}", "training.prompt.system_prompt=Call tools.",
        "training.sampling.k=2", "training.sampling.max_new_tokens=8", "training.sampling.nll_batch_size=4",
        "training.sampling.engine_options={dtype: float32, device: cpu, batch_size: 8}",
        "training.selection.quotas={}", "training.selection.warmup.policy=nll", "training.selection.warmup.size=1",
        "training.sft.max_steps=1", "training.sft.batch_size=4", "training.sft.lora_r=4", "training.sft.lora_alpha=8",
        "training.sft.warmup=0", "training.sft.save_steps=1", "training.sft.num_threads=2",
        "training.loop.progress=false", "training.loop.max_iterations=2", "training.loop.eval_base=false",
        f"eval.categories={CATS}", "eval.limit=1", "eval.max_new_tokens=8",
        "eval.engine_options={dtype: float32, device: cpu, batch_size: 8}", *extra]


@pytest.fixture
def data(tmp_path):
    return write_data(tmp_path / "train.jsonl")


def test_pipeline_arms_grid_verdicts_and_resume(tiny_model_dir, data, tmp_path):
    out = tmp_path / "demo"
    policies = "eval.policies=[adaptive, checked, 'fixed:3']"
    cfg = make_cfg(tiny_model_dir, data, policies)
    report = run_pipeline(cfg, out, echo=lambda s: None, engine_factory=eval_factory,
                          train_engine_factory=scripted_factory())
    grid = report["grid"]
    assert list(grid) == ["base", "toolace_r@0", "toolace_r@1", "control"]
    assert list(grid["base"]) == ["none", "adaptive"]
    assert list(grid["toolace_r@0"]) == ["none", "adaptive"]  # an earlier iteration: iteration_policies
    assert list(grid["toolace_r@1"]) == list(grid["control"]) == ["none", "adaptive", "checked", "fixed:3"]

    base, tr, control = grid["base"], grid["toolace_r@1"], grid["control"]
    assert base["none"]["accuracy"] == pytest.approx(1 / 3)  # prose is right only for irrelevance
    assert tr["none"]["accuracy"] == pytest.approx(2 / 3) and tr["adaptive"]["accuracy"] == 1.0
    assert (tr["adaptive"]["fixes"], tr["adaptive"]["breaks"]) == (1, 0)
    assert tr["fixed:3"]["accuracy_by_round"] == pytest.approx([2 / 3, 1, 1, 1])
    assert control["adaptive"]["accuracy"] == pytest.approx(1 / 3)
    assert (control["adaptive"]["fixes"], control["adaptive"]["breaks"]) == (0, 1)
    assert tr["none"]["by_category"] == {"irrelevance": 1.0, "multiple": 1.0, "simple_python": 0.0}
    # adaptive: round 0, the fix in round 1, the repeat in round 2 for simple; 2 rounds for the others
    assert tr["adaptive"]["average_refinements"] == pytest.approx((2 + 1 + 1) / 3)
    assert tr["adaptive"]["compute_ratio"] == pytest.approx((3 + 2 + 2) / 3)

    v = report["verdicts"]
    # ahead by one item of 3: not a significant difference, so neither a win nor a net gain
    assert v["toolace_r_vs_control"]["ahead"] is True and v["toolace_r_vs_control"]["beats"] is False
    assert v["toolace_r_vs_control"]["toolace_r"]["policy"] == "adaptive"
    paired = v["toolace_r_vs_control"]["paired"]
    assert (paired["wins"], paired["losses"], paired["p_value"]) == (1, 0, 1.0)
    assert paired["verdict"] == "no detectable difference" and paired in report["paired_tests"]
    assert v["refinement"]["adaptive"]["net"] == 1 and v["refinement"]["adaptive"]["net_gain"] is False
    assert v["refinement"]["adaptive"]["within_cost"] is False  # 2.33x > 1.5x: stated, not hidden
    # checked refines only the answer that calls an unknown tool: the fix stays, the control's right
    # answer is never put up for refinement (no break), and only one item pays for a second round
    assert (tr["checked"]["fixes"], tr["checked"]["breaks"]) == (1, 0)
    assert (control["checked"]["fixes"], control["checked"]["breaks"]) == (0, 0)
    assert tr["checked"]["compute_ratio"] == pytest.approx((2 + 1 + 1) / 3)
    assert v["refinement"]["checked"]["net"] == 1 and v["refinement"]["checked"]["within_cost"] is True
    md = (out / "report.md").read_text()
    assert "Schema-checked adaptive refinement (ours" in md and "Adaptive refinement (the paper's" in md
    assert report["transitions"]["control, adaptive"]["broke"][0]["after"] == "[wrong_tool(y=2)]"

    # the control trained on as many tokens as the ToolACE-R run, from the same pool
    stages = json.loads((out / "stages.json").read_text())
    target = stages["toolace_r"]["train_tokens"]
    info = json.loads((out / "control" / "control.json").read_text())
    assert info["target"] == target > 0
    longest = max(row_tokens(_tok(tiny_model_dir), r) for r in _rows(out / "control" / "corpus.jsonl"))
    assert abs(info["train_tokens"] - target) <= longest / 2 + 1
    assert {r["kind"] for r in _rows(out / "control" / "corpus.jsonl")} == {"sft"}

    md = (out / "report.md").read_text()
    assert "| toolace_r@1 | adaptive |" in md and "**no detectable difference from the control**" in md
    assert "**no detectable difference from the single pass**" in md and "| ToolACE-R vs control |" in md
    assert f"Training pool (`training.data.train`): no BFCL category; also `jsonl:{data}`." in md
    assert report["pool"]["overlap"] == [] and report["pool"]["held_out_categories"] == CATS.split(",")
    assert (out / "report.png").stat().st_size > 1000
    assert (out / "eval" / "control" / "fixed_3" / "traces.jsonl").exists()
    # one shared run per arm: none gets its own directory, every policy its stages.json entry
    assert (out / "eval" / "control" / "none" / "metrics.json").exists()
    shared = json.loads((out / "eval" / "control" / "grid.json").read_text())
    assert shared["policies"] == ["none", "adaptive", "checked", "fixed:3"]
    for p in ("none", "adaptive", "checked", "fixed_3"):
        entry = stages[f"eval/control/{p}"]
        assert entry["shared"] == "eval/control/grid.json" and entry["seconds"] == round(shared["seconds"], 2)
    assert stages["eval/control/none"]["accuracy"] == control["none"]["accuracy"]
    assert stages["eval/control/fixed_3"]["compute_tokens"] > stages["eval/control/none"]["compute_tokens"]
    # the final model's card carries the arms' held-out scores from this report
    card = (out / "toolace_r" / "iter_1" / "model" / "README.md").read_text()
    assert "This is the run's final model." in card
    assert f"| toolace_r@1 | refine adaptive | {tr['adaptive']['accuracy']:.3f} | 3 |" in card
    assert f"| control | single pass | {control['none']['accuracy']:.3f} | 3 |" in card
    assert "control (plain SFT)" in (out / "control" / "model" / "README.md").read_text()

    # a rerun of a finished pipeline runs no model and rewrites the same report
    before = EvalEngine.calls
    again = run_pipeline(make_cfg(tiny_model_dir, data, policies), out, echo=lambda s: None, engine_factory=eval_factory,
                         train_engine_factory=scripted_factory())
    assert EvalEngine.calls == before and again["grid"] == grid
    # an interrupted evaluation (no done-marker) is redone, and only that one: the control's shared run,
    # round 0 once (3 items), one fixed:3 chain for none, adaptive and fixed:3 (3 x 3), and checked's one
    # refinement (the unknown tool of simple_python)
    (out / "eval" / "control" / "grid.done").unlink()
    run_pipeline(make_cfg(tiny_model_dir, data, policies), out, echo=lambda s: None, engine_factory=eval_factory,
                 train_engine_factory=scripted_factory())
    assert EvalEngine.calls - before == 3 + 3 * 3 + 1


def _tok(model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


def _rows(path: Path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_control_corpus_matches_tokens_or_rows(tiny_model_dir, data):
    cfg = make_cfg(tiny_model_dir, data, "control.seed=3")
    tok = _tok(tiny_model_dir)
    rows, info = control_corpus(str(tiny_model_dir), cfg, 2000)
    sizes = [row_tokens(tok, r) for r in rows]
    assert info["train_tokens"] == sum(sizes) and abs(sum(sizes) - 2000) <= max(sizes) / 2 + 1
    assert info["pool_items"] == len(ITEMS) and info["passes"] >= 2  # the pool is smaller: passes repeat it
    assert rows == control_corpus(str(tiny_model_dir), cfg, 2000)[0]  # seeded
    cfg.control.match = "rows"
    rows, info = control_corpus(str(tiny_model_dir), cfg, 7)
    assert len(rows) == 7 and info["distinct_items"] == len(ITEMS)


@pytest.mark.slow
def test_real_engines_rerun_gives_identical_results(tiny_model_dir, data, tmp_path):
    """Everything real on the tiny model (hf sampling, SFT, hf evaluation): two fresh runs agree."""
    from toolace_r.cli import main

    results = []
    extra = ("training.loop.max_iterations=1", "eval.policies=[adaptive]")
    for name in ("a", "b"):
        if name == "a":
            run_pipeline(make_cfg(tiny_model_dir, data, *extra), tmp_path / name, echo=lambda s: None)
        else:  # the same through the command line
            assert main(["demo", "--output-dir", str(tmp_path / name), *overrides(tiny_model_dir, data, *extra)]) == 0
        report = json.loads((tmp_path / name / "report.json").read_text())
        preds = (tmp_path / name / "eval" / "toolace_r@0" / "adaptive" / "predictions.jsonl").read_text()
        results.append((report["grid"], preds, (tmp_path / name / "control" / "corpus.jsonl").read_text()))
    (g1, p1, c1), (g2, p2, c2) = results
    strip = lambda g: {a: {p: {k: v for k, v in r.items() if "wall" not in k} for p, r in rows.items()}
                       for a, rows in g.items()}
    assert strip(g1) == strip(g2) and p1 == p2 and c1 == c2
    assert set(g1) == {"base", "toolace_r@0", "control"}


def test_report_says_whether_pool_and_held_out_categories_are_disjoint(tmp_path):
    from toolace_r.pipeline.report import pool_vs_held_out, render_markdown

    demo = load_config(PipelineConfig, Path(__file__).parent.parent / "configs" / "demo.yaml")
    pool = pool_vs_held_out(demo)
    assert pool["bfcl_categories"][0] == "live_simple" and "simple_python" in pool["held_out_categories"]
    assert pool["overlap"] == []
    report = {"model": "m", "held_out": {"items": 0, "categories": demo.eval.categories, "limit_per_category": 1},
              "pool": pool, "grid": {}, "verdicts": {}, "iterations": [], "stages": {}, "transitions": {}}
    md = render_markdown(report)
    assert "Its BFCL categories and the held-out ones (simple_python, multiple" in md and "are disjoint" in md
    # computed, not written in: a pool that takes a held-out category says so
    demo.training.data.train = "mix:jsonl:x.jsonl;bfcl:live_simple,simple_python"
    pool = pool_vs_held_out(demo)
    assert pool["overlap"] == ["simple_python"] and pool["other_sources"] == ["jsonl:x.jsonl"]
    md = render_markdown({**report, "pool": pool})
    assert "shares BFCL categories with the held-out sets: simple_python" in md and "disjoint" not in md


def test_pipeline_without_a_pool_fails_before_any_model_runs(tmp_path):
    cfg = load_config(PipelineConfig, None, ["model=no-such-model"])
    with pytest.raises(ValueError, match=r"training\.data\.train is not set.*toolace:.*xlam:"):
        run_pipeline(cfg, tmp_path / "demo", echo=lambda s: None)
    assert not (tmp_path / "demo").exists()


# ---- the report from hand-built stage files (no model runs) ----

REPORT_CATS = "simple_python,multiple,irrelevance"
REPORT_ITEMS = benchmark_slice("bfcl", REPORT_CATS, limit=4)  # 12 items
REPORT_GOLD = {ex.id: gold_target(ex, "No function fits.") for ex in REPORT_ITEMS}
PROSE, WRONG = "I cannot help with that.", "[wrong_tool(x=1)]"


def _scripted_answer(arm: str, item: str, rnd: int) -> str:
    """base: prose everywhere (right on irrelevance only). toolace_r@0: calls right on simple only.
    toolace_r@1: right everywhere except the first simple item, which refinement fixes in round 1.
    control: simple right, multiple wrong, a call on irrelevance (wrong)."""
    irrelevance, simple = item.startswith("irrelevance"), item.startswith("simple")
    if arm == "base":
        return PROSE
    if arm == "toolace_r@0":
        return PROSE if irrelevance else REPORT_GOLD[item] if simple else WRONG
    if arm == "toolace_r@1":
        if irrelevance:
            return PROSE
        return WRONG if item == REPORT_ITEMS[0].id and rnd == 0 else REPORT_GOLD[item]
    return REPORT_GOLD[item] if simple else WRONG


def _write_eval(root: Path, arm: str, policy: str) -> None:
    """eval/<arm>/<policy>/ as the pipeline's eval stage writes it, from scripted answers."""
    from toolace_r.calls import parse
    from toolace_r.evaluation.rounds import write_refine_outputs
    from toolace_r.refine import RefineConfig, RefineResult, Round, Trace

    traces = []
    for ex in REPORT_ITEMS:
        answers = [_scripted_answer(arm, ex.id, 0)]
        while len(answers) < 4:  # refine until the answer repeats (checked: only a wrong answer is refined)
            if policy == "checked" and answers[-1] != WRONG:
                break
            answers.append(_scripted_answer(arm, ex.id, len(answers)))
            if answers[-1] == answers[-2]:
                break
        rounds = [Round(i, a, parse(a), a, prompt_tokens=100, completion_tokens=10) for i, a in enumerate(answers)]
        traces.append(Trace(ex.id, rounds, "converged" if len(rounds) > 1 else "checked"))
    n = max(len(t.rounds) for t in traces)
    result = RefineResult(traces, RefineConfig.from_options(policy), round_seconds=[1.0] * n, seconds=float(n))
    write_refine_outputs(REPORT_ITEMS, result, root / "eval" / arm / policy.replace(":", "_"),
                         {"arm": arm, "policy": policy}, "bfcl")


def _report_from_files(tmp_path):
    from toolace_r.pipeline.report import write_report

    cfg = load_config(PipelineConfig, None, [
        "model=m", "training.data.train=jsonl:x.jsonl", f"eval.categories={REPORT_CATS}", "eval.limit=4",
        "eval.base_policies=[adaptive]", "eval.iteration_policies=[adaptive]", "eval.policies=[adaptive, checked]"])
    root = tmp_path / "demo"
    arms = {"base": "b", "toolace_r@0": "t0", "toolace_r@1": "t1", "control": "c"}
    for arm in arms:
        for policy in (["adaptive"] if arm in ("base", "toolace_r@0") else ["adaptive", "checked"]):
            _write_eval(root, arm, policy)
    return root, write_report(root, cfg, arms, REPORT_ITEMS, {"iterations": []}, {})


def test_report_tests_every_comparison_item_by_item(tmp_path):
    root, report = _report_from_files(tmp_path)
    grid = report["grid"]
    assert grid["toolace_r@1"]["none"]["correct"] == 11 and grid["toolace_r@1"]["adaptive"]["correct"] == 12
    assert grid["control"]["none"]["correct"] == 4 and grid["base"]["none"]["correct"] == 4
    tests = {(t["a"]["arm"], t["a"]["policy"], t["b"]["arm"], t["b"]["policy"]): t for t in report["paired_tests"]}
    # ToolACE-R's best (adaptive, 12/12) against the control's best (none, 4/12): 8 to 0, p = 2 / 2^8
    best = tests["toolace_r@1", "adaptive", "control", "none"]
    assert best["kind"] == "toolace_r_vs_control" and report["paired_tests"][0] is best
    assert (best["items"], best["both_right"], best["both_wrong"], best["wins"], best["losses"]) == (12, 4, 0, 8, 0)
    assert best["p_value"] == pytest.approx(2 / 2 ** 8) and best["verdict"] == "significant"
    assert best["difference"] == pytest.approx(8 / 12) and best["ci_low"] <= best["difference"] <= best["ci_high"]
    # the same policy on both, each trained arm against the base model, each policy against its single pass
    assert {k for k, t in tests.items() if t["kind"] == "toolace_r_vs_control"} == {
        ("toolace_r@1", p, "control", q) for p, q in
        [("adaptive", "none"), ("none", "none"), ("adaptive", "adaptive"), ("checked", "checked")]}
    assert {k for k, t in tests.items() if t["kind"] == "arm_vs_base"} == {
        (arm, p, "base", p) for arm in ("toolace_r@0", "toolace_r@1", "control") for p in ("none", "adaptive")}
    assert {k for k, t in tests.items() if t["kind"] == "refinement_vs_single_pass"} == {
        ("base", "adaptive", "base", "none"), ("toolace_r@0", "adaptive", "toolace_r@0", "none"),
        *((arm, p, arm, "none") for arm in ("toolace_r@1", "control") for p in ("adaptive", "checked"))}
    # control vs base: 4 right each on different items: 4 to 4, p = 1
    c = tests["control", "none", "base", "none"]
    assert (c["wins"], c["losses"], c["p_value"], c["verdict"]) == (4, 4, 1.0, "no detectable difference")
    # toolace_r@1 single pass vs base: 7 to 0, p = 2 / 2^7
    assert tests["toolace_r@1", "none", "base", "none"]["p_value"] == pytest.approx(2 / 128)
    # refinement fixes one answer and breaks none: net +1, but no detectable difference (p = 1)
    r = tests["toolace_r@1", "adaptive", "toolace_r@1", "none"]
    assert (r["wins"], r["losses"], r["p_value"], r["verdict"]) == (1, 0, 1.0, "no detectable difference")

    v = report["verdicts"]
    t = v["toolace_r_vs_control"]
    assert t["beats"] is True and t["significant"] is True and t["paired"] == best
    ref = v["refinement"]["adaptive"]
    assert (ref["fixes"], ref["breaks"], ref["net"]) == (1, 0, 1)
    assert ref["net_gain"] is False and ref["significant"] is False and ref["paired"] == r
    assert v["refinement"]["checked"]["net"] == 1 and v["refinement"]["checked"]["net_gain"] is False

    md = (root / "report.md").read_text()
    assert "**significantly beats the control**" in md and "8 right only for ToolACE-R, 0 right only" in md
    assert "(net +1): **no detectable difference from the single pass** (exact McNemar p = 1.000" in md
    assert "**a net gain**" not in md and "**beats**" not in md
    assert "## Paired tests: item by item on the same held-out items" in md
    assert ("| ToolACE-R vs control | toolace_r@1 adaptive | control none | 12 | 4 | 0 | 8 | 0 | +66.7 | "
            f"{100 * best['ci_low']:+.1f} to {100 * best['ci_high']:+.1f} | 0.008 | significant |") in md
    assert "| trained vs base | control none | base none | 12 | 0 | 4 | 4 | 4 | +0.0 |" in md
    on_disk = json.loads((root / "report.json").read_text())
    assert on_disk["paired_tests"] == json.loads(json.dumps(report["paired_tests"]))


def test_report_verdicts_never_call_a_small_lead_a_win(tmp_path):
    from toolace_r.pipeline.config import GoalsConfig
    from toolace_r.pipeline.report import _verdicts, render_markdown

    # one item ahead of 40 (3 to 2 discordant): the accuracies differ, the verdict is no difference
    row = {"accuracy": 0.25, "summary": 0.25, "fixes": 2, "breaks": 1, "compute_ratio": 1.2, "wall_ratio": 1.5}
    grid = {"toolace_r@1": {"none": row, "adaptive": {**row, "accuracy": 0.275}},
            "control": {"none": {**row, "accuracy": 0.25}}}
    test = lambda a, pa, b, pb, w, l: {"kind": "x", "a": {"arm": a, "policy": pa}, "b": {"arm": b, "policy": pb},
                                       "items": 40, "both_right": 8, "both_wrong": 40 - 8 - w - l, "wins": w,
                                       "losses": l, "difference": (w - l) / 40, "p_value": 1.0, "ci_low": -0.1,
                                       "ci_high": 0.125, "level": 0.95, "verdict": "no detectable difference",
                                       "resamples": 10000, "seed": 0, "alpha": 0.05}
    tests = [test("toolace_r@1", "adaptive", "control", "none", 3, 2),
             test("toolace_r@1", "adaptive", "toolace_r@1", "none", 2, 1)]
    v = _verdicts(grid, "toolace_r@1", GoalsConfig(), tests)
    assert v["toolace_r_vs_control"]["ahead"] is True and v["toolace_r_vs_control"]["beats"] is False
    assert v["refinement"]["adaptive"]["net"] == 1 and v["refinement"]["adaptive"]["net_gain"] is False
    report = {"model": "m", "held_out": {"items": 40, "categories": "c", "limit_per_category": 8}, "grid": {},
              "verdicts": v, "iterations": [], "stages": {}, "transitions": {}, "paired_tests": tests}
    md = render_markdown(report)
    assert "**no detectable difference from the control**" in md and "beats" not in md
    assert "**no detectable difference from the single pass**" in md and "net gain" not in md
    assert "| 3 | 2 | +2.5 | -10.0 to +12.5 | 1.000 | no detectable difference |" in md
