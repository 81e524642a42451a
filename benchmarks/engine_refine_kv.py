"""One refinement round with KV reuse against re-encoding the whole conversation (hf engine).

    .venv/bin/python benchmarks/engine_refine_kv.py [--prompts 16] [--max-new-tokens 32]

Round 0 answers --prompts BFCL simple_python items greedily. Round 1's prompt is the conversation
rendered by toolace_r.prompts with that answer and the refine turn (what the refine loop sends).
- reuse: the engine that ran round 0 keeps its prefix cache, so round 1 prefills only the tokens
  after the longest common prefix with round 0's prompt + answer;
- re-encode: a fresh engine without prefix cache prefills the whole round-1 conversation.
Both run round 1 as one batched call, and again one conversation at a time; the figure is the wall
time ratio reuse / re-encode (best of --repeats alternating runs each), and the greedy outputs must
be identical.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import engine_common as common  # noqa: E402


def run_round(engine, prompts, max_new, batched: bool):
    from toolace_r.engines import GenerationRequest, SamplingParams

    params = SamplingParams(max_new_tokens=max_new)
    requests = [GenerationRequest(prompt=p, params=params) for p in prompts]
    with common.Timer() as t:
        if batched:
            results = engine.generate(requests)
        else:
            results = [engine.generate([r])[0] for r in requests]
    return [r.completions[0] for r in results], t.seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args(argv)

    common.setup()
    from toolace_r.engines.hf import HFEngine

    model, tok = common.load_embedded()
    examples = common.bfcl_examples(args.prompts)
    round0 = common.render(tok, examples)

    def engine(cache_mb: int) -> HFEngine:
        return HFEngine(model=model, tokenizer=tok, batch_size=args.batch_size, prefix_cache_mb=cache_mb)

    run_round(engine(0), round0[:2], 4, True)  # warm-up
    figures = {"prompts": args.prompts, "max_new_tokens": args.max_new_tokens, "repeats": args.repeats}
    for mode, batched in (("batched", True), ("one_at_a_time", False)):
        reuse_s = fresh_s = float("inf")
        for _ in range(args.repeats):  # alternate, keep each one's best: other jobs share the CPU
            reuse_engine = engine(1024)
            answers, _ = run_round(reuse_engine, round0, args.max_new_tokens, batched)
            round1 = common.render(tok, examples, [[a.text] for a in answers])
            lengths = common.token_counts(tok, round1)
            reused, seconds = run_round(reuse_engine, round1, args.max_new_tokens, batched)
            reuse_s = min(reuse_s, seconds)
            fresh, seconds = run_round(engine(0), round1, args.max_new_tokens, batched)
            fresh_s = min(fresh_s, seconds)
        same = sum(a.token_ids == b.token_ids for a, b in zip(reused, fresh))
        prefilled = sum(c.prompt_tokens for c in reused)
        print(f"{mode}: round 1 over {len(round1)} conversations ({sum(lengths)} prompt tokens): "
              f"reuse {reuse_s:.2f} s (prefilled {prefilled} tokens, cached {sum(c.cached_tokens for c in reused)}), "
              f"re-encode {fresh_s:.2f} s (prefilled {sum(c.prompt_tokens for c in fresh)}); "
              f"ratio {reuse_s / fresh_s:.2f}; identical greedy output {same}/{len(round1)}; "
              f"generated {sum(c.completion_tokens for c in reused)} tokens")
        figures[mode] = {"reuse_seconds": round(reuse_s, 3), "reencode_seconds": round(fresh_s, 3),
                         "ratio": round(reuse_s / fresh_s, 3), "round1_prompt_tokens": sum(lengths),
                         "reuse_prefilled_tokens": prefilled,
                         "generated_tokens": sum(c.completion_tokens for c in reused),
                         "identical_outputs": same, "conversations": len(round1)}
    common.write_results("engine_refine_kv", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
