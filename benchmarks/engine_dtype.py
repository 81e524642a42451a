"""The hf engine in float32 against bfloat16: prefill and decode tokens/s, greedy-answer agreement, BFCL accuracy.

    .venv/bin/python benchmarks/engine_dtype.py [--quick] [--prompts 64] [--max-new-tokens 96]

Model: the embedded SmolLM2-135M-Instruct on the CPU, 2 threads. Prompts: --prompts BFCL non-live items
taken in turn from simple_python, multiple, parallel, parallel_multiple and irrelevance (the demo's
held-out categories), rendered as evaluation renders them; greedy decoding with the demo's stop string.
Each dtype gets a fresh engine without prefix sharing or reuse (every prompt token is computed), one
untimed warm-up call on 4 other prompts (1 with --quick), then one timed call over all prompts.
Prefill time is the engine's time in its prefill forwards, decode time its time in decode steps;
tokens/s divide the prompt tokens and the generated tokens by them. Answers are compared text for text, and each
dtype's answers are scored with the BFCL checker. `auto` is what the engines pick on this machine
(toolace_r/precision.py): bf16 only where the CPU has AVX512-BF16 or AMX. The figures go to
benchmarks/results/engine_dtype.json; the last line is bf16's prefill speed-up.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import engine_common as common  # noqa: E402

CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance")


def held_out(n: int, skip: int = 0):
    """n examples in turn from the five categories, after the first `skip` of each."""
    from toolace_r.data import load

    per = -(-(n + skip * len(CATEGORIES)) // len(CATEGORIES)) + skip
    pools = [list(load(f"bfcl:{c}", limit=per))[skip:] for c in CATEGORIES]
    out = []
    for i in range(max(len(p) for p in pools)):
        out.extend(p[i] for p in pools if i < len(p))
    return out[:n]


class Timed:
    """Wraps an engine's prefill and decode-step methods and adds up their wall time."""

    def __init__(self, engine):
        self.prefill = self.decode = 0.0
        for attr, slot in (("_prefill", "prefill"), ("_step", "decode")):
            original = getattr(engine, attr)

            def timed(*a, _original=original, _slot=slot, **kw):
                t = time.perf_counter()
                try:
                    return _original(*a, **kw)
                finally:
                    setattr(self, _slot, getattr(self, _slot) + time.perf_counter() - t)

            setattr(engine, attr, timed)


def run(dtype: str, prompts, warm, max_new: int, stop) -> dict:
    from toolace_r.engines.base import GenerationRequest, SamplingParams
    from toolace_r.engines.hf import HFEngine

    params = SamplingParams(max_new_tokens=max_new, stop=tuple(stop))
    # No prefix sharing or reuse: every prompt token is prefilled, so prefill tokens/s is the forward's rate.
    with HFEngine(model="smollm2-135m", dtype=dtype, device="cpu", batch_size=16, min_shared_prefix=10**9,
                  min_prefix_reuse=10**9) as engine:
        engine.generate([GenerationRequest(prompt=p, params=params) for p in warm])
        timer = Timed(engine)
        t = time.perf_counter()
        results = engine.generate([GenerationRequest(prompt=p, params=params) for p in prompts])
        wall = time.perf_counter() - t
        precision = engine.precision.as_dict()
    done = [r.completions[0] for r in results]
    prefilled = sum(c.prompt_tokens for c in done)
    generated = sum(c.completion_tokens for c in done)
    return {"dtype": dtype, "precision": precision, "wall_s": round(wall, 3),
            "prefill_s": round(timer.prefill, 3), "decode_s": round(timer.decode, 3),
            "prefill_tokens": prefilled, "decode_tokens": generated,
            "prefill_tokens_per_s": round(prefilled / timer.prefill, 1),
            "decode_tokens_per_s": round(generated / timer.decode, 1), "texts": [c.text for c in done]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--quick", action="store_true", help="3 prompts, 16 new tokens, one warm-up prompt")
    ap.add_argument("--out", default=str(common.RESULTS / "engine_dtype.json"))
    args = ap.parse_args()
    common.setup(2)
    import transformers

    from toolace_r.evaluation.checker import check
    from toolace_r.models import local_model_dir
    from toolace_r.prompts import render_example

    transformers.logging.set_verbosity_error()
    n, max_new = (3, 16) if args.quick else (args.prompts, args.max_new_tokens)
    examples = held_out(n)
    warm_examples = held_out(1 if args.quick else 4, skip=n)
    tokenizer = transformers.AutoTokenizer.from_pretrained(local_model_dir("smollm2-135m"))
    prompts = [render_example(tokenizer, ex) for ex in examples]
    warm = [render_example(tokenizer, ex) for ex in warm_examples]
    runs = [run(d, prompts, warm, max_new, ["\n\n"]) for d in ("float32", "bfloat16")]
    for r in runs:
        r["correct"] = sum(check(ex, text).valid for ex, text in zip(examples, r["texts"]))
    fp32, bf16 = runs
    same = sum(a == b for a, b in zip(fp32["texts"], bf16["texts"]))
    import torch

    from toolace_r.precision import choose_dtype

    auto = choose_dtype("auto", "cpu").as_dict()
    for r in runs:
        print(f"{r['dtype']:9s} prefill {r['prefill_tokens_per_s']:8.1f} tok/s ({r['prefill_tokens']} in "
              f"{r['prefill_s']:.1f} s)  decode {r['decode_tokens_per_s']:7.1f} tok/s ({r['decode_tokens']} in "
              f"{r['decode_s']:.1f} s)  BFCL {r['correct']}/{n}")
    prefill_x = bf16["prefill_tokens_per_s"] / fp32["prefill_tokens_per_s"]
    decode_x = bf16["decode_tokens_per_s"] / fp32["decode_tokens_per_s"]
    print(f"identical greedy answers: {same}/{n}; accuracy difference {bf16['correct'] - fp32['correct']:+d} items")
    print(f"auto picks {auto['dtype']} here ({auto['reason']})")
    out = {"prompts": n, "max_new_tokens": max_new, "quick": args.quick, "threads": 2,
           "cpu": {"avx512_bf16": torch.cpu._is_avx512_bf16_supported(), "amx": torch.cpu._is_amx_tile_supported()},
           "auto": auto, "identical_answers": same, "prefill_speedup": round(prefill_x, 3),
           "decode_speedup": round(decode_x, 3),
           "runs": [{k: v for k, v in r.items() if k != "texts"} for r in runs]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    print(f"bf16 vs float32: {prefill_x:.2f}x prefill tokens/s, {decode_x:.2f}x decode tokens/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
