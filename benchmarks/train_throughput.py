"""SFT training tokens/s: the path the demo used to train with, against today's fast path, same rows, same steps.

    .venv/bin/python benchmarks/train_throughput.py [--quick] [--steps 10] [--config configs/demo.yaml]

Rows: the demo's own SFT rows (its training pool from --config, each item's prompt -> gold answer, rendered
as the training loop renders them), the demo's LoRA settings (rank, batch size, learning rate, sampling
strategy), 2 threads, one warm-up step that is not timed. Arms, each a fresh SFT stage over the same rows
in the same order with the same seed:
- baseline: float32, TRL's own loss (its fused LM head scores every position on a CPU), padded batches;
- compact: dtype "auto" (bf16 only where the CPU multiplies it natively), the LM head on labelled
  positions only (`sft.compact_logits`), padded batches (the demo's length-grouped sampling);
- compact+padding_free: as compact, with TRL's padding-free batches (one row, per-example positions;
  transformers masks attention block-diagonally from the position ids);
- bf16 (only with --bf16): compact with the weights and autocast forced to bf16 whatever the CPU;
- compact+torch.compile (only with --compile): compact with TRL's `torch_compile` (the warm-up step
  pays the compilation; a shape it has not seen compiles again inside the timed steps).
Tokens/s counts the real (unpadded) tokens of the timed steps over their wall time. The losses of every
step are printed for each arm (the curves should overlap: the same loss, computed faster). The figures go
to benchmarks/results/train_throughput.json; the last line is the fastest arm's speed-up over the baseline.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import engine_common as common  # noqa: E402


def demo_rows(config: str, limit: int | None):
    """(rows, model dir, the demo's SFT config) for the demo's training pool."""
    from transformers import AutoTokenizer

    from toolace_r.config import load_config
    from toolace_r.models import local_model_dir
    from toolace_r.pipeline.config import PipelineConfig
    from toolace_r.training.corpus import build_corpus
    from toolace_r.training.items import training_items

    cfg = load_config(PipelineConfig, config)
    train = cfg.training
    train.model = cfg.model
    if limit:
        train.data.train_limit = limit
    examples, targets, _ = training_items(train)
    model_dir = local_model_dir(cfg.model)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    exs = {ex.id: ex for ex in examples}
    rows = build_corpus(exs, {}, list(exs), targets, tokenizer, train.corpus, train.prompt)
    return rows, model_dir, train.sft


class StepClock:
    """A TrainerCallback keeping the wall time at the end of every step."""

    def __init__(self):
        from transformers import TrainerCallback

        clock = self
        self.ends: list[float] = []

        class _CB(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                if not clock.ends:
                    clock.ends.append(time.perf_counter())

            def on_step_end(self, args, state, control, **kw):
                clock.ends.append(time.perf_counter())

        self.callback = _CB()


def run_arm(name: str, model_dir: str, rows, sft, steps: int, work: Path, **changes) -> dict:
    import dataclasses

    from toolace_r.training.sft import build_trainer

    cfg = dataclasses.replace(sft, max_steps=steps + 1, save_steps=10_000, num_threads=2, **changes)
    trainer = build_trainer(model_dir, rows, work / name, cfg)
    clock = StepClock()
    trainer.add_callback(clock.callback)
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    tokens = [int(h["num_tokens"]) for h in logs]
    # step 1 is the warm-up: time and tokens of steps 2..N+1
    seconds = clock.ends[-1] - clock.ends[1]
    timed_tokens = tokens[-1] - tokens[0]
    precision = trainer.toolace_r_precision.as_dict()
    return {"arm": name, "steps_timed": steps, "seconds": round(seconds, 3), "tokens": timed_tokens,
            "tokens_per_s": round(timed_tokens / seconds, 1), "losses": [round(float(h["loss"]), 5) for h in logs],
            "precision": precision, "padding_free": bool(cfg.trl_args.get("padding_free")),
            "compact_logits": cfg.compact_logits}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/demo.yaml")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per arm (after one warm-up step)")
    ap.add_argument("--quick", action="store_true",
                    help="baseline and compact only, 2 timed steps of one short row each (under a minute)")
    ap.add_argument("--bf16", action="store_true", help="also time bf16 forced on, whatever the CPU")
    ap.add_argument("--compile", action="store_true", help="also time compact with torch.compile (TRL's torch_compile)")
    ap.add_argument("--out", default=str(common.RESULTS / "train_throughput.json"))
    args = ap.parse_args()
    common.setup(2)
    import tempfile

    import transformers

    transformers.logging.set_verbosity_error()
    steps = 2 if args.quick else args.steps
    rows, model_dir, sft = demo_rows(args.config, 24 if args.quick else None)
    if args.quick:  # the shortest rows, one per step
        import dataclasses

        sft = dataclasses.replace(sft, batch_size=1, grad_accum=1, global_batch_size=None)
        rows = sorted(rows, key=lambda r: len(r["prompt"]) + len(r["completion"]))[:steps + 1]
    need = (steps + 1) * sft.batch_size * max(1, sft.grad_accum)
    rows = (rows * (need // max(1, len(rows)) + 1))[:max(need, len(rows))]
    arms = [("baseline", dict(model_dtype="float32", bf16=False, compact_logits=False)),
            ("compact", dict(model_dtype="auto", bf16="auto", compact_logits=True))]
    if not args.quick:  # a batch of one has no padding to save
        arms.append(("compact+padding_free", dict(model_dtype="auto", bf16="auto", compact_logits=True,
                                                  trl_args={**sft.trl_args, "padding_free": True})))
    if args.bf16:
        arms.append(("bf16", dict(model_dtype="bfloat16", bf16=True, compact_logits=True)))
    if args.compile:
        arms.append(("compact+torch.compile", dict(model_dtype="auto", bf16="auto", compact_logits=True,
                                                   trl_args={**sft.trl_args, "torch_compile": True})))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, changes in arms:
            r = run_arm(name, model_dir, rows, sft, steps, Path(tmp), **changes)
            results.append(r)
            print(f"{name:22s} {r['tokens_per_s']:8.1f} tokens/s  ({r['tokens']} tokens in {r['seconds']:.1f} s; "
                  f"{r['precision']['model_dtype']}, autocast {r['precision']['bf16_autocast']})", flush=True)
    base = results[0]
    print("\nloss per step (step 1 = warm-up):")
    print("step  " + "  ".join(f"{r['arm']:>22s}" for r in results))
    for i in range(len(base["losses"])):
        print(f"{i + 1:4d}  " + "  ".join(f"{r['losses'][i]:22.4f}" for r in results))
    for r in results:
        r["speedup"] = round(r["tokens_per_s"] / base["tokens_per_s"], 3)
        r["max_loss_diff"] = round(max(abs(a - b) for a, b in zip(r["losses"], base["losses"])), 5)
    best = max(results[1:], key=lambda r: r["tokens_per_s"])
    import torch

    out = {"rows": len(rows), "batch_size": sft.batch_size, "steps_timed": steps, "quick": args.quick,
           "threads": 2, "cpu_bf16": {"avx512_bf16": torch.cpu._is_avx512_bf16_supported(),
                                      "amx": torch.cpu._is_amx_tile_supported()},
           "cpu": _cpu_name(), "arms": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out}")
    print(f"{best['arm']} vs baseline: {best['speedup']:.2f}x training tokens/s "
          f"({best['tokens_per_s']:.0f} vs {base['tokens_per_s']:.0f})")
    return 0


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if os.path.exists("/proc/cpuinfo") else ():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
