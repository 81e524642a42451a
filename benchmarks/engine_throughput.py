"""Batched hf-engine generation against one-at-a-time `model.generate`, and peak memory per batch size.

    .venv/bin/python benchmarks/engine_throughput.py [--prompts 32] [--max-new-tokens 128]

Model: the embedded SmolLM2-135M-Instruct, fp32, CPU, 2 threads. Prompts: the first --prompts BFCL
simple_python items rendered by toolace_r.prompts. Greedy decoding, same max_new_tokens both sides.
- baseline: `model.generate` on one prompt at a time (the way a naive loop would run evaluation);
- ours: one `engine.generate` call with every request, batch size --batch-size, with the prefix
  cache (the shared system prompt is prefilled once) and without it (batching alone);
- greedy outputs of ours are compared with the baseline token for token;
- memory: for each --memory-batch-sizes value, a fresh subprocess loads the model, runs the engine
  on 2 x batch-size prompts (at least 2) and reports its peak RSS during that run (the high-water
  mark is reset after loading) and tokens/s; the prefix cache (up to 1 GiB) is part of the peak.
Tokens/s counts generated tokens (end of sequence included, prompt tokens not) over wall time.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import engine_common as common  # noqa: E402


def baseline(model, tokenizer, prompts: list[str], max_new: int) -> tuple[list[list[int]], float]:
    import torch

    outputs = []
    with common.Timer() as t, torch.inference_mode():
        for prompt in prompts:
            ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new,
                                 do_sample=False)
            new = out[0, ids.shape[1]:].tolist()
            outputs.append(_until_eos(new, model))
    return outputs, t.seconds


def _until_eos(ids: list[int], model) -> list[int]:
    eos = model.generation_config.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos])
    for i, t in enumerate(ids):
        if t in eos:
            return ids[: i + 1]
    return ids


def ours(model, tokenizer, prompts: list[str], max_new: int, batch_size: int, cache_mb: int):
    from toolace_r.engines import GenerationRequest, SamplingParams
    from toolace_r.engines.hf import HFEngine

    engine = HFEngine(model=model, tokenizer=tokenizer, batch_size=batch_size, prefix_cache_mb=cache_mb)
    params = SamplingParams(max_new_tokens=max_new)
    with common.Timer() as t:
        results = engine.generate([GenerationRequest(prompt=p, params=params) for p in prompts])
    engine.close()
    return [r.completions[0].token_ids for r in results], t.seconds, results


def memory_child(batch_size: int, max_new: int) -> None:
    """Subprocess body: one engine run at one batch size; prints a JSON line."""
    common.setup()
    model, tok = common.load_embedded()
    loaded = common.current_rss_mb()
    prompts = common.render(tok, common.bfcl_examples(max(2, 2 * batch_size)))
    ours(model, tok, prompts[:2], 4, batch_size, 1024)  # warm-up
    import gc

    gc.collect()
    before = common.current_rss_mb()
    reset = common.reset_peak_rss()  # the peak of the run itself, not of loading the checkpoint
    outputs, seconds, _ = ours(model, tok, prompts, max_new, batch_size, 1024)
    generated = sum(len(o) for o in outputs)
    peak = common.peak_rss_mb()
    print(json.dumps({"batch_size": batch_size, "prompts": len(prompts), "seconds": round(seconds, 2),
                      "tokens_per_s": round(generated / seconds, 1), "rss_after_load_mb": round(loaded),
                      "rss_before_run_mb": round(before), "peak_rss_mb": round(peak),
                      "peak_includes_loading": not reset}))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--memory-batch-sizes", default="1,4,8,16,32")
    ap.add_argument("--memory-child", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.memory_child:
        memory_child(args.memory_child, args.max_new_tokens)
        return 0

    common.setup()
    model, tok = common.load_embedded()
    prompts = common.render(tok, common.bfcl_examples(args.prompts))
    lengths = common.token_counts(tok, prompts)
    print(f"{len(prompts)} BFCL simple_python prompts, {min(lengths)}-{max(lengths)} tokens "
          f"(total {sum(lengths)}), max_new_tokens={args.max_new_tokens}, greedy, fp32, 2 threads")

    # Warm-up both paths (first calls allocate and initialise kernels).
    baseline(model, tok, prompts[:1], 4)
    ours(model, tok, prompts[:2], 4, 2, 0)

    base_out, base_s = baseline(model, tok, prompts, args.max_new_tokens)
    base_tokens = sum(len(o) for o in base_out)
    print(f"baseline one-at-a-time model.generate: {base_tokens} tokens in {base_s:.1f} s "
          f"= {base_tokens / base_s:.1f} tokens/s")
    figures = {"prompts": len(prompts), "prompt_tokens": sum(lengths), "max_new_tokens": args.max_new_tokens,
               "baseline": {"seconds": round(base_s, 2), "tokens": base_tokens,
                            "tokens_per_s": round(base_tokens / base_s, 2)}}
    for label, cache_mb in (("engine", 1024), ("engine_no_prefix_cache", 0)):
        out, secs, results = ours(model, tok, prompts, args.max_new_tokens, args.batch_size, cache_mb)
        tokens = sum(len(o) for o in out)
        same = sum(a == b for a, b in zip(out, base_out))
        prefilled = sum(r.prompt_tokens for r in results)
        print(f"{label} (batch {args.batch_size}): {tokens} tokens in {secs:.1f} s = {tokens / secs:.1f} tokens/s, "
              f"{tokens / secs / (base_tokens / base_s):.2f}x baseline; prefilled {prefilled} of {sum(lengths)} "
              f"prompt tokens; greedy identical to baseline: {same}/{len(prompts)}")
        figures[label] = {"batch_size": args.batch_size, "seconds": round(secs, 2), "tokens": tokens,
                          "tokens_per_s": round(tokens / secs, 2),
                          "speedup": round((tokens / secs) / (base_tokens / base_s), 2),
                          "prompt_tokens_prefilled": prefilled, "identical_to_baseline": same}
    figures["baseline_peak_rss_mb_this_process"] = round(common.peak_rss_mb())
    del model

    memory = []
    for b in [int(x) for x in args.memory_batch_sizes.split(",") if x]:
        proc = subprocess.run([sys.executable, __file__, "--memory-child", str(b),
                               "--max-new-tokens", str(args.max_new_tokens)],
                              capture_output=True, text=True, check=True)
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        memory.append(row)
        print(f"batch {b:>2}: peak RSS during the run {row['peak_rss_mb']} MiB (before it: "
              f"{row['rss_before_run_mb']} MiB, i.e. +{row['peak_rss_mb'] - row['rss_before_run_mb']} MiB), "
              f"{row['tokens_per_s']} tokens/s on {row['prompts']} prompts")
    figures["memory_per_batch_size"] = memory
    common.write_results("engine_throughput", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
