"""The loader registry: `load("bfcl:simple_python")` picks a loader by the prefix before the colon.

A loader is a generator registered with `@register_loader("key")`. It yields `Example`s and, for a bad
record, a `DatasetError` *value* instead of raising it: the registry then decides, from
`skip_invalid`, whether that error stops the load or is counted and skipped. One bad line thus never
costs the records after it, and every loader reports errors the same way.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Iterator, Union

from toolace_r.data.example import Example

log = logging.getLogger(__name__)


class DatasetError(ValueError):
    """A malformed record: the message names the file (or hub id), line or record, field and expectation."""

    def __init__(self, where: str, message: str, field: str | None = None):
        self.where = where
        self.field = field
        self.detail = message
        prefix = f"{where}: field {field!r}: " if field else f"{where}: "
        super().__init__(prefix + message)


LoaderFn = Callable[..., Iterator[Union[Example, DatasetError]]]
LOADERS: dict[str, LoaderFn] = {}


def register_loader(key: str) -> Callable[[LoaderFn], LoaderFn]:
    """Decorator: `@register_loader("xlam")` makes `load("xlam:...")` call the function with the rest."""
    def wrap(fn: LoaderFn) -> LoaderFn:
        if key in LOADERS and LOADERS[key] is not fn:
            raise ValueError(f"a dataset loader named {key!r} is already registered")
        LOADERS[key] = fn
        return fn
    return wrap


class Examples(list):
    """A list of examples that also says which records were skipped (`skipped`: their errors)."""

    def __init__(self, items=(), skipped: list[DatasetError] | None = None):
        super().__init__(items)
        self.skipped: list[DatasetError] = list(skipped or [])

    def skipped_summary(self, show: int = 5) -> str:
        """"skipped 3 invalid records: <first few errors>" (empty when nothing was skipped)."""
        if not self.skipped:
            return ""
        lines = [f"skipped {len(self.skipped)} invalid record{'s' if len(self.skipped) != 1 else ''}:"]
        lines += [f"  {e}" for e in self.skipped[:show]]
        if len(self.skipped) > show:
            lines.append(f"  ... and {len(self.skipped) - show} more")
        return "\n".join(lines)


def split_source(source: str) -> tuple[str, str]:
    """"bfcl:simple_python" -> ("bfcl", "simple_python"); unknown prefix -> ValueError with the known ones."""
    _ensure_builtin_loaders()
    key, sep, rest = source.partition(":")
    if not sep or key not in LOADERS:
        known = ", ".join(f"{k}:" for k in sorted(LOADERS))
        raise ValueError(f"unknown dataset source {source!r}: expected one of the prefixes {known}")
    return key, rest


def iter_load(source: str, *, skip_invalid: bool = False, skipped: list[DatasetError] | None = None,
              **options: Any) -> Iterator[Example]:
    """Yield examples lazily. With `skip_invalid`, bad records go to `skipped` (if given) and are logged."""
    key, rest = split_source(source)
    for item in LOADERS[key](rest, **options):
        if isinstance(item, DatasetError):
            if not skip_invalid:
                raise item
            log.info("skipping invalid record: %s", item)
            if skipped is not None:
                skipped.append(item)
            continue
        yield item


def load(source: str, *, limit: int | None = None, skip_invalid: bool = False, **options: Any) -> Examples:
    """Load up to `limit` examples from `source` ("bfcl:<cat>[,<cat>]", "toolace:<path|hub id>",
    "xlam:<path|hub id>", "jsonl:<path>"). Extra keyword options go to the loader (e.g. `data_dir=`).

    `limit=None` loads everything and `limit=0` nothing; a negative limit is a ValueError (it is a
    mistake, not a way of saying "no limit")."""
    if limit is not None and limit < 0:
        raise ValueError("limit must be >= 0")
    skipped: list[DatasetError] = []
    out = Examples(skipped=None)
    if limit == 0:
        return out
    for ex in iter_load(source, skip_invalid=skip_invalid, skipped=skipped, **options):
        out.append(ex)
        if limit is not None and len(out) >= limit:
            break
    out.skipped = skipped
    if skipped:  # info, not warning: callers (the CLI) decide how loudly to report `out.skipped`
        log.info("%s: %s", source, out.skipped_summary())
    return out


MIX_SEPARATOR = ";"

# How each built-in source is written, for error messages that must say what a source may be.
SOURCE_FORMS = {
    "bfcl": "bfcl:<category>[,<category>...][@<dir>] (BFCL's own data, e.g. bfcl:live_simple,exec_simple)",
    "jsonl": "jsonl:<path> (OpenAI/TRL conversations with tools, one a line)",
    "mix": "mix:<source>;<source>... (several sources one after the other)",
    "toolace": "toolace:<path|hub id> (e.g. toolace:Team-ACE/ToolACE)",
    "xlam": "xlam:<path|hub id> (e.g. xlam:Salesforce/xlam-function-calling-60k)",
}


def describe_sources() -> str:
    """How a source of each registered prefix is written, "; "-separated (an error stays one line)."""
    _ensure_builtin_loaders()
    return "; ".join(SOURCE_FORMS.get(key, key + ":...") for key in sorted(LOADERS))


@register_loader("mix")
def load_mix(spec: str, **options: Any) -> Iterator[Union[Example, DatasetError]]:
    """`mix:SOURCE;SOURCE...`: the sources one after the other, e.g.
    `mix:toolace:Team-ACE/ToolACE;xlam:Salesforce/xlam-function-calling-60k`. Options go to every loader
    that accepts them. An id that an earlier source already yielded is a DatasetError (ids key the
    training loop's records)."""
    import inspect

    parts = [p.strip() for p in spec.split(MIX_SEPARATOR) if p.strip()]
    if not parts:
        raise ValueError(f"mix: expected sources separated by {MIX_SEPARATOR!r}, e.g. "
                         "mix:toolace:Team-ACE/ToolACE;xlam:Salesforce/xlam-function-calling-60k")
    sources = [(part, *split_source(part)) for part in parts]  # every prefix checked before any reading
    if any(key == "mix" for _, key, _ in sources):
        raise ValueError(f"mix:{spec}: a mix cannot contain another mix")
    seen: dict[str, str] = {}
    for part, key, rest in sources:
        loader = LOADERS[key]
        accepted = inspect.signature(loader).parameters
        takes_all = any(p.kind is p.VAR_KEYWORD for p in accepted.values())
        for item in loader(rest, **{k: v for k, v in options.items() if takes_all or k in accepted}):
            if isinstance(item, Example):
                if item.id in seen:
                    item = DatasetError(f"mix source {part}", f"id {item.id!r} was already yielded by "
                                        f"{seen[item.id]}", field="id")
                else:
                    seen[item.id] = part
            yield item


def _ensure_builtin_loaders() -> None:
    # The built-in formats register themselves on import; importing here keeps `registry` importable
    # on its own (loaders import it) while `load` always sees them.
    from toolace_r.data import acebench, apibank, bfcl, jsonl, toolace, xlam  # noqa: F401
