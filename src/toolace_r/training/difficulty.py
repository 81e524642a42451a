"""Difficulty of each training item, measured with the model being trained.

Two signals (docs/method.md#difficulty): the solve rate s = correct/k over k sampled answers scored by
the checker, and optionally ToolACE's mean token NLL of the gold answer under the model. A model that
cannot write the call format yet has s = 0 everywhere, so the NLL is what the warm-up ranks by.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from toolace_r.calls import parse, render
from toolace_r.files import read_jsonl, write_jsonl
from toolace_r.engines.base import Engine, GenerationRequest, SamplingParams, common_prefix_len
from toolace_r.evaluation.benchmarks import score
from toolace_r.progress import progress_bar
from toolace_r.prompts import AnswerFormat, PromptConfig, answer_format, render_example, render_pair

from .config import SamplingConfig

EngineFactory = Callable[[str, SamplingConfig], Engine]


def gold_target(example: Any, no_call_text: str, fmt: AnswerFormat | None = None) -> str | None:
    """The text a training example teaches: its calls in the run's answer format (default pythonic),
    the no-call text, or None (not trainable: no single right answer, or calls the format cannot write,
    such as parallel calls under a one-call template)."""
    if example.gold.kind == "no_call":
        return example.gold.text or no_call_text
    calls = example.gold.answer_calls(example.tools)
    if calls is None:  # any_call, unscored: no single right answer to train on
        return None
    if not calls:
        return example.gold.text or no_call_text
    if fmt is None:
        return render(calls, "pythonic")
    try:
        return fmt.target(calls)
    except (ValueError, TypeError):
        return None


def default_engine_factory(model_dir: str, cfg: SamplingConfig) -> Engine:
    """The configured engine serving `model_dir` (hf loads it; openai/vllm options name the server)."""
    from toolace_r.engines import get_engine

    return get_engine(cfg.engine, **{"model": model_dir, **cfg.engine_options})


def sample_and_score(engine: Engine, tokenizer: Any, examples: Sequence[Any], cfg: SamplingConfig,
                     prompt_cfg: PromptConfig, seed: int, progress: bool = False,
                     offset: int = 0) -> list[dict[str, Any]]:
    """k answers per example, each with the checker's verdict, and the solve rate. Example i draws with
    seed + offset + i, so sampling a pool in slices (offset: the slice's start) gives the same answers."""
    requests = [
        GenerationRequest(
            prompt=render_example(tokenizer, ex, cfg=prompt_cfg),
            params=SamplingParams(n=cfg.k, temperature=cfg.temperature, top_p=cfg.top_p,
                                  max_new_tokens=cfg.max_new_tokens, stop=tuple(cfg.stop), seed=seed + offset + i),
        )
        for i, ex in enumerate(examples)
    ]
    results = engine.generate(requests, progress=progress)
    fmt = answer_format(tokenizer, prompt_cfg)
    decoder = fmt.parser if fmt.native else None  # native answers are scored as their parser reads them
    records = []
    for ex, result in zip(examples, results):
        samples = []
        for text in result.texts:
            verdict = score(ex, text, decoder)
            valid, error_type = bool(verdict.valid), verdict.error_type
            if valid and cfg.strict_no_call and ex.gold.kind == "no_call" and parse(text).format != "text":
                # BFCL counts any answer that decodes to no call as right, a broken call included; as a
                # training signal that would make "keep" rows of half-written calls. [ours]
                valid, error_type = False, "call_attempt"
            samples.append({"text": text, "valid": valid, "error_type": error_type})
        solved = sum(s["valid"] for s in samples)
        records.append({"id": ex.id, "category": ex.category, "samples": samples,
                        "solve_rate": solved / len(samples) if samples else 0.0})
    return records


def gold_nll(model: Any, tokenizer: Any, examples: Sequence[Any], targets: Sequence[str],
             prompt_cfg: PromptConfig, batch_size: int = 8, progress: bool = False) -> list[float]:
    """Mean token NLL of each gold completion given its prompt (one forward pass per batch).

    Rows are padded on the left so every completion ends the row; the model then computes logits for
    the last positions only (`logits_to_keep`), which spares a vocabulary-sized row per prompt token.
    """
    import inspect

    import torch

    pairs = [(p + c, len(c)) for p, c in gold_pairs(tokenizer, examples, targets, prompt_cfg)]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    can_keep = "logits_to_keep" in inspect.signature(model.forward).parameters
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]))  # similar lengths pad less
    values: dict[int, float] = {}
    bar = progress_bar(progress, len(pairs), "gold NLL")
    with torch.inference_mode():
        for b in range(0, len(order), batch_size):
            idx = order[b:b + batch_size]
            width = max(len(pairs[i][0]) for i in idx)
            ids = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                seq = pairs[i][0]
                ids[row, width - len(seq):] = torch.tensor(seq)
                mask[row, width - len(seq):] = 1
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            keep = max(pairs[i][1] for i in idx) + 1
            extra = {"logits_to_keep": keep} if can_keep else {}
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                           position_ids=positions.to(device), **extra).logits[:, -keep:].float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1)
            tok = torch.gather(logp, 2, ids[:, width - keep + 1:].to(device).unsqueeze(-1)).squeeze(-1)
            for row, i in enumerate(idx):
                n = pairs[i][1]  # logits at the last kept positions predict the row's last n tokens
                values[i] = float(-tok[row, tok.shape[1] - n:].mean())
            if bar is not None:
                bar.update(len(idx))
    if bar is not None:
        bar.close()
    return [values[i] for i in range(len(pairs))]


def gold_pairs(tokenizer: Any, examples: Sequence[Any], targets: Sequence[str],
               prompt_cfg: PromptConfig) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, gold completion ids) per example, split where the tokenisations of the prompt and of
    prompt + completion part (so the two together are exactly the tokenised whole)."""
    pairs = []
    for ex, target in zip(examples, targets):
        prompt, completion = render_pair(tokenizer, ex.tools, ex.messages, target, cfg=prompt_cfg)
        p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        full = tokenizer(prompt + completion, add_special_tokens=False)["input_ids"]
        start = max(common_prefix_len(p_ids, full), 1)  # the completion starts where the tokenisations part
        pairs.append((full[:start], full[start:]))
    return pairs


def gold_nll_engine(engine: Any, tokenizer: Any, examples: Sequence[Any], targets: Sequence[str],
                    prompt_cfg: PromptConfig) -> list[float]:
    """`gold_nll` computed by an engine that scores continuations (`HFEngine.score`): the same mean
    token NLL, and the engine's prefix cache keeps each prompt's KV for the sampling that follows."""
    pairs = gold_pairs(tokenizer, examples, targets, prompt_cfg)
    logprobs = engine.score([p for p, _ in pairs], [c for _, c in pairs])
    return [-sum(lp) / len(lp) for lp in logprobs]


def sample_and_nll(engine: Any, tokenizer: Any, examples: Sequence[Any], targets: Sequence[str],
                   cfg: SamplingConfig, prompt_cfg: PromptConfig, seed: int,
                   progress: bool = False) -> list[dict[str, Any]]:
    """`sample_and_score` plus each record's "gold_nll", with one prefill per prompt: slice by slice,
    the engine scores the gold answers (caching the prompts' KV), then samples from the cached prompts.
    Seeds follow the example's position in the whole list, so the slicing is fixed by the engine's
    batch size; the answers are drawn as `sample_and_score` draws them, though not bit for bit (KV
    served from the cache rounds differently from KV computed in the same pass)."""
    batch = getattr(getattr(engine, "config", None), "batch_size", None) or 16
    step = max(1, batch // max(1, cfg.k))  # one admission group of the engine per slice
    bar = progress_bar(progress, len(examples), "sample + gold NLL")
    records: list[dict[str, Any]] = []
    try:
        for lo in range(0, len(examples), step):
            part = list(examples[lo:lo + step])
            nlls = gold_nll_engine(engine, tokenizer, part, targets[lo:lo + step], prompt_cfg)
            got = sample_and_score(engine, tokenizer, part, cfg, prompt_cfg, seed=seed, offset=lo)
            for r, v in zip(got, nlls):
                r["gold_nll"] = v
            records += got
            if bar is not None:
                bar.update(len(part))
    finally:
        if bar is not None:
            bar.close()
    return records


def write_samples(path: str | Path, records: Sequence[dict[str, Any]]) -> None:
    write_jsonl(path, records)


def read_samples(path: str | Path) -> list[dict[str, Any]]:
    return read_jsonl(path)


def solve_rate_histogram(records: Sequence[dict[str, Any]], k: int) -> dict[str, int]:
    """How many items were solved j times out of k, as {"j/k": count}."""
    hist = {f"{j}/{k}": 0 for j in range(k + 1)}
    for r in records:
        j = sum(s["valid"] for s in r["samples"])
        key = f"{j}/{len(r['samples'])}"
        hist[key] = hist.get(key, 0) + 1
    return hist
