"""k samples with one shared prefill against k independent generations (hf engine).

    .venv/bin/python benchmarks/engine_samples.py [--prompts 8] [--k 4] [--max-new-tokens 32]

Each of --prompts BFCL simple_python prompts is sampled k times (temperature 0.8, top-p 0.95):
- shared: one request with n=k; the prompt is prefilled once and its KV repeated k times;
- independent: k requests of n=1 for the same prompt (different seeds).
Both run through the same engine and batch size with the prefix cache off, so the only difference
is the shared prefill. Reported: the best wall time of each over --repeats alternating runs and the
ratio shared / independent.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import engine_common as common  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args(argv)

    common.setup()
    from toolace_r.engines import GenerationRequest, SamplingParams
    from toolace_r.engines.hf import HFEngine

    model, tok = common.load_embedded()
    prompts = common.render(tok, common.bfcl_examples(args.prompts))
    rows = args.prompts * args.k
    engine = HFEngine(model=model, tokenizer=tok, batch_size=rows, prefix_cache_mb=0)

    def sampling(n: int, seed: int) -> SamplingParams:
        return SamplingParams(n=n, temperature=0.8, top_p=0.95, max_new_tokens=args.max_new_tokens, seed=seed)

    engine.generate([GenerationRequest(prompt=prompts[0], params=sampling(2, 0))])  # warm-up
    shared_reqs = [GenerationRequest(prompt=p, params=sampling(args.k, i)) for i, p in enumerate(prompts)]
    indep_reqs = [GenerationRequest(prompt=p, params=sampling(1, 1000 * i + j))
                  for i, p in enumerate(prompts) for j in range(args.k)]
    best_shared = best_indep = float("inf")
    for _ in range(args.repeats):  # alternate the two, keep each one's best: other jobs share the CPU
        with common.Timer() as t:
            shared = engine.generate(shared_reqs)
        best_shared = min(best_shared, t.seconds)
        with common.Timer() as t:
            indep = engine.generate(indep_reqs)
        best_indep = min(best_indep, t.seconds)
    gen_shared = sum(r.completion_tokens for r in shared)
    gen_indep = sum(r.completion_tokens for r in indep)
    pre_shared = sum(r.prompt_tokens for r in shared)
    pre_indep = sum(r.prompt_tokens for r in indep)
    ratio = best_shared / best_indep
    print(f"{args.prompts} prompts x k={args.k} samples, max_new_tokens={args.max_new_tokens}, batch {rows}")
    print(f"shared prefill: {best_shared:.2f} s (prefilled {pre_shared} tokens, generated {gen_shared})")
    print(f"independent:    {best_indep:.2f} s (prefilled {pre_indep} tokens, generated {gen_indep})")
    print(f"ratio shared / independent: {ratio:.2f}")
    common.write_results("engine_samples", {
        "prompts": args.prompts, "k": args.k, "repeats": args.repeats, "max_new_tokens": args.max_new_tokens,
        "shared_seconds": round(best_shared, 3), "independent_seconds": round(best_indep, 3),
        "ratio": round(ratio, 3), "shared_prefilled_tokens": pre_shared, "independent_prefilled_tokens": pre_indep,
        "shared_generated_tokens": gen_shared, "independent_generated_tokens": gen_indep,
    })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
