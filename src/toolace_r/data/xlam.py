"""xLAM function-calling rows (`Salesforce/xlam-function-calling-60k`): one Example per row.

A row is `{"id", "query", "tools": "<JSON list>", "answers": "<JSON list of {name, arguments}>"}`;
the two lists come as JSON strings on the hub (already-decoded lists are accepted too). An empty
answer list is a no-call example. Source: `xlam:<file or folder>` or `xlam:<hub id>` (default
`Salesforce/xlam-function-calling-60k`, a gated dataset).
"""
from __future__ import annotations

from typing import Any, Iterator, Union

from toolace_r.data.example import Example, call_shape
from toolace_r.data.gold import flag_problems, gold_from_call_objects
from toolace_r.data.records import BadJson, build_examples, expect, parse_json
from toolace_r.data.registry import DatasetError, register_loader
from toolace_r.tools import normalize_tools

DEFAULT_HUB_ID = "Salesforce/xlam-function-calling-60k"


@register_loader("xlam")
def load_xlam(spec: str, split: str = "train", streaming: bool | None = None
              ) -> Iterator[Union[Example, DatasetError]]:
    """streaming: read a hub dataset as it downloads (None: when it is large; see data/records.py)."""
    return build_examples(spec, lambda row, where, n: [_example(row, where, n)],
                          default_hub_id=DEFAULT_HUB_ID, split=split, streaming=streaming)


def _example(row: Any, where: str, n: int) -> Example:
    query = expect(row, "query", str, where)
    try:
        tools = normalize_tools(_decoded(row, "tools", where))
    except DatasetError:
        raise
    except ValueError as exc:
        raise DatasetError(where, str(exc), field="tools") from None
    gold = gold_from_call_objects(_decoded(row, "answers", where), where, "answers")
    row_id = row.get("id")
    ex_id = f"xlam-{row_id}" if row_id is not None else f"xlam-{n}"
    return flag_problems(Example(
        id=ex_id, messages=[{"role": "user", "content": query}], tools=tools, gold=gold,
        category=f"xlam_{call_shape(gold, len(tools))}", metadata={"source": where}))


def _decoded(row: dict[str, Any], field: str, where: str) -> Any:
    value = expect(row, field, (str, list), where)
    if isinstance(value, str):
        try:
            value = parse_json(value)
        except BadJson as exc:
            raise DatasetError(where, f"expected a JSON list in a string, but it is {exc}", field=field) from None
    return value
