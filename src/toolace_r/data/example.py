"""The one `Example` type every dataset loader yields.

CONTRACT:
- `messages` are OpenAI-style dicts ({"role": "system"|"user"|"assistant"|"tool", "content": str}),
  the context *before* the answer to predict (no system prompt carrying the tools: prompts.py adds it).
- `tools` the normalised tool list.
- `gold` what a right answer is: see `Gold`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from toolace_r.calls import ToolCall
from toolace_r.tools import Tool


@dataclass
class Gold:
    """kind:
    - "calls":   exact calls expected (ToolACE, xLAM, jsonl); `calls` set.
    - "bfcl":    BFCL answer key: `bfcl` is the ground_truth list [{func_name: {param: [acceptable values]}}].
    - "no_call": a non-call answer is right (irrelevance, missing parameters); `text` may hold the gold text.
    - "any_call": at least one call is right, arguments unchecked (BFCL live_relevance).
    """

    kind: str
    calls: list[ToolCall] | None = None
    bfcl: list[dict[str, Any]] | None = None
    text: str | None = None


@dataclass
class Example:
    id: str
    messages: list[dict[str, Any]]
    tools: list[Tool]
    gold: Gold
    category: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
