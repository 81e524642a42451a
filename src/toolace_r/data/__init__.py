"""Datasets: every source format becomes the one `Example` type.

    from toolace_r.data import load
    examples = load("bfcl:simple_python,multiple", limit=50)
    examples = load("toolace:data/toolace.json", skip_invalid=True); print(examples.skipped_summary())

Sources: "bfcl:<category>[,<category>...][@<dir>]", "acebench:<category>[,...]@<dir>[#zh]",
"apibank:level-1,level-2@<dir>", "toolace:<path or hub id>", "xlam:<path or hub id>", "jsonl:<path>". A new format is one new module with a `@register_loader("key")` generator, imported below.
"""
from toolace_r.data.example import GOLD_KINDS, Example, Gold, call_shape
from toolace_r.data.registry import LOADERS, DatasetError, Examples, iter_load, load, register_loader, split_source
from toolace_r.data import acebench, apibank, bfcl, jsonl, toolace, xlam  # noqa: E402,F401  (register the built-in loaders)
from toolace_r.data.bfcl import BFCL_CATEGORIES, BFCL_GROUPS, category_sizes
from toolace_r.data.jsonl import to_record, write_jsonl

__all__ = [
    "BFCL_CATEGORIES", "BFCL_GROUPS", "DatasetError", "Example", "Examples", "GOLD_KINDS", "Gold", "LOADERS",
    "call_shape", "category_sizes", "iter_load", "load", "register_loader", "split_source", "to_record",
    "write_jsonl",
]
