"""Expected time and memory of each phase of a ToolACE-R iteration for a 7-8B model on 1 or 8 H100s.

    .venv/bin/python benchmarks/scaling_estimate.py [--model llama31_8b] [--toolace PATH] [--json OUT]

Computed, not measured (no GPU here): tokens x FLOPs per token / (peak x MFU) for compute-bound work
(prefill, gold NLL, training), bytes read per decode step / HBM bandwidth for decoding, and bytes per
parameter + activations + KV cache for memory. Every assumption is a named constant or option below and
is printed with the figures, so docs/scaling.md can quote this output verbatim.

Token counts: BFCL is counted, item by item, from the local BFCL data rendered exactly as the pipeline
renders it (prompts.render_pair with the ToolACE system prompt), with the SmolLM2 tokenizer (the one
available offline; Llama-3's and Qwen2.5's larger vocabularies give ~10-20% fewer tokens, so these
counts err high). ToolACE is not local: its item count is an option (default: 11,300 dialogues x 1.5
assistant turns each) and its per-item lengths are taken from BFCL's live_* categories (real-world API
documentation, the closest local data); pass --toolace PATH (a local copy of Team-ACE/ToolACE) to count it.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

# --- hardware and efficiency assumptions -----------------------------------------------------------

H100_BF16_FLOPS = 989e12       # dense bf16 tensor-core peak, H100 SXM 80 GB
H100_FP32_FLOPS = 67e12        # plain fp32 (no TF32): what a float32 forward pass gets by default in torch
H100_HBM_BYTES_S = 3.35e12     # HBM3 bandwidth
H100_MEMORY = 80e9
MFU_TRAIN = 0.40               # model FLOPs utilisation of training (LoRA and full) and prefill
MFU_FORWARD = 0.40             # gold-NLL forward passes
DECODE_BW_EFFICIENCY = 0.70    # share of HBM bandwidth a decode step achieves
ANSWER_FACTOR = 1.5            # sampled answers vs gold length (wrong answers run longer)
SEQS_CAP = 256                 # vLLM's default max_num_seqs


@dataclass
class ModelSpec:
    name: str
    params: float
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int

    def lora_params(self, r: int) -> float:
        """LoRA on every linear layer of every block: r x (in + out) per module."""
        h, i, kv = self.hidden, self.intermediate, self.kv_heads * self.head_dim
        per_layer = (h + self.heads * self.head_dim) * 2 + (h + kv) * 2 + (h + i) * 3  # q,o; k,v; gate,up,down
        return r * per_layer * self.layers

    def kv_bytes_per_token(self, bytes_per_value: int = 2) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * bytes_per_value


MODELS = {
    "llama31_8b": ModelSpec("Llama-3.1-8B-Instruct", 8.03e9, 32, 4096, 14336, 32, 8, 128, 128256),
    "qwen25_7b": ModelSpec("Qwen2.5-7B-Instruct", 7.62e9, 28, 3584, 18944, 28, 4, 128, 152064),
}


# --- token counts ----------------------------------------------------------------------------------

@dataclass
class Lengths:
    items: int
    prompt_mean: float
    target_mean: float
    pad_factor: float  # padded tokens / real tokens for random batches of the recipe's per-GPU size


def _tokenizer():
    from transformers import AutoTokenizer

    from toolace_r.models import resolve_model

    return AutoTokenizer.from_pretrained(resolve_model("smollm2-135m"))


def count(source: str, tokenizer, batch: int, seed: int = 0) -> tuple[Lengths, list[int]]:
    """Rendered prompt and gold-completion token counts of every trainable item of `source`."""
    from toolace_r.data import load
    from toolace_r.prompts import PromptConfig, render_pair
    from toolace_r.training.config import DEFAULT_NO_CALL_TEXT
    from toolace_r.training.difficulty import gold_target

    cfg = PromptConfig()
    prompts, targets = [], []
    for ex in load(source, skip_invalid=True):
        target = gold_target(ex, DEFAULT_NO_CALL_TEXT)
        if target is None:
            continue
        prompt, completion = render_pair(tokenizer, ex.tools, ex.messages, target, cfg=cfg)
        prompts.append(len(tokenizer(prompt, add_special_tokens=False)["input_ids"]))
        targets.append(len(tokenizer(completion, add_special_tokens=False)["input_ids"]))
    totals = [p + t for p, t in zip(prompts, targets)]
    rng = random.Random(seed)
    order = totals[:]
    rng.shuffle(order)
    padded = sum(max(order[i:i + batch]) * len(order[i:i + batch]) for i in range(0, len(order), batch))
    return Lengths(len(totals), statistics.mean(prompts), statistics.mean(targets), padded / sum(totals)), totals


# --- the phases ------------------------------------------------------------------------------------

def decode_tokens_per_s(m: ModelSpec, context: float, kv_budget: float) -> tuple[float, int]:
    """Decode throughput of one GPU: each step reads the weights once and every sequence's KV cache."""
    seqs = max(1, min(SEQS_CAP, int(kv_budget / (m.kv_bytes_per_token() * context))))
    step_bytes = 2 * m.params + seqs * context * m.kv_bytes_per_token()
    step_s = max(step_bytes / (H100_HBM_BYTES_S * DECODE_BW_EFFICIENCY),
                 2 * m.params * seqs / (H100_BF16_FLOPS * MFU_TRAIN))
    return seqs / step_s, seqs


def estimate(m: ModelSpec, train: Lengths, bfcl: Lengths, args) -> list[dict]:
    gpus = (1, 8)
    rows = []
    n = m.params

    def row(phase, tokens, flops, seconds_1gpu, memory_gb, note, parallel=True):
        rows.append({"phase": phase, "tokens": tokens, "pflop": flops / 1e15,
                     **{f"hours_{g}gpu": seconds_1gpu / (g if parallel else 1) / 3600 for g in gpus},
                     "memory_gb_per_gpu": memory_gb, "note": note})

    # 1. sampling k answers per training item (vLLM: one prefill per prompt shared by the k samples)
    answer = train.target_mean * ANSWER_FACTOR
    prefill = train.items * train.prompt_mean
    decoded = train.items * args.k * answer
    kv_budget = args.gpu_memory_utilization * H100_MEMORY - 2 * n
    rate, seqs = decode_tokens_per_s(m, train.prompt_mean + answer, kv_budget)
    prefill_s = 2 * n * prefill / (H100_BF16_FLOPS * MFU_TRAIN)
    row(f"sample k={args.k} (vLLM, bf16)", prefill + decoded, 2 * n * (prefill + decoded), prefill_s + decoded / rate,
        args.gpu_memory_utilization * H100_MEMORY / 1e9,
        f"decode {rate:,.0f} tok/s/GPU at {seqs} sequences; KV {m.kv_bytes_per_token() / 1024:.0f} KiB/token")

    # 2. gold NLL: one forward pass over prompt + gold target
    nll_tokens = train.items * (train.prompt_mean + train.target_mean) * train.pad_factor
    for label, peak, bytes_pp in (("bf16", H100_BF16_FLOPS, 2), ("fp32 as coded", H100_FP32_FLOPS, 4)):
        row(f"gold NLL ({label})", nll_tokens, 2 * n * nll_tokens, 2 * n * nll_tokens / (peak * MFU_FORWARD),
            bytes_pp * n / 1e9 + args.nll_batch * 4 * (train.prompt_mean + train.target_mean) * m.hidden * 4 / 1e9,
            "weights + one batch's hidden states; logits only for the target positions")

    # 3. SFT: corpus <= selected items x (1 + refinement share), `epochs` passes, padded batches
    examples = train.items * args.selected_share * (1 + args.refine_per_item)
    tokens = examples * (train.prompt_mean + train.target_mean) * train.pad_factor * args.epochs
    seq = train.prompt_mean + train.target_mean
    act = _activation_bytes(m, args.batch, seq * train.pad_factor, args.grad_ckpt)
    lora = m.lora_params(args.lora_r)
    ckpt = 2 if args.grad_ckpt else 0  # gradient checkpointing recomputes the forward pass
    lora_mem = 2 * n + 16 * lora + act
    row("SFT LoRA r=16 (DDP)", tokens, (4 + ckpt) * n * tokens, (4 + ckpt) * n * tokens / (H100_BF16_FLOPS * MFU_TRAIN),
        lora_mem / 1e9, f"bf16 weights {2 * n / 1e9:.1f} GB, {lora / 1e6:.0f}M LoRA params x 16 B, "
        f"activations {act / 1e9:.1f} GB (batch {args.batch})")
    full_states = 16 * n  # bf16/fp32 weights + grads + Adam m, v + fp32 master: 16 bytes per parameter
    full_8 = full_states / 8 + act
    row("SFT full (FSDP / ZeRO-3, 8 GPUs)", tokens, (6 + ckpt) * n * tokens,
        (6 + ckpt) * n * tokens / (H100_BF16_FLOPS * MFU_TRAIN), full_8 / 1e9,
        f"16 B/param = {full_states / 1e9:.0f} GB sharded over 8; on 1 GPU "
        f"{(full_states + act) / 1e9:.0f} GB: does not fit without CPU offload")

    # 4. evaluation: greedy answer on every scored BFCL item
    eval_prefill = bfcl.items * bfcl.prompt_mean
    eval_decode = bfcl.items * bfcl.target_mean * ANSWER_FACTOR
    rate_e, _ = decode_tokens_per_s(m, bfcl.prompt_mean + bfcl.target_mean, kv_budget)
    row("eval BFCL (greedy)", eval_prefill + eval_decode, 2 * n * (eval_prefill + eval_decode),
        2 * n * eval_prefill / (H100_BF16_FLOPS * MFU_TRAIN) + eval_decode / rate_e,
        args.gpu_memory_utilization * H100_MEMORY / 1e9, f"{bfcl.items} items; in the orchestrator: one engine",
        parallel=False)
    return rows


def _activation_bytes(m: ModelSpec, batch: int, seq: float, checkpointing: bool) -> float:
    """Training activations per GPU (bf16, SDPA/flash attention: no seq x seq term).

    ~34 x hidden bytes per token per layer kept for backward (Korthikanti et al. 2022, without the
    attention-score term); with checkpointing only each layer's input (2 x hidden bytes) plus one layer
    being recomputed. The fp32 logits of the batch (vocab x 4 bytes per token, and their gradient) come on top.
    """
    tokens = batch * seq
    per_layer = 34 * m.hidden * tokens
    kept = 2 * m.hidden * tokens * m.layers + per_layer if checkpointing else per_layer * m.layers
    return kept + 2 * tokens * m.vocab * 4


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=sorted(MODELS), default="llama31_8b")
    p.add_argument("--toolace", help="a local copy of Team-ACE/ToolACE to count (else the assumption below)")
    p.add_argument("--toolace-items", type=int, default=int(11300 * 1.5))
    p.add_argument("--k", type=int, default=4)
    p.add_argument("--epochs", type=float, default=3)
    p.add_argument("--batch", type=int, default=6, help="per-GPU micro-batch (recipe: 6 x 8 GPUs = 48)")
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--selected-share", type=float, default=1.0, help="share of items selected (1.0: upper bound)")
    p.add_argument("--refine-per-item", type=float, default=1.0,
                   help="refinement examples per selected item (corpus.refine_share 0.5 caps it at 1)")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.45)
    p.add_argument("--nll-batch", type=int, default=16)
    p.add_argument("--no-grad-ckpt", dest="grad_ckpt", action="store_false")
    p.add_argument("--iterations", type=int, default=3, help="loop.max_iterations of the recipes")
    p.add_argument("--json", help="also write the figures to this file")
    args = p.parse_args(argv)

    m = MODELS[args.model]
    tok = _tokenizer()
    bfcl, _ = count("bfcl:all", tok, args.batch)
    live, _ = count("bfcl:live_simple,live_multiple,live_parallel,live_parallel_multiple,live_irrelevance",
                    tok, args.batch)
    if args.toolace:
        train, _ = count(f"toolace:{args.toolace}", tok, args.batch)
        train_note = f"counted from {args.toolace}"
    else:
        train = Lengths(args.toolace_items, live.prompt_mean, live.target_mean, live.pad_factor)
        train_note = (f"ASSUMED: {args.toolace_items} items (11,300 dialogues x 1.5 assistant turns), lengths of "
                      "BFCL live_* (counted)")
    rows = estimate(m, train, bfcl, args)

    print(f"# {m.name}: {m.params / 1e9:.2f}B parameters; H100 SXM 80 GB: {H100_BF16_FLOPS / 1e12:.0f} TFLOP/s bf16, "
          f"{H100_HBM_BYTES_S / 1e12:.2f} TB/s")
    print(f"# assumptions: MFU {MFU_TRAIN:.0%} (training, prefill, NLL), decode at {DECODE_BW_EFFICIENCY:.0%} of HBM "
          f"bandwidth, sampled answers {ANSWER_FACTOR}x gold length, vLLM gpu_memory_utilization "
          f"{args.gpu_memory_utilization}, gradient checkpointing {'on' if args.grad_ckpt else 'off'}, "
          f"selected share {args.selected_share}, {args.refine_per_item} refinement example(s) per selected item")
    print("# tokens counted with the SmolLM2 tokenizer (the prompts the pipeline renders, ToolACE system prompt)")
    print(f"# BFCL (bfcl:all, scored items): {bfcl.items} items, prompt {bfcl.prompt_mean:.0f}, gold "
          f"{bfcl.target_mean:.0f} tokens mean")
    print(f"# training data: {train.items} items, prompt {train.prompt_mean:.0f}, gold {train.target_mean:.0f} "
          f"tokens mean, padding x{train.pad_factor:.2f} (batches of {args.batch}); {train_note}")
    print("# per iteration (the run's total is below the table). 8-GPU hours assume linear scaling")
    print("# (data-parallel sampling shards, DDP/FSDP training); eval runs on one GPU in the orchestrator.")
    print()
    print("| phase | tokens | PFLOP | hours, 1x H100 | hours, 8x H100 | memory per GPU (GB) | note |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        one = "n/a" if r["phase"].startswith("SFT full") else f"{r['hours_1gpu']:.2f}"
        print(f"| {r['phase']} | {r['tokens'] / 1e6:,.1f}M | {r['pflop']:,.0f} | {one} | {r['hours_8gpu']:.2f} | "
              f"{r['memory_gb_per_gpu']:.1f} | {r['note']} |")
    print()
    for nll in ("gold NLL (bf16)", "gold NLL (fp32 as coded)"):
        picked = [r for r in rows if not r["phase"].startswith(("SFT full", "gold NLL")) or r["phase"] == nll]
        h1, h8 = (sum(r[f"hours_{g}gpu"] for r in picked) for g in (1, 8))
        print(f"one LoRA iteration with {nll}: {h1:.1f} h on 1x H100, {h8:.2f} h on 8x H100; "
              f"a {args.iterations}-iteration run: {args.iterations * h1:.1f} h / {args.iterations * h8:.1f} h")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": asdict(m), "bfcl": asdict(bfcl), "train": asdict(train),
                                               "rows": rows, "args": vars(args)}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
