"""The training pool: examples from a data source with one gold target each, optionally bounded by
prompt length and taken round-robin across categories, so a small limit still covers every group.

The validation slice (`data.validation_limit`, docs/method.md#validation) comes from the same source:
the trainable items the pool did not take, again round-robin over categories, so it never overlaps the
pool and the pool is exactly what it is without one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
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
    split = load_split(source, limit, None, no_call_text, data_dir, max_prompt_tokens, tokenizer, prompt_cfg)
    return split.pool, split.targets, split.skipped


@dataclass
class ItemSplit:
    """The training pool (`pool`, its gold `targets`, `skipped` untrainable items) and the validation
    slice (`validation`, `validation_targets`): disjoint, from the same trainable items."""

    pool: list
    targets: dict
    skipped: int
    validation: list = field(default_factory=list)
    validation_targets: dict = field(default_factory=dict)


def load_split(source: str, limit: int | None, validation_limit: int | None, no_call_text: str,
               data_dir: str | None, max_prompt_tokens: int | None = None, tokenizer: Any = None,
               prompt_cfg: Any = None) -> ItemSplit:
    """`load_items`'s pool, plus `validation_limit` items (round-robin over categories) from the trainable
    items the pool left; a ValueError if fewer are left."""
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
    pool = _round_robin(kept, limit) if limit is not None and len(kept) > limit else kept
    split = ItemSplit(pool, {ex.id: targets[ex.id] for ex in pool}, skipped)
    if validation_limit:
        taken = {ex.id for ex in pool}
        left = [ex for ex in kept if ex.id not in taken]  # by id: a repeated item cannot reach both
        if len(left) < validation_limit:
            raise ValueError(
                f"data.validation_limit={validation_limit}: only {len(left)} trainable items of {source!r} are "
                f"left after the training pool took {len(pool)} (train_limit={limit}); lower validation_limit "
                "or train_limit")
        split.validation = _round_robin(left, validation_limit)
        split.validation_targets = {ex.id: targets[ex.id] for ex in split.validation}

    return split


def training_items(cfg: TrainConfig) -> tuple[list, dict, int]:
    """The training pool of `cfg` (data.train, train_limit, max_prompt_tokens), as `load_items` returns it.
    Every process that needs the pool (sampling workers, the pipeline's control arm) goes through here;
    data.validation_limit never changes it."""
    split = training_split(cfg, validation=False)
    return split.pool, split.targets, split.skipped


def validation_items(cfg: TrainConfig) -> tuple[list, dict]:
    """The validation slice of `cfg` (data.validation_limit items the pool did not take) and its targets."""
    split = training_split(cfg)
    return split.validation, split.validation_targets


def training_split(cfg: TrainConfig, validation: bool = True) -> ItemSplit:
    """The pool and (with `validation`) the validation slice of `cfg`, from one load of data.train."""
    from transformers import AutoTokenizer

    from toolace_r.models import local_model_dir

    d = cfg.data
    require_train_source(d)
    # The model's tokenizer decides the answer format (its template) and measures prompt lengths.
    tokenizer = AutoTokenizer.from_pretrained(local_model_dir(cfg.model))
    return load_split(d.train, d.train_limit, d.validation_limit if validation else None, d.no_call_text,
                      d.data_dir, max_prompt_tokens=d.max_prompt_tokens, tokenizer=tokenizer, prompt_cfg=cfg.prompt)


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
