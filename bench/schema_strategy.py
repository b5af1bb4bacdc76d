"""A hypothesis strategy from a JSON Schema, for the keywords the published schemas in ``schemas/`` use.

hypothesis-jsonschema 0.23.1 (the latest release) fails against the pinned hypothesis 6.170 (``'many' object has
no attribute 'more'``), so the fuzz harness carries this small equivalent: type, const, enum, anyOf, properties,
required, additionalProperties (false), items, min/maxItems, min/maxLength, pattern, minimum, maximum,
exclusiveMinimum/Maximum. Optional properties are present or absent independently; unknown keywords are ignored.
"""

from __future__ import annotations

import re
from typing import Any

from hypothesis import strategies as st


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "anyOf" in schema:
        return st.one_of([from_schema(s) for s in schema["anyOf"]])
    kind = schema.get("type")
    if kind == "object":
        return _object(schema)
    if kind == "array":
        items = from_schema(schema.get("items", {}))
        return st.lists(items, min_size=schema.get("minItems", 0), max_size=schema.get("maxItems"))
    if kind == "string":
        return _string(schema)
    if kind in ("number", "integer"):
        return _number(schema, integer=kind == "integer")
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)


def _object(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    props = schema.get("properties", {})
    required = set(schema.get("required", ()))
    return st.fixed_dictionaries(
        {k: from_schema(v) for k, v in props.items() if k in required},
        optional={k: from_schema(v) for k, v in props.items() if k not in required},
    )


def _string(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    lo, hi = schema.get("minLength", 0), schema.get("maxLength")
    simple = re.fullmatch(r"\^\[([^\]]+)\]\+\$", schema.get("pattern", ""))
    if simple:  # one character class repeated: draw the characters, far faster than a filtered regex
        chars = st.from_regex(f"[{simple.group(1)}]", fullmatch=True)
        return st.text(alphabet=chars, min_size=max(lo, 1), max_size=hi)
    if "pattern" in schema:
        pattern = st.from_regex(schema["pattern"], fullmatch=True)
        return pattern.filter(lambda s: lo <= len(s) and (hi is None or len(s) <= hi))
    return st.text(min_size=lo, max_size=hi)


def _number(schema: dict[str, Any], *, integer: bool) -> st.SearchStrategy[float | int]:
    lo, hi = schema.get("minimum"), schema.get("maximum")
    xlo, xhi = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if integer:
        low = lo if lo is not None else (int(xlo) + 1 if xlo is not None else None)
        high = hi if hi is not None else (int(xhi) - 1 if xhi is not None else None)
        return st.integers(min_value=low, max_value=high)
    return st.floats(
        min_value=lo if lo is not None else xlo,
        max_value=hi if hi is not None else xhi,
        exclude_min=lo is None and xlo is not None,
        exclude_max=hi is None and xhi is not None,
        allow_nan=False,
        allow_infinity=False,
    )
