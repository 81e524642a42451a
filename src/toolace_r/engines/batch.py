"""The hf engine's running batch: which rows decode together, their KV slab, mask and positions.

Every change to the set of rows (admitting newly prefilled prompts, repeating a prompt for its n
samples, dropping finished rows, growing the capacity) goes through one operation, `assemble`,
which copies the selected rows of one or more batches into a fresh right-aligned slab. Copies cost
one pass over the KV, so the engine calls it rarely: rows that finish stay in the batch (their
outputs ignored) until a quarter of the batch is finished, and admissions wait for free room.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .base import SamplingParams
from .kv import KVShape, SlabCache
from .sampling import StopChecker


@dataclass
class Row:
    """One sequence being generated: sample `sample` of request `request`."""

    request: int
    sample: int
    prompt_ids: list[int]
    params: SamplingParams
    generator: torch.Generator | None
    stopper: StopChecker
    prompt_tokens: int = 0
    cached_tokens: int = 0
    generated: list[int] = field(default_factory=list)
    finish_reason: str | None = None

    @property
    def done(self) -> bool:
        return self.finish_reason is not None


@dataclass
class DecodeBatch:
    """Rows decoding in lockstep; row i's next input token is `last[i]` at position `positions[i]`."""

    cache: SlabCache
    mask: torch.Tensor  # [rows, capacity], 1 where a column holds one of the row's real tokens
    positions: torch.Tensor  # [rows], the position the next fed token takes
    last: torch.Tensor  # [rows], the token to feed next
    rows: list[Row]

    @property
    def length(self) -> int:
        return self.cache.length

    @property
    def alive(self) -> list[int]:
        return [i for i, r in enumerate(self.rows) if not r.done]

    def kv_columns(self, row: int) -> torch.Tensor:
        """The columns holding row `row`'s tokens, in order."""
        return self.mask[row, : self.length].nonzero().squeeze(1)


def assemble(
    parts: list[tuple[DecodeBatch, list[int]]], shapes: KVShape, headroom: int
) -> DecodeBatch | None:
    """A new batch made of the listed rows of each part (repeats allowed), right-aligned.

    Leading columns that are padding for every chosen row are cut; capacity is the new length plus
    `headroom` columns to decode into before the next copy.
    """
    parts = [(b, idx) for b, idx in parts if idx]
    if not parts:
        return None
    starts, widths = [], []
    for b, idx in parts:
        sel = b.mask[idx, : b.length]
        used = sel.any(0).nonzero()
        start = int(used[0, 0]) if used.numel() else b.length
        starts.append(start)
        widths.append(b.length - start)
    width = max(widths)
    capacity = width + headroom
    total = sum(len(idx) for _, idx in parts)
    cache = SlabCache.allocate(shapes, total, capacity)
    mask = torch.zeros(total, capacity, dtype=torch.long, device=shapes.device)
    positions, last, rows = [], [], []
    r0 = 0
    for (b, idx), start, w in zip(parts, starts, widths):
        index = torch.tensor(idx, device=shapes.device)
        c0 = width - w  # right-align this part
        cache.zero_columns(slice(r0, r0 + len(idx)), 0, c0)
        for src, dst in zip(b.cache.layers, cache.layers):
            dst.keys[r0 : r0 + len(idx), :, c0:width].copy_(src.keys[index, :, start : b.length])
            dst.values[r0 : r0 + len(idx), :, c0:width].copy_(src.values[index, :, start : b.length])
        mask[r0 : r0 + len(idx), c0:width] = b.mask[index, start : b.length]
        positions.append(b.positions[index])
        last.append(b.last[index])
        rows.extend(b.rows[i] for i in idx)
        r0 += len(idx)
    cache.set_length(width)
    return DecodeBatch(cache, mask, torch.cat(positions), torch.cat(last), rows)
