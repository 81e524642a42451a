"""What training feeds a model, shown before any training runs (`toolace-r data render`).

Each row is built by the same code the training loop uses: the pool (`items.load_items`: gold targets in
the run's answer format, round-robin over categories), the corpus builder (`corpus.build_corpus`) and the
tokenisation TRL is handed (`sft.tokenize_row`), so the strings and token counts printed are the ones
training computes with. Refinement rows need the model's own answers: with `refine_rows` the model answers
each item once (greedy, the configured engine) and every answer becomes a fix row (wrong) or a keep row
(right), as a training iteration would make them, without the corpus's share cap.
"""
from __future__ import annotations

from typing import Any, Iterator

from toolace_r.prompts import PromptConfig, answer_format


def describe_format(tokenizer: Any, prompt_cfg: PromptConfig) -> str:
    """One line for a person: the resolved answer format and what it means for this tokenizer."""
    fmt = answer_format(tokenizer, prompt_cfg)
    if not fmt.native:
        return "answer format: pythonic (ToolACE's instruction and the tool list in the system prompt)"
    return (f"answer format: native (the chat template's own tool calls, parsed as {fmt.parser}; "
            f"{'several calls per answer' if fmt.parallel else 'one call per answer'})")


def render_rows(source: str, model: str, prompt_cfg: PromptConfig | None = None, *, limit: int | None = None,
                refine_rows: bool = False, no_call_text: str | None = None, data_dir: str | None = None,
                engine: Any = "hf", engine_options: dict[str, Any] | None = None,
                max_new_tokens: int = 128) -> tuple[str, int, Iterator[dict[str, Any]]]:
    """(format line, items skipped, rows): each row {"id", "kind", "prompt", "completion", "prompt_tokens",
    "completion_tokens"}, per item its SFT row, then (refine_rows) its fix/keep row. engine: an engine
    name (built for `model` with `engine_options`) or an `Engine` to answer with."""
    from transformers import AutoTokenizer

    from toolace_r.models import local_model_dir

    from .config import CorpusConfig, DataConfig
    from .corpus import build_corpus
    from .items import load_items
    from .sft import tokenize_row

    cfg = prompt_cfg or PromptConfig()
    model_dir = local_model_dir(model)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    line = describe_format(tokenizer, cfg)
    text = DataConfig().no_call_text if no_call_text is None else no_call_text
    examples, targets, skipped = load_items(source, limit, text, data_dir, tokenizer=tokenizer, prompt_cfg=cfg)
    records: dict[str, dict[str, Any]] = {}
    if refine_rows and examples:
        records = _greedy_records(model_dir, tokenizer, examples, cfg, engine, engine_options or {}, max_new_tokens)
    corpus_cfg = CorpusConfig(refine_share=1.0 if refine_rows else 0.0)
    by_id = {ex.id: ex for ex in examples}

    def rows() -> Iterator[dict[str, Any]]:
        for ex in examples:  # one item at a time: the first rows print before the last are rendered
            for row in build_corpus(by_id, records, [ex.id], targets, tokenizer, corpus_cfg, cfg):
                ids = tokenize_row(tokenizer, row)
                completion = sum(ids["completion_mask"])
                yield {"id": row["id"], "kind": row["kind"], "prompt": row["prompt"], "completion": row["completion"],
                       "prompt_tokens": len(ids["input_ids"]) - completion, "completion_tokens": completion}

    return line, skipped, rows()


def _greedy_records(model_dir: str, tokenizer: Any, examples: list, cfg: PromptConfig, engine: Any,
                    engine_options: dict[str, Any], max_new_tokens: int) -> dict[str, dict[str, Any]]:
    from toolace_r.engines import get_engine

    from .config import SamplingConfig
    from .difficulty import sample_and_score

    sampling = SamplingConfig(k=1, temperature=0.0, max_new_tokens=max_new_tokens)
    if not isinstance(engine, str):
        records = sample_and_score(engine, tokenizer, examples, sampling, cfg, seed=0)
    else:
        with get_engine(engine, model=model_dir, **engine_options) as eng:
            records = sample_and_score(eng, tokenizer, examples, sampling, cfg, seed=0, progress=True)
    return {r["id"]: r for r in records}
