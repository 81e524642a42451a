"""The sample phase: k sampled answers + the gold NLL in one pass (`sample_and_nll`) against the old two passes.

    .venv/bin/python benchmarks/sample_nll.py [--quick] [--model smollm2-135m] [--items 48]
        [--max-prompt-tokens 480] [--threads 2] [--out PATH]

What training/loop.py `sample_records` did before the fused pass, and what it does now with the hf engine.
Items: the first --items (16 with --quick) of the demo's training pool: configs/demo.yaml's
training.data.train source, round-robin over its categories, prompts of at most max_prompt_tokens (480)
under the model's tokenizer (`load_items`). Sampling: the demo's training.sampling (k=2, temperature 0.8,
max_new_tokens 64, stop "\\n\\n", seed 0, engine hf with dtype/device auto and batch_size 32,
nll_batch_size 4) and training prompt config, read from the file.

- baseline (old): `sample_and_score` on a fresh engine, then `gold_nll` with that engine's model
  (a padded forward per nll_batch_size items); timed as a whole and per part;
- new: `sample_and_nll` on a fresh engine (the engine scores the gold answers, keeping each prompt's KV,
  then samples from the cached prompts).

The model is loaded once; a "fresh engine" is a new HFEngine on those weights with an empty prefix cache
(loading is not timed). One untimed warm-up first: both paths on 2 other pool items (1 with --quick), on an
engine of its own. Compared: the largest |gold NLL difference| over the items, and the share of samples
(item by item, sample by sample) whose text is identical; the fused pass draws with the same seeds but
not bit for bit (cached KV rounds differently), so a few sampled texts may differ. The figures go to
benchmarks/results/sample_nll.json; the last line is the fused pass's speed-up over the old one.
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
from policy_grid import save  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m", help="a registered name or a model folder")
    ap.add_argument("--items", type=int, default=48)
    ap.add_argument("--max-prompt-tokens", type=int, default=None,
                    help="the pool's prompt-length bound (default: configs/demo.yaml's, 480)")
    ap.add_argument("--quick", action="store_true", help="16 items, 1 warm-up item")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(common.RESULTS / "sample_nll.json"))
    args = ap.parse_args()
    common.setup(args.threads)
    import transformers
    from transformers import AutoTokenizer

    from toolace_r.config import load_config
    from toolace_r.engines.hf import HFEngine
    from toolace_r.models import resolve_model
    from toolace_r.pipeline.config import PipelineConfig
    from toolace_r.training.difficulty import gold_nll, sample_and_nll, sample_and_score
    from toolace_r.training.items import load_items

    transformers.logging.set_verbosity_error()
    n = 16 if args.quick else args.items
    n_warm = 1 if args.quick else 2
    cfg = load_config(PipelineConfig, ROOT / "configs" / "demo.yaml").training
    d, s, prompt_cfg = cfg.data, cfg.sampling, cfg.prompt
    max_prompt = args.max_prompt_tokens if args.max_prompt_tokens is not None else d.max_prompt_tokens
    if s.engine != "hf":
        raise SystemExit(f"configs/demo.yaml samples with engine {s.engine!r}; this benchmark times the hf engine")

    # the pipeline renders with the model folder's own tokenizer (training/loop.py sample_records)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(args.model))
    t = time.perf_counter()
    pool, targets, skipped = load_items(d.train, n + n_warm, d.no_call_text, d.data_dir, max_prompt, tokenizer,
                                        prompt_cfg)
    load_s = time.perf_counter() - t
    if len(pool) < n + n_warm:
        raise SystemExit(f"the pool has {len(pool)} items, fewer than {n} + {n_warm} warm-up")
    examples, warm = pool[:n], pool[n:n + n_warm]
    gold = [targets[ex.id] for ex in examples]
    warm_gold = [targets[ex.id] for ex in warm]

    first = HFEngine(model=args.model, **s.engine_options)
    model, engine_tokenizer = first.model, first.tokenizer
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    device = str(next(model.parameters()).device)
    first.close()

    def fresh() -> HFEngine:  # a new engine (empty prefix cache) on the loaded weights
        return HFEngine(model=model, tokenizer=engine_tokenizer, **s.engine_options)

    print(f"model {args.model} ({dtype}, {device}); {n} pool items of {d.train.split(':')[0]} "
          f"(loaded in {load_s:.1f} s, {skipped} skipped), k={s.k}, max_new_tokens {s.max_new_tokens}", flush=True)
    with fresh() as engine:  # untimed warm-up of both paths
        sample_and_score(engine, tokenizer, warm, s, prompt_cfg, seed=s.seed + 999)
        gold_nll(engine.model, tokenizer, warm, warm_gold, prompt_cfg, batch_size=s.nll_batch_size)
        sample_and_nll(engine, tokenizer, warm, warm_gold, s, prompt_cfg, seed=s.seed + 999)

    with fresh() as engine:
        t0 = time.perf_counter()
        old = sample_and_score(engine, tokenizer, examples, s, prompt_cfg, seed=s.seed)
        t1 = time.perf_counter()
        old_nll = gold_nll(engine.model, tokenizer, examples, gold, prompt_cfg, batch_size=s.nll_batch_size)
        t2 = time.perf_counter()
    sample_s, nll_s = t1 - t0, t2 - t1
    old_s = t2 - t0
    print(f"  old: sample_and_score {sample_s:.1f} s + gold_nll {nll_s:.1f} s = {old_s:.1f} s", flush=True)
    with fresh() as engine:
        t0 = time.perf_counter()
        new = sample_and_nll(engine, tokenizer, examples, gold, s, prompt_cfg, seed=s.seed)
        new_s = time.perf_counter() - t0
    print(f"  new: sample_and_nll {new_s:.1f} s", flush=True)

    diffs = [abs(a - r["gold_nll"]) for a, r in zip(old_nll, new)]
    max_diff = max(diffs) if diffs else 0.0
    pairs = [(a["text"], b["text"]) for ro, rn in zip(old, new) for a, b in zip(ro["samples"], rn["samples"])]
    same_text = sum(a == b for a, b in pairs)
    share = same_text / len(pairs) if pairs else float("nan")
    same_solve = sum(ro["solve_rate"] == rn["solve_rate"] for ro, rn in zip(old, new))
    differing = [ro["id"] for ro, rn in zip(old, new)
                 if [x["text"] for x in ro["samples"]] != [x["text"] for x in rn["samples"]]]
    speedup = old_s / new_s if new_s > 0 else float("nan")
    mean_nll = sum(old_nll) / len(old_nll) if old_nll else float("nan")
    print(f"gold NLL: max |difference| {max_diff:.2e} (mean NLL {mean_nll:.3f})")
    print(f"identical sampled texts: {same_text}/{len(pairs)} ({share:.1%}); same solve rate on {same_solve}/{n} items")
    if differing:
        print(f"  items with a different sample: {', '.join(differing[:10])}{' ...' if len(differing) > 10 else ''}")
    save(args.out, "sample_nll", {
        "model": args.model, "dtype": dtype, "device": device, "quick": args.quick, "items": n,
        "warmup_items": len(warm), "source": d.train, "max_prompt_tokens": max_prompt,
        "settings": {"k": s.k, "temperature": s.temperature, "top_p": s.top_p, "max_new_tokens": s.max_new_tokens,
                     "stop": list(s.stop), "seed": s.seed, "nll_batch_size": s.nll_batch_size,
                     "engine_options": s.engine_options},
        "old_seconds": round(old_s, 3), "old_sample_seconds": round(sample_s, 3), "old_nll_seconds": round(nll_s, 3),
        "new_seconds": round(new_s, 3), "speedup": round(speedup, 3),
        "max_abs_nll_difference": max_diff, "mean_gold_nll": mean_nll,
        "samples": len(pairs), "identical_sample_texts": same_text, "identical_share": round(share, 4),
        "same_solve_rate_items": same_solve, "items_with_a_different_sample": differing,
    })
    print(f"sample_and_nll vs sample_and_score + gold_nll: {speedup:.2f}x faster ({old_s:.1f} s -> {new_s:.1f} s, "
          f"{n} items x {s.k} samples)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
