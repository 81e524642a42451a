"""KV storage for the hf engine: a preallocated batch cache and a prefix cache of finished sequences.

Two ideas live here.

1. `SlabCache`: transformers' DynamicCache grows by `torch.cat` on every step, which copies the whole
   cache per token; on CPU with a batch of 32 rows of ~700 tokens that is a gigabyte per step. The
   slab keeps one zero-initialised buffer per layer, [rows, kv_heads, capacity, head_dim], writes
   each step's keys/values in place and grows in chunks. Rows are right-aligned: every row's newest
   token sits in the same column, padding lies to the left (and in the middle, where a row's reused
   prefix is shorter than its neighbours'), and the attention mask marks the real columns.
   Padding must stay finite (zeros), because a masked score contributes 0 * value and 0 * NaN = NaN.

2. `PrefixCache`: a bounded LRU (by bytes) of the KV of recent sequences, keyed by token ids, like
   vLLM's automatic prefix caching. A request whose ids share a prefix with an entry starts from
   that KV and prefills only the rest, which is what makes a refinement round cheap: its prompt
   is the previous round's prompt plus answer plus a new turn.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from transformers.cache_utils import Cache, DynamicLayer


class SlabLayer(DynamicLayer):
    """One layer of a SlabCache: a preallocated buffer written in place."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, length: int) -> None:
        super().__init__()
        self.keys, self.values = keys, values
        self.length = length
        self.device = keys.device
        self.is_initialized = True

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        raise RuntimeError("a SlabLayer is created initialised")

    def update(self, key_states, value_states, *args, **kwargs):
        end = self.length + key_states.shape[-2]
        if end > self.keys.shape[-2]:
            raise RuntimeError(f"SlabLayer overflow: {end} > capacity {self.keys.shape[-2]}")
        self.keys[:, :, self.length:end].copy_(key_states)
        self.values[:, :, self.length:end].copy_(value_states)
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]

    def get_seq_length(self) -> int:
        return self.length

    def get_max_length(self) -> int:
        return -1


class SlabCache(Cache):
    """A transformers `Cache` over per-layer slabs; see the module docstring."""

    def __init__(self, keys: list[torch.Tensor], values: list[torch.Tensor], length: int) -> None:
        super().__init__(layers=[SlabLayer(k, v, length) for k, v in zip(keys, values)])

    @classmethod
    def allocate(cls, shapes: "KVShape", rows: int, capacity: int) -> "SlabCache":
        """Uninitialised buffers: the caller zeroes the padding it creates (`zero_columns`); columns
        past the length need nothing, since each step writes a column before any row attends to it."""

        def buf() -> torch.Tensor:
            return torch.empty(
                rows, shapes.heads, capacity, shapes.head_dim, dtype=shapes.dtype, device=shapes.device
            )

        return cls([buf() for _ in range(shapes.layers)], [buf() for _ in range(shapes.layers)], 0)

    def zero_columns(self, rows: slice | int, start: int, end: int) -> None:
        if end > start:
            for layer in self.layers:
                layer.keys[rows, ..., start:end, :].zero_()
                layer.values[rows, ..., start:end, :].zero_()

    @property
    def length(self) -> int:
        return self.layers[0].length

    @property
    def capacity(self) -> int:
        return self.layers[0].keys.shape[-2]

    @property
    def rows(self) -> int:
        return self.layers[0].keys.shape[0]

    def set_length(self, length: int) -> None:
        for layer in self.layers:
            layer.length = length

    def nbytes(self) -> int:
        return sum(l.keys.nbytes + l.values.nbytes for l in self.layers)

    def row_kv(self, row: int, columns: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Contiguous copies of one row's keys/values at `columns`: [heads, len, head_dim] per layer."""
        keys = [l.keys[row].index_select(1, columns).contiguous() for l in self.layers]
        values = [l.values[row].index_select(1, columns).contiguous() for l in self.layers]
        return keys, values


@dataclass(frozen=True)
class KVShape:
    """What a slab needs to know about the model: layers, kv heads, head size, dtype, device."""

    layers: int
    heads: int
    head_dim: int
    dtype: torch.dtype
    device: torch.device

    @classmethod
    def from_config(cls, config, dtype: torch.dtype, device: torch.device) -> "KVShape":
        text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
        heads = getattr(text, "num_key_value_heads", None) or text.num_attention_heads
        head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
        return cls(text.num_hidden_layers, heads, head_dim, dtype, torch.device(device))


@dataclass
class PrefixEntry:
    """The KV of a token sequence: per layer [heads, len(ids), head_dim]."""

    ids: torch.Tensor
    keys: list[torch.Tensor]
    values: list[torch.Tensor]

    @property
    def nbytes(self) -> int:
        return sum(k.nbytes + v.nbytes for k, v in zip(self.keys, self.values))


class PrefixCache:
    """An LRU of PrefixEntry bounded by bytes; lookup returns the entry with the longest common prefix."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[int, PrefixEntry] = OrderedDict()
        self._next_key = 0
        self.nbytes = 0
        self.hits = 0
        self.lookups = 0

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()
        self.nbytes = 0

    def fork(self) -> "PrefixCache":
        """A cache holding the same entries now, that goes its own way from here: inserts, drops and
        LRU order of either leave the other alone. Entries are shared, not copied (nothing changes an
        entry's tensors once inserted), so a fork costs no KV memory until it adds entries of its own
        (refine/grid.py runs each policy on a fork of the cache that holds round 0)."""
        other = PrefixCache(self.max_bytes)
        other._entries = OrderedDict(self._entries)
        other._next_key, other.nbytes = self._next_key, self.nbytes
        other.hits, other.lookups = self.hits, self.lookups
        return other

    @staticmethod
    def _common_prefix(a: torch.Tensor, b: torch.Tensor) -> int:
        n = min(a.numel(), b.numel())
        diff = (a[:n] != b[:n]).nonzero()
        return n if diff.numel() == 0 else int(diff[0, 0])

    def lookup(self, ids: list[int] | torch.Tensor) -> tuple[PrefixEntry | None, int]:
        """(entry, common prefix length) for the best entry, or (None, 0); marks the entry as used."""
        self.lookups += 1
        query = torch.as_tensor(ids, dtype=torch.long)
        best_key, best_len = None, 0
        for key, entry in self._entries.items():
            match = self._common_prefix(query, entry.ids)
            if match > best_len:
                best_key, best_len = key, match
        if best_key is None:
            return None, 0
        self.hits += 1
        self._entries.move_to_end(best_key)
        return self._entries[best_key], best_len

    def insert(self, ids: list[int], keys: list[torch.Tensor], values: list[torch.Tensor]) -> None:
        """Add a sequence; entries that are a prefix of it become redundant and are dropped."""
        entry = PrefixEntry(torch.as_tensor(ids, dtype=torch.long), keys, values)
        if entry.nbytes > self.max_bytes or entry.ids.numel() == 0:
            return
        for key, old in list(self._entries.items()):
            match = self._common_prefix(entry.ids, old.ids)
            if match == old.ids.numel():  # old is a prefix of the new entry (or equal)
                self._drop(key)
            elif match == entry.ids.numel():  # the new entry adds nothing
                self._entries.move_to_end(key)
                return
        self._entries[self._next_key] = entry
        self._next_key += 1
        self.nbytes += entry.nbytes
        while self.nbytes > self.max_bytes and self._entries:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: int) -> None:
        self.nbytes -= self._entries.pop(key).nbytes
