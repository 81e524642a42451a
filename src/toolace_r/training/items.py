"""The training pool: examples from a data source with one gold target each, optionally bounded by
prompt length and taken round-robin across categories, so a small limit still covers every group.
"""
from __future__ import annotations

from typing import Any

from . import difficulty
from .config import TrainConfig, require_train_source


def load_items(source: str, limit: int | None, no_call_text: str, data_dir: str | None,
               max_prompt_tokens: int | None = None, tokenizer: Any = None,
               prompt_cfg: Any = None) -> tuple[list, dict, int]:
    """Trainable examples (round-robin over categories up to `limit`), their gold targets in the run's
    answer format (resolved for `tokenizer`; pythonic without one), and how many were skipped: no
    single right answer (any_call, unscored), calls the format cannot write, or, with
    `max_prompt_tokens`, a prompt longer than that under `tokenizer` (what keeps a CPU run's cost bounded)."""
    from toolace_r.data import load
    from toolace_r.prompts import answer_format

    if max_prompt_tokens is not None and tokenizer is None:
        raise ValueError("data.max_prompt_tokens needs the model's tokenizer")
    fmt = answer_format(tokenizer, prompt_cfg)
    options = {"data_dir": data_dir} if data_dir else {}
    examples = load(source, skip_invalid=True, **options)
    kept, targets, skipped = [], {}, 0
    for ex in examples:
        target = difficulty.gold_target(ex, no_call_text, fmt)
        if target is None or (max_prompt_tokens is not None and
                              _prompt_tokens(tokenizer, ex, prompt_cfg) > max_prompt_tokens):
            skipped += 1
            continue
        kept.append(ex)
        targets[ex.id] = target
    if limit is not None and len(kept) > limit:
        kept = _round_robin(kept, limit)
        targets = {ex.id: targets[ex.id] for ex in kept}
    return kept, targets, skipped


def training_items(cfg: TrainConfig) -> tuple[list, dict, int]:
    """The training pool of `cfg` (data.train, train_limit, max_prompt_tokens), as `load_items` returns it.
    Every process that needs the pool (sampling workers, the pipeline's control arm) goes through here."""
    from transformers import AutoTokenizer

    from toolace_r.models import local_model_dir

    d = cfg.data
    require_train_source(d)
    # The model's tokenizer decides the answer format (its template) and measures prompt lengths.
    tokenizer = AutoTokenizer.from_pretrained(local_model_dir(cfg.model))
    return load_items(d.train, d.train_limit, d.no_call_text, d.data_dir, max_prompt_tokens=d.max_prompt_tokens,
                      tokenizer=tokenizer, prompt_cfg=cfg.prompt)


def _prompt_tokens(tokenizer: Any, example: Any, prompt_cfg: Any) -> int:
    from toolace_r.prompts import render_example

    return len(tokenizer(render_example(tokenizer, example, cfg=prompt_cfg), add_special_tokens=False)["input_ids"])


def _round_robin(examples: list, limit: int) -> list:
    by_cat: dict[str, list] = {}
    for ex in examples:
        by_cat.setdefault(ex.category, []).append(ex)
    queues = list(by_cat.values())
    out: list = []
    i = 0
    while len(out) < limit:
        q = queues[i % len(queues)]
        if q:
            out.append(q.pop(0))
        i += 1
    return out
