"""Bedrock's RetrievalFilter (Retrieve's vectorSearchConfiguration.filter), parsed and validated once.

    flt = parse_filter(request_filter)                     # InvalidInput naming e.g. filter.andAll[1].equals.value
    flt.matches({"year": 2024, "tags": ["law"]})           # the reference semantics every store must follow

Shape (bedrock-agent-runtime 2023-07-26): a union with exactly one member per node.

    equals | notEquals | greaterThan | greaterThanOrEquals | lessThan | lessThanOrEquals | in | notIn |
    startsWith | listContains | stringContains      -> {"key": str, "value": JSON}
    andAll | orAll                                -> [filter, filter, ...]  (at least 2 members)

Values are untyped JSON; these rules (Bedrock's) are checked here:
    equals, notEquals, listContains   value is a string, number or boolean
    greaterThan ... lessThanOrEquals   value is a number (not a boolean)
    in, notIn                          value is a non-empty list of strings, numbers or booleans
    startsWith, stringContains         value is a string

Matching is type aware, as JSON equality is: 1 == 1.0, "1" != 1, true != 1; strings are case-sensitive.
    equals / in            the key's value equals the value / one of the list members (a list value never equals)
    notEquals / notIn      negations of the above, so a chunk without the key matches them
    greaterThan ...        the key's value is a number and compares so
    startsWith             the key's value is a string starting with the value
    listContains           the key's value is a list with a member equal to the value
    stringContains         the key's value is a string containing the value, or a list with such a string member
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Union

from tuneforge.errors import InvalidInput

Scalar = Union[str, int, float, bool]

COMPARISONS = (
    "equals",
    "notEquals",
    "greaterThan",
    "greaterThanOrEquals",
    "lessThan",
    "lessThanOrEquals",
    "in",
    "notIn",
    "startsWith",
    "listContains",
    "stringContains",
)
LOGICAL = ("andAll", "orAll")
NUMERIC = ("greaterThan", "greaterThanOrEquals", "lessThan", "lessThanOrEquals")
_SCALAR_VALUE = ("equals", "notEquals", "listContains")
_STRING_VALUE = ("startsWith", "stringContains")
_LIST_VALUE = ("in", "notIn")


@dataclass(frozen=True)
class Comparison:
    """One leaf: `op` is one of COMPARISONS; `value` is a scalar, or a tuple of scalars for in/notIn."""

    op: str
    key: str
    value: Scalar | tuple[Scalar, ...]

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        present = self.key in metadata
        actual = metadata.get(self.key)
        op, value = self.op, self.value
        if op == "equals":
            return present and json_equal(actual, value)
        if op == "notEquals":
            return not (present and json_equal(actual, value))
        if op == "in":
            return present and any(json_equal(actual, member) for member in value)  # type: ignore[union-attr]
        if op == "notIn":
            return not (present and any(json_equal(actual, member) for member in value))  # type: ignore[union-attr]
        if op in NUMERIC:
            if not is_number(actual):
                return False
            if op == "greaterThan":
                return actual > value
            if op == "greaterThanOrEquals":
                return actual >= value
            if op == "lessThan":
                return actual < value
            return actual <= value
        if op == "startsWith":
            return isinstance(actual, str) and actual.startswith(value)  # type: ignore[arg-type]
        if op == "listContains":
            return isinstance(actual, list) and any(json_equal(member, value) for member in actual)
        if op == "stringContains":
            if isinstance(actual, str):
                return value in actual  # type: ignore[operator]
            return isinstance(actual, list) and any(isinstance(m, str) and value in m for m in actual)  # type: ignore[operator]
        raise AssertionError(f"unknown operator {op}")  # parse_filter admits only COMPARISONS


@dataclass(frozen=True)
class Logical:
    """andAll / orAll over two or more members."""

    op: str
    members: tuple[Filter, ...]

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        if self.op == "andAll":
            return all(member.matches(metadata) for member in self.members)
        return any(member.matches(metadata) for member in self.members)


Filter = Union[Comparison, Logical]


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: numbers by value (1 == 1.0), booleans only with booleans, strings exactly."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if is_number(a) and is_number(b):
        return a == b
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    return False


def parse_filter(data: Any, *, field: str = "filter") -> Filter:
    """Validate a RetrievalFilter dict into a Filter tree. `field` is the JSON path used in error messages."""
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{field} must be an object with one operator, got {_type_name(data)}.", field=field)
    if len(data) != 1:
        names = ", ".join(sorted(map(str, data))) or "none"
        raise InvalidInput(
            f"{field} must have exactly one operator (one of {', '.join(COMPARISONS + LOGICAL)}); got {names}.",
            field=field,
        )
    ((op, body),) = data.items()
    path = f"{field}.{op}"
    if op in LOGICAL:
        if not isinstance(body, list) or len(body) < 2:
            raise InvalidInput(
                f"{path} must be a list of at least 2 filters, got {_describe(body)}; "
                "use the single filter directly instead of wrapping it.",
                field=path,
            )
        return Logical(op, tuple(parse_filter(member, field=f"{path}[{i}]") for i, member in enumerate(body)))
    if op not in COMPARISONS:
        raise InvalidInput(
            f"{field} has unknown operator {op!r}; expected one of {', '.join(COMPARISONS + LOGICAL)}.", field=path
        )
    if not isinstance(body, Mapping):
        raise InvalidInput(f"{path} must be an object {{key, value}}, got {_type_name(body)}.", field=path)
    unknown = sorted(set(map(str, body)) - {"key", "value"})
    if unknown:
        raise InvalidInput(f"{path} has unknown member(s) {', '.join(unknown)}; expected key and value.", field=path)
    key = body.get("key")
    if not isinstance(key, str) or not key:
        raise InvalidInput(f"{path}.key must be a non-empty string, got {_describe(key)}.", field=f"{path}.key")
    if "value" not in body:
        raise InvalidInput(f"{path}.value is required.", field=f"{path}.value")
    return Comparison(op, key, _check_value(op, body["value"], f"{path}.value"))


def _check_value(op: str, value: Any, path: str) -> Scalar | tuple[Scalar, ...]:
    if op in NUMERIC:
        if not is_number(value) or not math.isfinite(value):
            raise InvalidInput(f"{path} must be a number for {op}, got {_describe(value)}.", field=path)
        return value
    if op in _STRING_VALUE:
        if not isinstance(value, str):
            raise InvalidInput(f"{path} must be a string for {op}, got {_describe(value)}.", field=path)
        return value
    if op in _LIST_VALUE:
        if not isinstance(value, list) or not value:
            raise InvalidInput(
                f"{path} must be a non-empty list of strings, numbers or booleans for {op}, got {_describe(value)}.",
                field=path,
            )
        for i, member in enumerate(value):
            _check_scalar(op, member, f"{path}[{i}]")
        return tuple(value)
    return _check_scalar(op, value, path)


def _check_scalar(op: str, value: Any, path: str) -> Scalar:
    if isinstance(value, str) or isinstance(value, bool) or (is_number(value) and math.isfinite(value)):
        return value
    raise InvalidInput(f"{path} must be a string, number or boolean for {op}, got {_describe(value)}.", field=path)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    text = repr(value)
    return f"{_type_name(value)} {text if len(text) <= 40 else text[:37] + '...'}"


__all__ = [
    "COMPARISONS",
    "LOGICAL",
    "NUMERIC",
    "Comparison",
    "Filter",
    "Logical",
    "Scalar",
    "is_number",
    "json_equal",
    "parse_filter",
]
