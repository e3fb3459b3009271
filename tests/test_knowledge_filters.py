"""parse_filter's validation (errors name the JSON path) and Filter.matches, the reference semantics."""

from __future__ import annotations

import pytest

from tuneforge.errors import InvalidInput
from tuneforge.knowledge.filters import Comparison, Logical, json_equal, parse_filter

META = {
    "year": 2021,
    "score": 0.5,
    "genre": "drama",
    "draft": False,
    "tags": ["law", "securities"],
    "x-amz-bedrock-kb-source-uri": "s3://bucket/acts/1933.pdf",
}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"equals": {"key": "year", "value": 2021}}, True),
        ({"equals": {"key": "year", "value": 2021.0}}, True),  # JSON numbers compare by value
        ({"equals": {"key": "year", "value": "2021"}}, False),  # ... but a string is not a number
        ({"equals": {"key": "draft", "value": False}}, True),
        ({"equals": {"key": "draft", "value": 0}}, False),  # a boolean is not a number
        ({"equals": {"key": "genre", "value": "Drama"}}, False),  # case-sensitive
        ({"equals": {"key": "tags", "value": "law"}}, False),  # lists never equal a scalar: use listContains
        ({"equals": {"key": "missing", "value": "x"}}, False),
        ({"notEquals": {"key": "genre", "value": "comedy"}}, True),
        ({"notEquals": {"key": "genre", "value": "drama"}}, False),
        ({"notEquals": {"key": "missing", "value": "x"}}, True),  # a chunk without the key matches
        ({"greaterThan": {"key": "year", "value": 2020}}, True),
        ({"greaterThan": {"key": "year", "value": 2021}}, False),
        ({"greaterThanOrEquals": {"key": "year", "value": 2021}}, True),
        ({"lessThan": {"key": "score", "value": 0.6}}, True),
        ({"lessThanOrEquals": {"key": "score", "value": 0.4}}, False),
        ({"lessThan": {"key": "genre", "value": 5}}, False),  # strings never compare with numbers
        ({"lessThan": {"key": "draft", "value": 5}}, False),  # nor booleans
        ({"greaterThan": {"key": "missing", "value": 0}}, False),
        ({"in": {"key": "genre", "value": ["comedy", "drama"]}}, True),
        ({"in": {"key": "year", "value": [2020, 2021.0]}}, True),
        ({"in": {"key": "genre", "value": ["comedy"]}}, False),
        ({"notIn": {"key": "genre", "value": ["comedy"]}}, True),
        ({"notIn": {"key": "genre", "value": ["drama"]}}, False),
        ({"notIn": {"key": "missing", "value": ["drama"]}}, True),
        ({"startsWith": {"key": "x-amz-bedrock-kb-source-uri", "value": "s3://bucket/acts/"}}, True),
        ({"startsWith": {"key": "x-amz-bedrock-kb-source-uri", "value": "acts"}}, False),
        ({"startsWith": {"key": "year", "value": "20"}}, False),  # numbers are not strings
        ({"listContains": {"key": "tags", "value": "law"}}, True),
        ({"listContains": {"key": "tags", "value": "la"}}, False),
        ({"listContains": {"key": "genre", "value": "drama"}}, False),  # a string is not a list
        ({"stringContains": {"key": "genre", "value": "ram"}}, True),
        ({"stringContains": {"key": "tags", "value": "curi"}}, True),  # a list with a member containing it
        ({"stringContains": {"key": "tags", "value": "tax"}}, False),
        ({"andAll": [{"equals": {"key": "genre", "value": "drama"}}, {"greaterThan": {"key": "year", "value": 2000}}]}, True),
        ({"andAll": [{"equals": {"key": "genre", "value": "drama"}}, {"lessThan": {"key": "year", "value": 2000}}]}, False),
        ({"orAll": [{"equals": {"key": "genre", "value": "x"}}, {"lessThan": {"key": "year", "value": 2000}}]}, False),
        ({"orAll": [{"equals": {"key": "genre", "value": "x"}}, {"listContains": {"key": "tags", "value": "law"}}]}, True),
        (
            {
                "andAll": [
                    {"orAll": [{"equals": {"key": "genre", "value": "x"}}, {"equals": {"key": "year", "value": 2021}}]},
                    {"notIn": {"key": "genre", "value": ["comedy", "horror"]}},
                ]
            },
            True,
        ),
    ],
)
def test_matches(spec: dict, expected: bool) -> None:
    assert parse_filter(spec).matches(META) is expected


def test_parse_builds_the_tree() -> None:
    parsed = parse_filter({"orAll": [{"in": {"key": "a", "value": [1, "b"]}}, {"equals": {"key": "c", "value": True}}]})
    assert parsed == Logical("orAll", (Comparison("in", "a", (1, "b")), Comparison("equals", "c", True)))


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        ("x", "filter", "must be an object"),
        ({}, "filter", "exactly one operator"),
        ({"equals": {"key": "a", "value": 1}, "notEquals": {"key": "a", "value": 1}}, "filter", "exactly one"),
        ({"like": {"key": "a", "value": "b"}}, "filter.like", "unknown operator"),
        ({"andAll": [{"equals": {"key": "a", "value": 1}}]}, "filter.andAll", "at least 2"),
        ({"orAll": {"equals": {"key": "a", "value": 1}}}, "filter.orAll", "at least 2"),
        (
            {"andAll": [{"equals": {"key": "a", "value": 1}}, {"equals": {"key": "b", "value": None}}]},
            "filter.andAll[1].equals.value",
            "string, number or boolean",
        ),
        (
            {"orAll": [{"equals": {"key": "a", "value": 1}}, {"andAll": [{"in": {"key": "a", "value": [1]}}, {}]}]},
            "filter.orAll[1].andAll[1]",
            "exactly one operator",
        ),
        ({"equals": {"key": "", "value": 1}}, "filter.equals.key", "non-empty string"),
        ({"equals": {"value": 1}}, "filter.equals.key", "non-empty string"),
        ({"equals": {"key": "a"}}, "filter.equals.value", "required"),
        ({"equals": {"key": "a", "value": 1, "extra": 2}}, "filter.equals", "unknown member"),
        ({"equals": ["a", 1]}, "filter.equals", "object"),
        ({"equals": {"key": "a", "value": {"b": 1}}}, "filter.equals.value", "string, number or boolean"),
        ({"greaterThan": {"key": "a", "value": "5"}}, "filter.greaterThan.value", "must be a number"),
        ({"lessThanOrEquals": {"key": "a", "value": True}}, "filter.lessThanOrEquals.value", "must be a number"),
        ({"in": {"key": "a", "value": "b"}}, "filter.in.value", "non-empty list"),
        ({"notIn": {"key": "a", "value": []}}, "filter.notIn.value", "non-empty list"),
        ({"in": {"key": "a", "value": ["b", ["c"]]}}, "filter.in.value[1]", "string, number or boolean"),
        ({"startsWith": {"key": "a", "value": 1}}, "filter.startsWith.value", "must be a string"),
        ({"stringContains": {"key": "a", "value": ["x"]}}, "filter.stringContains.value", "must be a string"),
        ({"listContains": {"key": "a", "value": ["x"]}}, "filter.listContains.value", "string, number or boolean"),
    ],
)
def test_errors_name_the_path(spec: object, field: str, words: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_filter(spec)
    assert caught.value.field == field
    assert words in caught.value.message


def test_root_path_is_configurable() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_filter({"in": {"key": "a", "value": 3}}, field="retrievalConfiguration.vectorSearchConfiguration.filter")
    assert caught.value.field == "retrievalConfiguration.vectorSearchConfiguration.filter.in.value"


def test_json_equal() -> None:
    assert json_equal(1, 1.0) and json_equal("a", "a") and json_equal(True, True)
    assert not json_equal(True, 1) and not json_equal("1", 1) and not json_equal(["a"], ["a"])
