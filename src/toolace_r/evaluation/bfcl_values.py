"""BFCL's rules for one parameter value: type check, then value check, quirks included.

`check_value(value, spec, answer)` returns None when `value` passes, else (BFCL error_type, message).
`ParamSpec` is what the schema says about the parameter, `Answer` the acceptable values from the
answer key, each with its standardised forms computed once (they are reused for every check).

The rules, as the official checker applies them:
- Types map string/any -> str, integer -> int, float -> float, boolean -> bool, array/tuple -> list,
  dict -> dict, compared by exact type (a bool is not an int). A tuple given for a "tuple" parameter
  becomes a list; an int given for a "float" parameter becomes a float. Nothing else converts.
- The answer key has a type of its own: that of its first acceptable value other than "". When the
  value's type differs from the schema's but equals the key's, or when the key's type differs from the
  schema's, the value is a "variable": it skips the string/list/dict rules and must equal an
  acceptable value as it is.
- Arrays and tuples check their elements one level deep against the item type, alternative by
  alternative; an element may also take the type of the alternative's first element. An alternative
  that is not a list (the "" marker) makes the element check pass.
- Strings compare after standardisation (drop " ,./-_*^", lower-case, ' -> "); lists compare
  element-wise with their strings standardised; dicts check each key's value against that key's
  acceptable values (missing keys must allow ""); lists of dicts compare dict by dict, in order.
"""
from __future__ import annotations

from typing import Any

_PY_TYPES: dict[str, type] = {
    "string": str, "integer": int, "float": float, "boolean": bool,
    "array": list, "tuple": list, "dict": dict, "any": str,
}

# str.translate table of BFCL's string normal form (lower-casing follows the translation).
STANDARDISE = str.maketrans({**{c: None for c in " ,./-_*^"}, "'": '"'})


def standardize(text: str) -> str:
    """BFCL's string normal form: without spaces and ,./-_*^, lower-case, single quotes made double."""
    return text.translate(STANDARDISE).lower()


def _std(x: Any) -> Any:
    return x.translate(STANDARDISE).lower() if type(x) is str else x


def _std_seq(seq: Any) -> list[Any] | None:
    """Standardise a sequence's items (a str is a sequence of characters, as when BFCL indexes it)."""
    if type(seq) in (list, str, tuple):
        return [_std(x) for x in seq]
    return None  # BFCL would raise here; such an alternative can never match


class Lazy:
    """A message formatted only when someone reads it: most failures are counted, never printed."""

    __slots__ = ("fmt", "args")

    def __init__(self, fmt: str, *args: Any):
        self.fmt = fmt
        self.args = args

    def __str__(self) -> str:
        return self.fmt.format(*self.args)

    __repr__ = __str__


def _key_type(values: list[Any]) -> type | None:
    for v in values:
        if v != "":
            return type(v)
    return None


class ParamSpec:
    """type name, its Python type (None: unknown, no type check) and the item type of arrays/tuples."""

    __slots__ = ("type_name", "py_type", "item_type")
    UNKNOWN: "ParamSpec"

    def __init__(self, type_name: str, py_type: type | None, item_type: type | None):
        self.type_name = type_name
        self.py_type = py_type
        self.item_type = item_type

    @classmethod
    def from_schema(cls, schema: Any) -> "ParamSpec":
        type_name = schema.get("type") if isinstance(schema, dict) else None
        py_type = _PY_TYPES.get(type_name)  # type: ignore[arg-type]
        item_type = None
        if type_name in ("array", "tuple"):
            items = schema.get("items")
            if isinstance(items, dict):
                item_type = _PY_TYPES.get(items.get("type"))
        return cls(type_name or "", py_type, item_type)


ParamSpec.UNKNOWN = ParamSpec("", None, None)


class Answer:
    """The acceptable values of one parameter, with what the checks need precomputed."""

    __slots__ = ("values", "optional", "key_type", "_strings", "_lists", "_dicts", "_items")

    def __init__(self, values: Any):
        if not isinstance(values, list):  # a malformed key: its one value is the only acceptable one
            values = [values]
        self.values = values
        self.optional = "" in values
        self.key_type = _key_type(values)
        self._strings: frozenset | None = None
        self._lists: list[Any] | None = None
        self._dicts: list[Any] | None = None
        self._items: list[Any] | None = None

    def strings(self) -> frozenset:
        if self._strings is None:
            self._strings = frozenset(standardize(v) for v in self.values if type(v) is str)
        return self._strings

    def lists(self) -> list[Any]:
        if self._lists is None:
            self._lists = [s for s in (_std_seq(v) for v in self.values) if s is not None]
        return self._lists

    def dicts(self) -> list[Any]:
        """Per dict alternative: (raw dict, {key: standardised acceptable values}); "" skipped."""
        if self._dicts is None:
            self._dicts = [_dict_alternative(v) for v in self.values if v != ""]
        return self._dicts

    def item_checks(self) -> list[Any]:
        """Per alternative: None (not a list: passes the element check) or its elements' key type."""
        if self._items is None:
            self._items = [(True, _key_type(v)) if type(v) is list else (False, None) for v in self.values]
        return self._items


def _dict_alternative(alt: Any) -> tuple[Any, dict[Any, Any]]:
    if not isinstance(alt, dict):
        return alt, {}
    return alt, {k: _std_seq(v) for k, v in alt.items()}


# --- the checks -----------------------------------------------------------------------------------

def check_value(value: Any, spec: ParamSpec, answer: Answer) -> tuple[str, Any] | None:
    """None if `value` passes for a parameter described by `spec` with acceptable values `answer`, else
    (BFCL error_type, message); the message is a `Lazy`, formatted when read."""
    expected = spec.py_type
    vtype = type(value)
    # Fast path, same rules: a scalar of the schema's type whose key has that type too.
    if vtype is expected and spec.item_type is None and (answer.key_type is None or answer.key_type is expected):
        if expected is str:
            strings = answer._strings if answer._strings is not None else answer.strings()
            return None if value.translate(STANDARDISE).lower() in strings else _bad_string(answer)
        if expected is not dict and expected is not list:  # int, float, bool
            if value in answer.values:
                return None
            return "value_error:others", Lazy("expected one of {!r}", answer.values)
    if expected is None:  # a type BFCL does not know (non-BFCL data): compare values only
        if type(value) is str:
            return None if standardize(value) in answer.strings() else _bad_string(answer)
        return None if value in answer.values else ("value_error:others", Lazy("expected one of {!r}", answer.values))
    type_name = spec.type_name
    if type_name == "tuple" and vtype is tuple:
        value, vtype = list(value), list
    elif type_name == "float" and vtype is int:
        value, vtype = float(value), float
    key_type = answer.key_type
    variable = key_type is not None and key_type is not expected
    if vtype is expected:
        item_type = spec.item_type
        if item_type is not None and not _items_ok(value, answer, item_type):
            kind = "type_error:nested" if vtype is key_type else "type_error:simple"
            return kind, Lazy("elements of {!r} are not all {} of {}", value, type_name, item_type.__name__)
    elif key_type is not None and vtype is key_type:
        variable = True
    else:
        return "type_error:simple", Lazy("expected type {}, got {}", type_name, vtype.__name__)

    if not variable:
        if expected is str:
            return None if standardize(value) in answer.strings() else _bad_string(answer)
        if expected is dict:
            return _check_dict(value, answer.dicts())
        if expected is list:
            if spec.item_type is dict:
                return _check_list_of_dicts(value, answer.values)
            standard = [_std(x) for x in value]
            if standard in answer.lists():
                return None
            return "value_error:list/tuple", Lazy("expected one of {!r}", answer.values)
    if value in answer.values:
        return None
    return "value_error:others", Lazy("expected one of {!r}", answer.values)


def _bad_string(answer: Answer) -> tuple[str, str]:
    return "value_error:string", Lazy("expected one of {!r} (compared standardised)", answer.values)


def _items_ok(value: list[Any], answer: Answer, item_type: type) -> bool:
    for is_list, elem_key_type in answer.item_checks():
        if not is_list:
            return True
        for v in value:
            t = type(v)
            if t is not item_type and (elem_key_type is None or t is not elem_key_type):
                break
        else:
            return True
    return False


def _check_dict(value: dict[Any, Any], alternatives: list[Any]) -> tuple[str, str] | None:
    failure = ("dict_checker:unclear", "no acceptable dict to compare with")
    for alt, std_alt in alternatives:
        kind = None
        if not isinstance(alt, dict):
            kind, why = "value_error:dict_key", Lazy("malformed acceptable value {!r}", alt)
        else:
            for k, v in value.items():
                if k not in alt:
                    kind, why = "value_error:dict_key", Lazy("unexpected key {!r}", k)
                    break
                options = std_alt[k]
                if options is None or _std(v) not in options:
                    kind, why = "value_error:dict_value", Lazy("key {!r}: {!r} not among {!r}", k, v, alt[k])
                    break
            # BFCL runs this pass even after a failure above, and its kind then wins.
            for k, options in alt.items():
                if k not in value and not _allows_empty(options):
                    kind, why = "value_error:dict_key", Lazy("missing key {!r}", k)
                    break
        if kind is None:
            return None
        failure = (kind, why)
    return failure


def _allows_empty(options: Any) -> bool:
    try:
        return "" in options
    except TypeError:
        return False


def _check_list_of_dicts(value: list[Any], alternatives: list[Any]) -> tuple[str, str] | None:
    failure = ("list_dict_checker:unclear", "no acceptable list to compare with")
    for alt in alternatives:
        try:
            size = len(alt)
        except TypeError:
            continue
        if len(value) != size:
            failure = ("value_error:list_dict_count", Lazy("expected {} dicts, got {}", size, len(value)))
            continue
        for item, expected in zip(value, alt):
            if expected == "":
                bad = ("dict_checker:unclear", "no acceptable dict to compare with")
            elif not isinstance(item, dict):
                bad = ("value_error:dict_value", Lazy("{!r} is not a dict", item))
            else:
                bad = _check_dict(item, [_dict_alternative(expected)])
            if bad is not None:
                failure = bad
                break
        else:
            return None
    return failure
