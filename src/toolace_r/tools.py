"""Tool schemas: every common shape (OpenAI, BFCL/ToolACE, xLAM) normalised into one `Tool` type.

CONTRACT: `Tool.parameters` is a JSON-schema-like object whose property types use BFCL's vocabulary
(string, integer, float, boolean, array, tuple, dict, any), since the checker needs the distinctions
JSON Schema lacks (float vs integer, tuple). `Tool.to_openai()` converts back to JSON Schema names.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Tool:
    name: str
    description: str = ""
    # {"type": "dict", "properties": {p: {"type": <bfcl type>, "description": ..., "enum"?: [...],
    #  "items"?: {...}, "properties"?: {...}, "default"?: ...}}, "required": [...]}
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "dict", "properties": {}, "required": []})
