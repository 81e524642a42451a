"""Choosing the next token and deciding when a sequence ends, for the hf engine.

Sampling is done here rather than by transformers' logits processors so that each row can carry
its own `torch.Generator`: sample j of a request seeded s draws from a generator seeded by (s, j),
which keeps its tokens independent of the rest of the batch (up to float rounding of the logits,
which batching can change in the last bits).
"""
from __future__ import annotations

from typing import Sequence

import torch

from .base import SamplingParams

_MIX = 0x9E3779B97F4A7C15  # golden-ratio constant: spreads (seed, sample) pairs over the 64-bit range


def sample_seed(seed: int, sample: int) -> int:
    """The generator seed of sample `sample` of a request seeded `seed`."""
    return (seed * _MIX + sample * 0xBF58476D1CE4E5B9 + 1) % (2**63 - 1)


def make_generator(seed: int, sample: int, device: torch.device) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(sample_seed(seed, sample))
    return gen


def candidates(
    logits: torch.Tensor, temperature: float, top_k: int, top_p: float
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(probabilities, token ids) of the tokens left after temperature, top-k and top-p.

    Rows are [rows, vocab] logits. Without truncation the ids are None (every token). Top-p keeps
    the smallest set of most likely tokens whose mass reaches top_p; rather than sorting the whole
    vocabulary it looks at the top 64, 256, ... tokens until they hold enough mass, which is exact
    and, for a language model's peaked distributions, a few hundred tokens at most.
    """
    logits = logits.float() / temperature
    vocab = logits.shape[-1]
    if 0 < top_k < vocab:
        logits, ids = torch.topk(logits, top_k, dim=-1)  # sorted, most likely first
        probs = torch.softmax(logits, dim=-1)
    elif top_p < 1.0:
        full = torch.softmax(logits, dim=-1)
        k = min(64, vocab)
        while True:
            probs, ids = torch.topk(full, k, dim=-1)
            if k == vocab or bool((probs.sum(-1) >= top_p).all()):
                break
            k = min(4 * k, vocab)
    else:
        return torch.softmax(logits, dim=-1), None
    if top_p < 1.0:
        # A token stays if the mass of the tokens before it is still short of top_p.
        before = probs.cumsum(-1) - probs
        probs = probs.masked_fill(before >= top_p, 0.0)
    return probs / probs.sum(-1, keepdim=True), ids


def filter_logits(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """The same distribution as `candidates`, spread over the whole vocabulary: [rows, vocab]."""
    probs, ids = candidates(logits, temperature, top_k, top_p)
    if ids is None:
        return probs
    return torch.zeros(logits.shape, dtype=probs.dtype, device=probs.device).scatter_(-1, ids, probs)


def next_tokens(
    logits: torch.Tensor,
    params: Sequence[SamplingParams],
    generators: Sequence[torch.Generator | None],
) -> torch.Tensor:
    """One token per row of `logits` [rows, vocab], each row sampled with its own params/generator.

    Sampling inverts the cumulative distribution at one uniform draw per row, taken from the row's
    own generator: exact, batched, and far cheaper than a multinomial over the vocabulary per row.
    """
    out = torch.argmax(logits, dim=-1)
    groups: dict[tuple[float, int, float], list[int]] = {}
    for row, p in enumerate(params):
        if not p.greedy:
            groups.setdefault((p.temperature, p.top_k, p.top_p), []).append(row)
    for (temperature, top_k, top_p), rows in groups.items():
        index = torch.tensor(rows, device=logits.device)
        probs, ids = candidates(logits.index_select(0, index), temperature, top_k, top_p)
        cdf = probs.cumsum(-1)
        draws = torch.cat([torch.rand(1, generator=generators[r], device=generators[r].device) for r in rows])
        draws = draws.to(cdf.device, cdf.dtype)[:, None] * cdf[:, -1:]
        # right=True never lands on a zero-probability token (its cdf equals its predecessor's).
        pick = torch.searchsorted(cdf, draws, right=True).clamp_(max=cdf.shape[-1] - 1)
        chosen = pick if ids is None else ids.gather(-1, pick)
        out[index] = chosen[:, 0]
    return out


class StopChecker:
    """Tells when a row's generated ids end in a stop string, and trims the final text.

    Only the tail of the output is decoded per step: a stop string of c characters that just
    completed lies within the last c tokens (every token decodes to at least one character, bar
    partial UTF-8 pieces, hence the margin).
    """

    def __init__(
        self, tokenizer, stop: Sequence[str], skip_special_tokens: bool = True, margin: int = 4
    ) -> None:
        self.tokenizer = tokenizer
        self.stop = tuple(stop)
        # Decode the tail exactly as the final text will be decoded, so a hit is always trimmable.
        self.skip_special_tokens = skip_special_tokens
        self.window = (max(len(s) for s in self.stop) + margin) if self.stop else 0

    def hit(self, generated: Sequence[int]) -> bool:
        if not self.stop:
            return False
        tail = self.tokenizer.decode(
            list(generated[-self.window:]), skip_special_tokens=self.skip_special_tokens
        )
        return any(s in tail for s in self.stop)

    def trim(self, text: str) -> str:
        """The text up to the earliest stop string (the whole text when none occurs)."""
        cut = min((i for i in (text.find(s) for s in self.stop) if i >= 0), default=len(text))
        return text[:cut]
