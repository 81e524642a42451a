"""What adaptive refinement costs: wall time and tokens against a single pass and against fixed:3.

    .venv/bin/python benchmarks/refine_cost.py [--per-category 5] [--max-new-tokens 128]

One run, one loaded model (the embedded SmolLM2-135M-Instruct, hf engine, CPU, 2 threads): the same
BFCL items (--per-category from each of --categories) go through `toolace_r.refine.refine` under
the policies none (single pass), adaptive and fixed:3, each on a fresh engine (empty prefix cache)
after a shared warm-up. For each: wall seconds, tokens per item (prefilled, reused from the prefix
cache, generated), generations per item, accuracy by round (BFCL semantics), and the ratios against
the single pass. Greedy decoding makes adaptive's rounds a prefix of fixed:3's, which the script
checks (agreement of adaptive's final answers with fixed:3's answer at the same round).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import engine_common as common  # noqa: E402

POLICIES = ("none", "adaptive", "fixed:3")


def run_policy(model, tokenizer, examples, policy: str, args) -> dict:
    from toolace_r.engines.hf import HFEngine
    from toolace_r.evaluation.rounds import round_metrics
    from toolace_r.refine import RefineConfig, refine

    engine = HFEngine(model=model, tokenizer=tokenizer, batch_size=args.batch_size)
    cfg = RefineConfig.from_options(policy, 3, max_new_tokens=args.max_new_tokens, chunk_size=args.chunk_size)
    with common.Timer() as t:
        result = refine(examples, engine, cfg)
    metrics = round_metrics(examples, result.traces)["all"]
    n = len(result.traces)
    tokens = {k: sum(tr.tokens()[k] for tr in result.traces) / n for k in ("prompt", "cached", "completion")}
    return {
        "policy": policy,
        "seconds": round(t.seconds, 2),
        "seconds_by_round": [round(s, 2) for s in result.round_seconds],
        "generations_per_item": sum(len(tr.rounds) for tr in result.traces) / n,
        "tokens_per_item": {k: round(v, 1) for k, v in tokens.items()},
        "computed_tokens_per_item": round(tokens["prompt"] + tokens["completion"], 1),
        "accuracy_by_round": metrics["accuracy_by_round"],
        "final_accuracy": metrics["final_accuracy"],
        "fixes_by_round": metrics["fixes_by_round"],
        "breaks_by_round": metrics["breaks_by_round"],
        "stop_reasons": metrics["stop_reasons"],
        "_traces": result.traces,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--categories", default="simple_python,multiple,parallel,irrelevance")
    ap.add_argument("--per-category", type=int, default=5)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--chunk-size", type=int, default=32)
    args = ap.parse_args(argv)

    common.setup()
    from toolace_r.engines import GenerationRequest, SamplingParams
    from toolace_r.engines.hf import HFEngine
    from toolace_r.data.select import benchmark_slice

    model, tok = common.load_embedded()
    examples = benchmark_slice("bfcl", args.categories, limit=args.per_category)
    # Warm-up: first forwards allocate and pick kernels; not counted in any policy's time.
    warm = HFEngine(model=model, tokenizer=tok, batch_size=args.batch_size, prefix_cache_mb=0)
    warm.generate([GenerationRequest(prompt=p, params=SamplingParams(max_new_tokens=4))
                   for p in common.render(tok, examples[:2])])

    runs = {}
    for policy in POLICIES:
        runs[policy] = run_policy(model, tok, examples, policy, args)
        print(f"{policy}: {runs[policy]['seconds']:.1f} s", flush=True)
    single, adaptive, fixed = runs["none"], runs["adaptive"], runs["fixed:3"]
    # Greedy: adaptive's trajectory should be the first rounds of fixed:3's.
    same = sum(a.final == f.answer_after(a.refinements)
               for a, f in zip(adaptive["_traces"], fixed["_traces"]))
    for r in runs.values():
        del r["_traces"]
        r["seconds_vs_single_pass"] = round(r["seconds"] / single["seconds"], 2)
        r["computed_tokens_vs_single_pass"] = round(r["computed_tokens_per_item"] / single["computed_tokens_per_item"], 2)
        print(f"{r['policy']:>9}: {r['seconds']:7.1f} s ({r['seconds_vs_single_pass']:.2f}x single pass), "
              f"{r['generations_per_item']:.2f} generations/item, tokens/item prefilled {r['tokens_per_item']['prompt']:.0f} "
              f"cached {r['tokens_per_item']['cached']:.0f} generated {r['tokens_per_item']['completion']:.0f} "
              f"(computed {r['computed_tokens_vs_single_pass']:.2f}x); accuracy by round "
              + " ".join(f"{100 * a:.1f}" for a in r["accuracy_by_round"]) + f"; stops {r['stop_reasons']}")
    figures = {
        "items": len(examples), "categories": args.categories, "per_category": args.per_category,
        "max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size, "runs": runs,
        "adaptive_vs_fixed3": {
            "seconds_ratio": round(adaptive["seconds"] / fixed["seconds"], 2),
            "computed_tokens_ratio": round(adaptive["computed_tokens_per_item"] / fixed["computed_tokens_per_item"], 2),
            "final_answers_matching_fixed3_at_same_round": f"{same}/{len(examples)}",
        },
    }
    a = figures["adaptive_vs_fixed3"]
    print(f"adaptive vs fixed:3: {a['seconds_ratio']:.2f}x wall time, {a['computed_tokens_ratio']:.2f}x computed tokens; "
          f"adaptive's final answers equal fixed:3's at the same round for {a['final_answers_matching_fixed3_at_same_round']}")
    common.write_results("refine_cost", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
