"""The training corpus of one iteration: SFT examples plus self-refinement examples.

Each row is {"prompt", "completion", "kind", "id", "conversation"}: the strings rendered by
prompts.training_pair, so the loss can go on the completion alone, and the same pair as TRL's conversational
row (from the same call), which `export_corpus` (`toolace-r data convert --corpus`) writes out for
other trainers. Refinement rows continue the conversation with the model's own sampled answer y_prev
(previous_answers=(y_prev,)):
- fix:  y_prev wrong -> the gold answer;
- keep: y_prev right -> y_prev byte for byte. A re-serialised gold would teach the model to keep
  rewriting right answers, and the refine loop's stop test would never fire (docs/method.md#corpus).
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, Iterator, Sequence

from toolace_r.data.records import json_lines
from toolace_r.data.registry import DatasetError
from toolace_r.files import read_jsonl, write_jsonl
from toolace_r.prompts import PromptConfig, training_pair
from toolace_r.schema_check import answer_problems, feedback_text

from .config import CorpusConfig


def build_corpus(examples: dict[str, Any], records: dict[str, dict[str, Any]], train_ids: Sequence[str],
                 targets: dict[str, str], tokenizer: Any, cfg: CorpusConfig,
                 prompt_cfg: PromptConfig) -> list[dict[str, Any]]:
    """SFT rows for every item in `train_ids`, then fix/keep rows from its samples (capped by ratio)."""
    sft: list[dict[str, Any]] = []
    refine: list[dict[str, Any]] = []
    for item in train_ids:
        ex, target = examples[item], targets[item]
        if cfg.sft:
            sft.append(_row(tokenizer, ex, target, (), prompt_cfg, (), "sft", item))
        fixes = keeps = 0
        seen: set[str] = set()
        samples = list(records.get(item, {}).get("samples", []))
        findings = {s["text"]: _feedback(ex, s["text"], cfg) for s in samples}
        if cfg.feedback == "schema":  # wrong answers the check can explain first (a stable sort)
            samples.sort(key=lambda s: not findings[s["text"]])
        for sample in samples:
            text = sample["text"]
            if not text.strip() or text in seen or len(text) > cfg.max_previous_chars:
                continue
            seen.add(text)
            if sample["valid"] and keeps < cfg.max_keep_per_item:
                kind, goal = "keep", text  # the model's own right answer, unchanged
                keeps += 1
            elif not sample["valid"] and fixes < cfg.max_fix_per_item:
                kind, goal = "fix", target
                fixes += 1
            else:
                continue
            refine.append(_row(tokenizer, ex, goal, (text,), prompt_cfg, (findings[text],), kind, item))
    return sft + _cap_refine(refine, len(sft), cfg)


def _row(tokenizer: Any, ex: Any, goal: str, previous: tuple[str, ...], prompt_cfg: PromptConfig,
         feedback: tuple, kind: str, item: str) -> dict[str, Any]:
    prompt, completion, conversation = training_pair(tokenizer, ex.tools, ex.messages, goal, previous_answers=previous,
                                                     cfg=prompt_cfg, feedback=feedback)
    return {"prompt": prompt, "completion": completion, "kind": kind, "id": item, "conversation": conversation}


def _feedback(example: Any, text: str, cfg: CorpusConfig) -> str | None:
    """What the refine turn after `text` says besides the instruction (the `checked` policy's feedback)."""
    if cfg.feedback != "schema":
        return None
    return feedback_text(answer_problems(text, example.tools))


def _cap_refine(refine: list[dict[str, Any]], n_sft: int, cfg: CorpusConfig) -> list[dict[str, Any]]:
    """Keep at most `refine_share` of the corpus as refinement rows (a seeded draw, in original order)."""
    share = cfg.refine_share
    if share <= 0:
        return []
    if share >= 1 or n_sft == 0:
        return refine
    cap = int(share / (1 - share) * n_sft)
    if len(refine) <= cap:
        return refine
    keep = set(random.Random(cfg.seed).sample(range(len(refine)), cap))
    return [row for i, row in enumerate(refine) if i in keep]


def corpus_counts(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    counts = {"sft": 0, "fix": 0, "keep": 0}
    for row in rows:
        counts[row["kind"]] = counts.get(row["kind"], 0) + 1
    return counts


def write_corpus(path: str | Path, rows: Sequence[dict[str, Any]]) -> None:
    write_jsonl(path, rows)


def read_corpus(path: str | Path) -> list[dict[str, Any]]:
    return read_jsonl(path)


# --- export ----------------------------------------------------------------------------------------

CORPUS_FILE = "corpus.jsonl"


def corpus_path(src: str | os.PathLike) -> Path:
    """`src` itself, or the corpus.jsonl inside it when it is a folder (an iteration such as runs/x/iter_1)."""
    path = Path(src).expanduser()
    if path.is_dir():
        inside = path / CORPUS_FILE
        if not (inside.exists() or inside.is_symlink()):
            raise FileNotFoundError(f"{path}: no {CORPUS_FILE} in this folder; give a corpus file or an "
                                    "iteration folder that has one (e.g. runs/x/iter_1)")
        return inside
    return path


def export_rows(src: str | os.PathLike, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """The TRL conversational rows of a corpus: {"id", "kind", "prompt", "completion"} plus "tools" and
    "chat_template_kwargs" where the conversation has them. DatasetError (a ValueError) naming file and
    line for a line that is not JSON or a row without a usable "conversation"."""
    if limit is not None and limit <= 0:
        return
    n = 0
    for item in json_lines(corpus_path(src)):
        if isinstance(item, DatasetError):
            raise item
        where, rec = item
        yield _export_row(rec, where)
        n += 1
        if limit is not None and n >= limit:
            return


def _export_row(rec: Any, where: str) -> dict[str, Any]:
    if not isinstance(rec, dict):
        raise DatasetError(where, f"expected a corpus row (an object), got {type(rec).__name__}")
    conv = rec.get("conversation")
    if conv is None:
        # Rows from before pair_conversation: the strings alone cannot be turned back into messages.
        raise DatasetError(where, "no 'conversation' (a corpus written by an older toolace-r); rebuild the "
                                  f"corpus: delete {CORPUS_FILE} and rerun `toolace-r train --resume`",
                           field="conversation")
    if not (isinstance(conv, dict) and isinstance(conv.get("prompt"), list)
            and isinstance(conv.get("completion"), list)):
        raise DatasetError(where, 'expected {"prompt": [messages], "completion": [messages], ...}',
                           field="conversation")
    row: dict[str, Any] = {"id": rec.get("id"), "kind": rec.get("kind"),
                           "prompt": conv["prompt"], "completion": conv["completion"]}
    for key in ("tools", "chat_template_kwargs"):
        if key in conv:
            row[key] = conv[key]
    return row


def export_corpus(src: str | os.PathLike, out: str | os.PathLike, limit: int | None = None) -> int:
    """Write a corpus's rows as TRL conversational prompt-completion JSON lines (what SFTTrainer and
    LLaMA-Factory's OpenAI-style sharegpt reader take), atomically; returns how many were written.
    Every row is checked before `out` is touched, so an error leaves it as it was."""
    rows = list(export_rows(src, limit))
    write_jsonl(out, rows)
    return len(rows)
