"""The `hf` engine: batched generation with a local transformers model, on CPU or GPU.

`model.generate` spends most of a CPU step in Python machinery and re-copies its cache every token;
this engine runs a lean loop instead:

- requests are sorted by length and prefilled in groups with left padding (position ids come from
  the attention mask, so every row sees its true positions);
- the n samples of a request share one prefill: its KV rows are repeated n times;
- a prefix cache (kv.PrefixCache) keeps the KV of recent prompts and finished sequences, so a
  request that extends an earlier one (a refinement round: prompt + answer + new turn) prefills
  only the new tokens; matching is on token ids, longest common prefix, so a different
  tokenisation at the answer boundary only shortens the reuse, never breaks it;
- prefixes that several prompts of one call share (the system prompt and tool list of an
  evaluation, one prompt sent as several requests) are prefilled once, up front, and then count
  as cached tokens of each request: `prompt_tokens` is what was computed for the request itself;
- rows decode in one batch over a preallocated KV slab; finished rows stop costing once a
  quarter of the batch is done, and waiting requests are admitted into the freed room.

Greedy output equals one-at-a-time greedy output (fp32, up to float ties). The engine never sets
the torch thread count unless its config says so. After updating the model's weights in place
(a training step), cached KV is stale: the engine notices parameter version changes and clears
its prefix cache itself; `reset_prefix_cache()` does it by hand.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from toolace_r.progress import progress_bar
from toolace_r.precision import Choice

from .base import Completion, Engine, EngineError, GenerationRequest, GenerationResult, common_prefix_len
from .batch import DecodeBatch, Row, assemble
from .kv import KVShape, PrefixCache, SlabCache
from .sampling import StopChecker, make_generator, next_tokens

_FREE_PADDING = 1024  # a prefill group this small (padded tokens) may pad as it likes

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
           "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}


@dataclass
class HFEngineConfig:
    """Settings of the hf engine.

    model: a name known to toolace_r.models or a checkpoint path (ignored when a model is passed in).
    batch_size: most sequences decoding at once (the n samples of a request count n).
    prefill_tokens: most padded prompt tokens in one prefill forward (bounds activation memory).
    prefill_padding: a prefill group closes when padding would exceed this share of its real tokens.
    prefix_cache_mb: byte budget of the prefix cache; 0 turns prefix reuse off.
    min_prefix_reuse: shorter common prefixes are recomputed rather than copied.
    min_shared_prefix: prompts of one call that share at least this many leading tokens get that
        prefix prefilled once, up front (needs the prefix cache).
    seed: seed of requests that carry none (request i of a call gets seed + i).
    decode_chunk: columns added to the KV slab at a time while decoding.
    """

    model: str | None = None
    dtype: str = "auto"
    device: str = "auto"
    batch_size: int = 16
    prefill_tokens: int = 4096
    prefill_padding: float = 0.15
    prefix_cache_mb: int = 1024
    min_prefix_reuse: int = 4
    min_shared_prefix: int = 32
    seed: int = 0
    num_threads: int | None = None
    add_special_tokens: bool = False
    skip_special_tokens: bool = True
    decode_chunk: int = 128

    def __post_init__(self) -> None:
        if self.dtype != "auto" and self.dtype not in _DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; known: auto, {', '.join(_DTYPES)}")
        if self.batch_size < 1 or self.prefill_tokens < 1 or self.decode_chunk < 1:
            raise ValueError("batch_size, prefill_tokens and decode_chunk must be >= 1")


@dataclass
class _Pending:
    """A request waiting to be prefilled."""

    index: int
    request: GenerationRequest
    ids: list[int]
    seed: int


def _resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class HFEngine(Engine):
    """Generation with a transformers causal LM; see the module docstring."""

    name = "hf"

    def __init__(
        self, config: HFEngineConfig | None = None, *, model: Any = None, tokenizer: Any = None, **overrides: Any
    ) -> None:
        cfg = config or HFEngineConfig()
        if isinstance(model, str):  # a name or path is config, not a model object
            overrides["model"], model = model, None
        if overrides:
            cfg = HFEngineConfig(**{**cfg.__dict__, **overrides})
        self.config = cfg
        self.precision: Choice | None = None
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        if model is None:
            if cfg.model is None:
                raise ValueError("the hf engine needs a model: set `model` (a name or a path)")
            from toolace_r.models import load_model, pick_dtype
            from toolace_r.precision import log_choice

            # "auto": bf16 where the device multiplies it natively, else fp32 (toolace_r/precision.py).
            dtype = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}.get(cfg.dtype, cfg.dtype)
            self.precision = pick_dtype(dtype, _resolve_device(cfg.device))
            log_choice(f"hf engine, model {cfg.model}", self.precision)
            model, loaded_tokenizer = load_model(cfg.model, dtype=self.precision.dtype, device=cfg.device)
            tokenizer = tokenizer or loaded_tokenizer
        elif cfg.dtype != "auto" or cfg.device != "auto":
            model = model.to(
                device=_resolve_device(cfg.device) if cfg.device != "auto" else None,
                dtype=_DTYPES[cfg.dtype] if cfg.dtype != "auto" else None,
            )
        if tokenizer is None:
            raise ValueError("the hf engine needs a tokenizer along with a model object")
        self.model, self.tokenizer = model, tokenizer  # Engine.tokenizer: the model's own
        param = next(model.parameters())
        if self.precision is None:
            self.precision = Choice(str(param.dtype).removeprefix("torch."), "the dtype of the model object given")
        self.shapes = KVShape.from_config(model.config, param.dtype, param.device)
        _check_full_attention(model.config)
        self._cache_kw, self._has_logits_to_keep = _forward_kwargs(model)
        self.eos_ids = _eos_ids(model, tokenizer)
        pad = getattr(tokenizer, "pad_token_id", None)
        self.pad_id = pad if pad is not None else (min(self.eos_ids) if self.eos_ids else 0)
        self.max_context = getattr(model.config, "max_position_embeddings", None)  # Engine.max_context
        self.prefix_cache = PrefixCache(cfg.prefix_cache_mb * 2**20)
        self._weights_version = self._param_versions()

    # --- public API --------------------------------------------------------------------------

    def generate(
        self, requests: Sequence[GenerationRequest], progress: bool = False
    ) -> list[GenerationResult]:
        pending = [self._pending(i, r) for i, r in enumerate(requests)]
        results = [[None] * r.params.n for r in requests]
        if self._param_versions() != self._weights_version:
            self.reset_prefix_cache()
            self._weights_version = self._param_versions()
        # Longest first: similar lengths share a prefill group, and peak memory shows up early.
        pending.sort(key=lambda p: len(p.ids), reverse=True)
        bar = progress_bar(progress, sum(r.params.n for r in requests), "generate", "seq")
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                self._warm_shared_prefixes(pending)
                self._run(pending, results, bar)
        finally:
            self.model.train(was_training)
            if bar is not None:
                bar.close()
        return [GenerationResult(list(c)) for c in results]

    def score(self, prompts: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]],
              progress: bool = False) -> list[list[float]]:
        """The log-probability of each continuation token given its prompt and the tokens before it:
        one forward pass over prompt + continuation per item, batched like prefill. The prefix cache
        serves what it holds and keeps each item's KV afterwards, so sampling the same prompts next
        prefills almost nothing (the training loop scores gold answers this way before it samples)."""
        if len(prompts) != len(continuations):
            raise ValueError(f"score: {len(prompts)} prompts for {len(continuations)} continuations")
        items = []
        for i, (p, c) in enumerate(zip(prompts, continuations)):
            p, c = list(p), list(c)
            if not p or not c:
                raise ValueError(f"score: item {i} needs a non-empty prompt and continuation")
            if self.max_context and len(p) + len(c) > self.max_context:
                raise ValueError(f"score: item {i} has {len(p) + len(c)} tokens, more than the model's context "
                                 f"of {self.max_context}")
            items.append((i, p + c, len(c)))
        if self._param_versions() != self._weights_version:
            self.reset_prefix_cache()
            self._weights_version = self._param_versions()
        items.sort(key=lambda x: len(x[1]), reverse=True)
        out: list[list[float]] = [[] for _ in prompts]
        bar = progress_bar(progress, len(items), "score", "seq")
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                while items:
                    group, widest = [], 0
                    while items:
                        i, ids, n = items[0]
                        entry, reuse = self._lookup(ids)
                        reuse = min(reuse, len(ids) - n - 1)  # the prediction of the first token must run
                        if reuse < self.config.min_prefix_reuse:
                            entry, reuse = None, 0
                        width = max(widest, len(ids) - reuse)
                        if group and width * (len(group) + 1) > self.config.prefill_tokens:
                            break
                        group.append((items.pop(0), entry, reuse))
                        widest = width
                    keep = max(n for (_, _, n), _, _ in group) + 1
                    batch, logits = self._prefill([(ids, e, r) for (_, ids, _), e, r in group], 0, keep=keep)
                    logp = torch.log_softmax(logits.float(), dim=-1)
                    for slot, ((i, ids, n), _, _) in enumerate(group):
                        target = torch.tensor(ids[-n:], dtype=torch.long, device=logp.device)
                        # row logits are right-aligned: column -(n+1) predicts the continuation's first token
                        rows = logp[slot, keep - n - 1: keep - 1]
                        out[i] = rows.gather(1, target[:, None]).squeeze(1).tolist()
                        if self.prefix_cache.max_bytes > 0:
                            self._remember(ids, batch, slot)
                    if bar is not None:
                        bar.update(len(group))
        finally:
            self.model.train(was_training)
            if bar is not None:
                bar.close()
        return out

    def reset_prefix_cache(self) -> None:
        """Forget cached KV (call after changing the model's weights by other means than in place)."""
        self.prefix_cache.clear()

    def close(self) -> None:
        self.prefix_cache.clear()

    # --- the scheduling loop -----------------------------------------------------------------

    def _run(self, pending: list[_Pending], results: list[list], bar) -> None:
        cfg = self.config
        batch: DecodeBatch | None = None
        admit_room = max(1, cfg.batch_size // 4)
        while pending or batch is not None:
            alive = batch.alive if batch is not None else []
            free = cfg.batch_size - len(alive)
            if pending and (not alive or (free >= admit_room and pending[0].request.params.n <= free)):
                group = self._take_group(pending, free if alive else max(free, pending[0].request.params.n))
                batch = self._admit(group, batch, alive, results, bar)
                continue
            self._step(batch, results, bar)
            alive = batch.alive
            if not alive:
                batch = None
            elif len(batch.rows) - len(alive) >= max(1, len(batch.rows) // 4):
                batch = assemble([(batch, alive)], self.shapes, self._headroom(batch, alive))

    def _admit(self, group, batch: DecodeBatch | None, alive: list[int], results, bar) -> DecodeBatch | None:
        """Prefill a group, sample each row's first token and merge the rows into the running batch."""
        rows = [self._row(p, j, reuse) for p, _, reuse in group for j in range(p.request.params.n)]
        index = [i for i, (p, _, _) in enumerate(group) for _ in range(p.request.params.n)]
        budget = max(r.params.max_new_tokens for r in rows)
        new, logits = self._prefill([(p.ids, e, reuse) for p, e, reuse in group], min(budget, self.config.decode_chunk))
        new.positions = new.mask.sum(-1)
        if self.prefix_cache.max_bytes > 0:
            for i, (p, _, _) in enumerate(group):
                self._remember(p.ids, new, i)
        first = next_tokens(logits[index], [r.params for r in rows], [r.generator for r in rows])
        for r, t in zip(rows, first.tolist()):
            self._append(r, t)
        keep = [k for k, r in enumerate(rows) if not r.done]
        for k, r in enumerate(rows):
            if r.done:
                self._finish(r, new, index[k], results, bar)
        if batch is None and keep == list(range(len(group))) and index == keep:
            new.rows, new.last = rows, first  # one sample per prompt, nothing running: no copy needed
            return new
        parts = [(batch, alive)] if batch is not None else []
        merged = assemble(parts + [(new, [index[k] for k in keep])], self.shapes, self.config.decode_chunk)
        if merged is not None and keep:
            merged.rows[-len(keep):] = [rows[k] for k in keep]
            merged.last[-len(keep):] = first[keep]
        return merged

    def _take_group(self, pending: list[_Pending], room: int) -> list[tuple[_Pending, Any, int]]:
        """Pop the requests of the next prefill group, each with its prefix-cache entry and reuse."""
        group, rows, widest, real = [], 0, 0, 0
        while pending:
            p = pending[0]
            entry, reuse = self._lookup(p.ids)
            width = max(widest, len(p.ids) - reuse)
            padded = width * (len(group) + 1)
            # Padding costs as much compute as real tokens: close the group rather than pad it much
            # (small groups may pad freely, their forward is cheap either way).
            too_padded = padded > _FREE_PADDING and padded > (1 + self.config.prefill_padding) * (
                real + len(p.ids) - reuse)
            if group and (rows + p.request.params.n > room or padded > self.config.prefill_tokens or too_padded):
                break
            group.append((pending.pop(0), entry, reuse))
            rows += p.request.params.n
            widest, real = width, real + len(p.ids) - reuse
        return group

    def _lookup(self, ids: list[int]):
        if self.prefix_cache.max_bytes <= 0:
            return None, 0
        entry, match = self.prefix_cache.lookup(ids)
        reuse = min(match, len(ids) - 1)  # at least one token must run to produce the next logits
        if entry is None or reuse < self.config.min_prefix_reuse:
            return None, 0
        return entry, reuse

    def _warm_shared_prefixes(self, pending: list[_Pending]) -> None:
        """Prefill once the prefixes that several prompts share (a system prompt, one prompt's n
        copies across requests) and cache them, so each prompt then prefills only its own part."""
        if self.prefix_cache.max_bytes <= 0 or len(pending) < 2:
            return
        order = sorted(pending, key=lambda p: p.ids)
        prefixes, run = [], None
        for a, b in zip(order, order[1:]):
            common = common_prefix_len(a.ids, b.ids)
            common = min(common, len(a.ids) - 1, len(b.ids) - 1)
            if common >= self.config.min_shared_prefix:
                run = common if run is None else min(run, common)
            else:
                if run is not None:
                    prefixes.append(a.ids[:run])
                run = None
        if run is not None:
            prefixes.append(order[-1].ids[:run])
        todo = [ids for ids in prefixes if self._lookup(ids + [-1])[1] < len(ids)]
        todo.sort(key=len, reverse=True)
        while todo:
            group, widest = [], 0
            while todo and (not group or max(widest, len(todo[0])) * (len(group) + 1) <= self.config.prefill_tokens):
                ids = todo.pop(0)
                entry, reuse = self._lookup(ids)
                group.append((ids, entry, reuse))
                widest = max(widest, len(ids) - reuse)
            warm, _ = self._prefill(group, 0)
            for i, (ids, _, _) in enumerate(group):
                self._remember(ids, warm, i)

    def _prefill(self, items: list[tuple[list[int], Any, int]], headroom: int,
                 keep: int = 1) -> tuple[DecodeBatch, torch.Tensor]:
        """Run the uncached tokens of each (ids, cache entry, reused length); a batch (rows unset) and
        the last logits [items, vocab] ([items, keep, vocab] with keep > 1: the last `keep` positions)."""
        g = len(items)
        past = max(reuse for _, _, reuse in items)
        width = max(len(ids) - reuse for ids, _, reuse in items)
        dev = self.shapes.device
        slab = SlabCache.allocate(self.shapes, g, past + width + headroom)
        mask = torch.zeros(g, past + width + headroom, dtype=torch.long, device=dev)
        input_ids = torch.full((g, width), self.pad_id, dtype=torch.long, device=dev)
        for i, (ids, entry, reuse) in enumerate(items):
            slab.zero_columns(i, 0, past - reuse)
            if reuse:
                for layer, k, v in zip(slab.layers, entry.keys, entry.values):
                    layer.keys[i, :, past - reuse : past].copy_(k[:, :reuse])
                    layer.values[i, :, past - reuse : past].copy_(v[:, :reuse])
                mask[i, past - reuse : past] = 1
            new = ids[reuse:]
            input_ids[i, width - len(new) :] = torch.tensor(new, dtype=torch.long)
            mask[i, past + width - len(new) : past + width] = 1
        slab.set_length(past)
        position_ids = (mask[:, : past + width].cumsum(-1) - 1).clamp(min=0)[:, past:]
        logits = self._forward(input_ids, mask[:, : past + width], position_ids, slab, keep)
        return DecodeBatch(slab, mask, mask.sum(-1), input_ids[:, -1], [None] * g), logits

    def _step(self, batch: DecodeBatch, results: list[list], bar) -> None:
        """One decode step for every row of the batch."""
        if batch.length + 1 > batch.cache.capacity:
            every = list(range(len(batch.rows)))
            grown = assemble([(batch, every)], self.shapes, self._headroom(batch, batch.alive))
            batch.cache, batch.mask = grown.cache, grown.mask
        length = batch.length
        batch.mask[:, length] = 1
        logits = self._forward(
            batch.last[:, None], batch.mask[:, : length + 1], batch.positions[:, None], batch.cache
        )
        batch.positions += 1
        tokens = next_tokens(logits, [r.params for r in batch.rows], [r.generator for r in batch.rows])
        batch.last = tokens
        for i, (row, t) in enumerate(zip(batch.rows, tokens.tolist())):
            if row.done:
                continue
            self._append(row, t)
            if row.done:
                self._finish(row, batch, i, results, bar)

    def _headroom(self, batch: DecodeBatch, alive: list[int]) -> int:
        """Columns to allocate ahead: the chunk, or less when every alive row is nearly done."""
        left = max((batch.rows[i].params.max_new_tokens - len(batch.rows[i].generated) for i in alive), default=1)
        return max(1, min(self.config.decode_chunk, left))

    def _forward(self, input_ids, mask, position_ids, cache, keep: int = 1) -> torch.Tensor:
        """Logits of the last position, [rows, vocab] (of the last `keep` positions with keep > 1)."""
        kwargs = {self._cache_kw: cache, "use_cache": True}
        if self._has_logits_to_keep:
            kwargs["logits_to_keep"] = keep
        out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=position_ids, **kwargs)
        return out.logits[:, -1, :] if keep == 1 else out.logits[:, -keep:, :]

    # --- rows --------------------------------------------------------------------------------

    def _pending(self, index: int, request: GenerationRequest) -> _Pending:
        if request.prompt_ids is not None:
            ids = list(request.prompt_ids)
        elif request.prompt is not None:
            ids = self.tokenizer(request.prompt, add_special_tokens=self.config.add_special_tokens)["input_ids"]
        else:
            raise ValueError("the hf engine needs a rendered prompt or prompt_ids (messages alone are not enough)")
        if not ids:
            bos = getattr(self.tokenizer, "bos_token_id", None)
            if bos is None:
                raise ValueError(f"request {index} has an empty prompt and the tokenizer has no BOS token")
            ids = [bos]
        if self.max_context and len(ids) >= self.max_context:
            raise ValueError(
                f"request {index}: prompt of {len(ids)} tokens does not fit the model's context of {self.max_context}"
            )
        seed = request.params.seed if request.params.seed is not None else self.config.seed + index
        return _Pending(index, request, ids, seed)

    def _row(self, p: _Pending, sample: int, reuse: int) -> Row:
        params = p.request.params
        gen = None if params.greedy else make_generator(p.seed, sample, self.shapes.device)
        stopper = StopChecker(self.tokenizer, params.stop, self.config.skip_special_tokens)
        first = sample == 0  # the shared prefill is counted once, on the first sample
        return Row(
            request=p.index, sample=sample, prompt_ids=p.ids, params=params, generator=gen, stopper=stopper,
            prompt_tokens=len(p.ids) - reuse if first else 0, cached_tokens=reuse if first else len(p.ids),
        )

    def _append(self, row: Row, token: int) -> None:
        row.generated.append(token)
        if token in self.eos_ids or row.stopper.hit(row.generated):
            row.finish_reason = "stop"
        elif len(row.generated) >= row.params.max_new_tokens:
            row.finish_reason = "length"
        elif self.max_context and len(row.prompt_ids) + len(row.generated) >= self.max_context:
            row.finish_reason = "length"

    def _finish(self, row: Row, batch: DecodeBatch, slot: int, results: list[list], bar) -> None:
        ids = row.generated
        if ids and ids[-1] in self.eos_ids:
            ids = ids[:-1]
        text = self.tokenizer.decode(ids, skip_special_tokens=self.config.skip_special_tokens)
        if row.finish_reason == "stop" and row.stopper.stop:
            text = row.stopper.trim(text)
        results[row.request][row.sample] = Completion(
            text=text, token_ids=list(row.generated), finish_reason=row.finish_reason,
            prompt_tokens=row.prompt_tokens, cached_tokens=row.cached_tokens,
            completion_tokens=len(row.generated),
        )
        # The last sampled token was never fed, so the slab holds KV for prompt + generated[:-1].
        if self.prefix_cache.max_bytes > 0 and len(row.generated) > 1:
            self._remember(row.prompt_ids + row.generated[:-1], batch, slot)
        if bar is not None:
            bar.update(1)

    def _remember(self, ids: list[int], batch: DecodeBatch, slot: int) -> None:
        columns = batch.kv_columns(slot)
        if columns.numel() != len(ids):  # bookkeeping mismatch: skip rather than cache wrong KV
            return
        keys, values = batch.cache.row_kv(slot, columns)
        self.prefix_cache.insert(ids, keys, values)

    def _param_versions(self) -> int:
        # In-place updates (optimizer steps, load_state_dict) bump each tensor's version counter.
        return sum(p._version for p in self.model.parameters())


# --- model introspection -----------------------------------------------------------------------

def _base_model(model):
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _forward_kwargs(model) -> tuple[str, bool]:
    """The keyword the model's forward takes its cache by (transformers 5 renamed it) and logits_to_keep."""
    params = inspect.signature(type(_base_model(model)).forward).parameters
    return ("cache" if "cache" in params else "past_key_values"), "logits_to_keep" in params


def _check_full_attention(config) -> None:
    text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    kinds = set(getattr(text, "layer_types", None) or ["full_attention"])
    if getattr(text, "sliding_window", None) and getattr(text, "use_sliding_window", True):
        kinds.add("sliding_attention")
    if kinds != {"full_attention"}:
        raise EngineError(
            f"the hf engine supports full-attention decoders only; this model has {sorted(kinds)} layers "
            "(use --engine vllm or openai for it)"
        )


def _eos_ids(model, tokenizer) -> set[int]:
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), model.config, tokenizer):
        value = getattr(source, "eos_token_id", None)
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    return ids
