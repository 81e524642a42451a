"""The control arm's corpus: plain SFT on gold rows of the whole pool, as many training tokens (or rows)
as the ToolACE-R run trained on, so the comparison isolates the method from the amount of training.
"""
from __future__ import annotations

import random
from typing import Any

from toolace_r.training.items import training_items
from toolace_r.training.sft import row_tokens

from .config import PipelineConfig


def _tokenizer(model_dir: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


def control_corpus(base_model: str, cfg: PipelineConfig, target: int) -> tuple[list[dict[str, Any]], dict]:
    """Gold SFT rows over the whole pool, in seeded shuffled passes, until `target` tokens
    (match: tokens) or rows (match: rows) are reached."""
    from toolace_r.prompts import render_pair

    data = cfg.training.data
    examples, targets, skipped = training_items(cfg.training)
    tok = _tokenizer(base_model)
    pool = []
    for ex in examples:
        prompt, completion = render_pair(tok, ex.tools, ex.messages, targets[ex.id], cfg=cfg.training.prompt)
        row = {"prompt": prompt, "completion": completion, "kind": "sft", "id": ex.id}
        pool.append((row, row_tokens(tok, row)))
    if not pool:
        raise ValueError(f"control: the pool {data.train!r} has no trainable items")
    rng = random.Random(cfg.control.seed)
    rows: list[dict[str, Any]] = []
    tokens = passes = 0
    by_tokens = cfg.control.match == "tokens"
    while (tokens if by_tokens else len(rows)) < target:
        order = list(range(len(pool)))
        rng.shuffle(order)
        passes += 1
        for i in order:
            row, n = pool[i]
            if by_tokens and tokens + n - target > target - tokens:
                break  # adding this row would land further from the target than stopping here
            rows.append(row)
            tokens += n
            if (tokens if by_tokens else len(rows)) >= target:
                break
        else:
            continue
        break
    info = {"pool_items": len(pool), "skipped_untrainable": skipped, "rows": len(rows),
            "distinct_items": len({r["id"] for r in rows}), "passes": passes, "train_tokens": tokens,
            "target": target, "match": cfg.control.match}
    return rows, info
