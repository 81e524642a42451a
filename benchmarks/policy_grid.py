"""Every demo policy from one shared run (`refine_grid`) against each policy run alone (`refine`).

    .venv/bin/python benchmarks/policy_grid.py [--quick] [--model smollm2-135m] [--items 40]
        [--policies none,adaptive,checked,fixed:1,fixed:2,fixed:3,vote:2,vote:4] [--threads 2] [--out PATH]

What the pipeline's evaluation of one model did before the grid (pipeline/run.py `_evaluate`), and what it
does now. Items: --items held-out BFCL items (10 with --quick) taken in turn from simple_python, multiple,
parallel, parallel_multiple and irrelevance (engine_dtype.held_out: the demo's held-out categories, the
first items of each). Settings: configs/demo.yaml's eval section (policies: `none` plus its list,
max_rounds, max_new_tokens 96, stop "\\n\\n", chunk size; engine hf with its engine_options: dtype and
device auto, batch_size 32, prefix_cache_mb 2048) and the training prompt config, read from the file.

- baseline (separate): each policy by `refine` on a fresh hf engine (an empty prefix cache), one after
  the other; its time is the sum of the refine calls;
- new (grid): `refine_grid` over all policies on one fresh engine.

The model is loaded once; a "fresh engine" is a new HFEngine on those weights with its own empty prefix
cache (loading is not timed either way). One untimed warm-up first: `refine_grid` over all the policies on
2 other held-out items (1 with --quick), on an engine of its own. Then per policy: are the answers identical
(every round's text and answer, and the stop reason, item by item) and are the computed tokens per item
(prompt + completion, summed over the rounds) equal; cached tokens are compared too (the grid forks the
prefix cache so they should be). Any mismatch is listed. The figures go to benchmarks/results/policy_grid.json;
the last line is the grid's speed-up over the separate runs.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import engine_common as common  # noqa: E402
from engine_dtype import CATEGORIES, held_out  # noqa: E402


def demo_configs(policies: list[str]):
    """policy -> RefineConfig, as pipeline/run.py builds them from configs/demo.yaml; and the eval section."""
    from toolace_r.config import load_config
    from toolace_r.pipeline.config import PipelineConfig
    from toolace_r.refine import RefineConfig

    cfg = load_config(PipelineConfig, ROOT / "configs" / "demo.yaml")
    e = cfg.eval
    configs = {p: RefineConfig.from_options(p, e.max_rounds, guard=e.guard, stop=e.stop,
                                            max_new_tokens=e.max_new_tokens, chunk_size=e.chunk_size,
                                            prompt=cfg.training.prompt)
               for p in policies}
    return configs, e


def per_item(result) -> list[dict]:
    """What is compared, item by item: the rounds (text, answer), the stop reason, the tokens."""
    out = []
    for t in result.traces:
        tok = t.tokens()
        out.append({"id": t.id, "stop": t.stop_reason, "rounds": [(r.text, r.answer) for r in t.rounds],
                    "compute": tok["prompt"] + tok["completion"], "cached": tok["cached"]})
    return out


def compare(policy: str, sep: list[dict], grid: list[dict]) -> dict:
    mismatches = []
    same_answers = same_compute = same_cached = 0
    for a, b in zip(sep, grid):
        ok = a["id"] == b["id"] and a["stop"] == b["stop"] and a["rounds"] == b["rounds"]
        same_answers += ok
        same_compute += a["compute"] == b["compute"]
        same_cached += a["cached"] == b["cached"]
        if not ok:
            first = next((r for r, (x, y) in enumerate(zip(a["rounds"], b["rounds"])) if x != y), None)
            mismatches.append({"policy": policy, "id": a["id"], "what": "answers",
                               "separate": {"stop": a["stop"], "rounds": len(a["rounds"])},
                               "grid": {"stop": b["stop"], "rounds": len(b["rounds"])},
                               "first_different_round": first})
        if a["compute"] != b["compute"]:
            mismatches.append({"policy": policy, "id": a["id"], "what": "compute_tokens",
                               "separate": a["compute"], "grid": b["compute"]})
    n = len(sep)
    return {"items": n, "answers_identical": same_answers == n and len(grid) == n, "same_answers": same_answers,
            "compute_tokens_equal": same_compute == n, "same_compute": same_compute,
            "cached_tokens_equal": same_cached == n,
            "compute_tokens_separate": sum(x["compute"] for x in sep),
            "compute_tokens_grid": sum(x["compute"] for x in grid), "mismatches": mismatches}


def save(out: str, name: str, figures: dict) -> None:
    """benchmarks/results/<name>.json (engine_common.write_results), or the --out path given instead."""
    if Path(out).resolve() == (common.RESULTS / f"{name}.json").resolve():
        common.write_results(name, figures)
        return
    import torch

    from toolace_r.files import write_json

    Path(out).parent.mkdir(parents=True, exist_ok=True)
    write_json(Path(out), {"benchmark": name, "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                           "machine": {"cpu_threads": torch.get_num_threads(), "torch": torch.__version__},
                           **figures}, indent=2)
    print(f"wrote {out}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m", help="a registered name or a model folder")
    ap.add_argument("--items", type=int, default=40)
    ap.add_argument("--policies", default=None,
                    help="comma-separated (default: none plus configs/demo.yaml's eval.policies)")
    ap.add_argument("--quick", action="store_true", help="10 items, 1 warm-up item")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(common.RESULTS / "policy_grid.json"))
    args = ap.parse_args()
    common.setup(args.threads)
    import transformers

    from toolace_r.engines.hf import HFEngine
    from toolace_r.refine import refine
    from toolace_r.refine.grid import refine_grid

    transformers.logging.set_verbosity_error()
    n = 10 if args.quick else args.items
    n_warm = 1 if args.quick else 2
    if args.policies:
        policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    else:
        from toolace_r.config import load_config
        from toolace_r.pipeline.config import PipelineConfig

        listed = load_config(PipelineConfig, ROOT / "configs" / "demo.yaml").eval.policies
        policies = ["none", *(p for p in listed if p != "none")]  # as pipeline/run.py orders them
    configs, e = demo_configs(policies)
    examples = held_out(n)
    warm = held_out(n_warm, skip=-(-n // len(CATEGORIES)))

    first = HFEngine(model=args.model, **e.engine_options)
    model, tokenizer = first.model, first.tokenizer
    options = dict(e.engine_options)

    def fresh() -> HFEngine:  # a new engine (empty prefix cache) on the loaded weights
        return HFEngine(model=model, tokenizer=tokenizer, **options)

    print(f"model {args.model} ({first.precision.dtype}, {next(model.parameters()).device}); {len(examples)} items, "
          f"{len(policies)} policies: {', '.join(policies)}", flush=True)
    first.close()
    with fresh() as engine:  # untimed warm-up: every code path the timed runs take
        refine_grid(warm, engine, configs)

    separate, sep_seconds = {}, {}
    for policy, cfg in configs.items():
        with fresh() as engine:
            t = time.perf_counter()
            result = refine(examples, engine, cfg)
            sep_seconds[policy] = time.perf_counter() - t
        separate[policy] = per_item(result)
        print(f"  separate {policy:10s} {sep_seconds[policy]:8.1f} s", flush=True)
    with fresh() as engine:
        t = time.perf_counter()
        grid = refine_grid(examples, engine, configs)
        grid_seconds = time.perf_counter() - t
    print(f"  grid (all {len(policies)})   {grid_seconds:8.1f} s (round 0: {grid.round0_seconds:.1f} s)", flush=True)

    total_sep = sum(sep_seconds.values())
    speedup = total_sep / grid_seconds if grid_seconds > 0 else float("nan")
    checks = {p: compare(p, separate[p], per_item(grid[p])) for p in policies}
    print(f"{'policy':10s} {'separate s':>10s} {'answers':>9s} {'compute tok':>12s} {'cached':>7s}")
    for p in policies:
        c = checks[p]
        print(f"{p:10s} {sep_seconds[p]:10.1f} {c['same_answers']:4d}/{c['items']:<4d} "
              f"{c['same_compute']:6d}/{c['items']:<5d} {'same' if c['cached_tokens_equal'] else 'DIFF':>7s}")
    mismatches = [m for c in checks.values() for m in c["mismatches"]]
    for m in mismatches[:20]:
        print(f"  mismatch {m['policy']} {m['id']} {m['what']}: separate {m['separate']} grid {m['grid']}")
    if len(mismatches) > 20:
        print(f"  ... {len(mismatches) - 20} more mismatches (all in {args.out})")
    all_same = all(c["answers_identical"] for c in checks.values())
    all_tokens = all(c["compute_tokens_equal"] for c in checks.values())
    print(f"answers identical under every policy: {all_same}; computed tokens per item equal: {all_tokens}")
    print(f"total: separate {total_sep:.1f} s, grid {grid_seconds:.1f} s")
    save(args.out, "policy_grid", {
        "model": args.model, "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "device": str(next(model.parameters()).device), "quick": args.quick, "items": len(examples),
        "warmup_items": len(warm), "policies": policies,
        "settings": {"max_rounds": e.max_rounds, "max_new_tokens": e.max_new_tokens, "stop": list(e.stop),
                     "chunk_size": e.chunk_size, "engine_options": e.engine_options},
        "separate_seconds": {p: round(s, 3) for p, s in sep_seconds.items()},
        "separate_total_seconds": round(total_sep, 3), "grid_seconds": round(grid_seconds, 3),
        "grid_round0_seconds": round(grid.round0_seconds, 3), "speedup": round(speedup, 3),
        "answers_identical": all_same, "compute_tokens_equal": all_tokens,
        "per_policy": {p: {k: v for k, v in c.items() if k != "mismatches"} for p, c in checks.items()},
        "mismatches": mismatches,
    })
    print(f"refine_grid vs each policy alone: {speedup:.2f}x faster ({total_sep:.1f} s -> {grid_seconds:.1f} s, "
          f"{len(examples)} items, {len(policies)} policies)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
