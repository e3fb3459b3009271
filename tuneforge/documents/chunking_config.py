"""Check a Bedrock `chunkingConfiguration` (CreateDataSource's vectorIngestionConfiguration) once, at the edge.

    settings = validate_chunking_configuration(request["vectorIngestionConfiguration"].get("chunkingConfiguration"))

Shapes and ranges are botocore's (bedrock-agent 2023-06-05), which botocore itself does not enforce:

    {"chunkingStrategy": "FIXED_SIZE" | "NONE" | "HIERARCHICAL" | "SEMANTIC",
     "fixedSizeChunkingConfiguration": {"maxTokens": 1-8192, "overlapPercentage": 1-99},
     "hierarchicalChunkingConfiguration": {"levelConfigurations": [{"maxTokens": 1-8192}, {"maxTokens": 1-8192}],
                                           "overlapTokens": >= 1},
     "semanticChunkingConfiguration": {"maxTokens": 1-8192, "bufferSize": 0-1, "breakpointPercentileThreshold": 50-99}}

Beyond botocore: a strategy's own sub-configuration is required and the others are refused (the API
reference says to leave them out), unknown keys are refused, and the child level may not be larger than
the parent. Field names in errors are relative to chunkingConfiguration.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from tuneforge.errors import InvalidInput

MAX_TOKENS_LIMIT = 8192


class ChunkingStrategy(StrEnum):
    DEFAULT = "DEFAULT"  # not on the wire: no chunkingConfiguration at all
    FIXED_SIZE = "FIXED_SIZE"
    NONE = "NONE"
    HIERARCHICAL = "HIERARCHICAL"
    SEMANTIC = "SEMANTIC"


@dataclass(frozen=True)
class ChunkingSettings:
    """A checked chunkingConfiguration; only the fields of `strategy` are set."""

    strategy: ChunkingStrategy
    max_tokens: int = 0  # FIXED_SIZE, SEMANTIC
    overlap_percentage: int = 0  # FIXED_SIZE
    parent_max_tokens: int = 0  # HIERARCHICAL
    child_max_tokens: int = 0  # HIERARCHICAL
    overlap_tokens: int = 0  # HIERARCHICAL
    buffer_size: int = 0  # SEMANTIC
    breakpoint_percentile_threshold: int = 0  # SEMANTIC


_SUB_CONFIGURATIONS = {
    ChunkingStrategy.FIXED_SIZE: "fixedSizeChunkingConfiguration",
    ChunkingStrategy.HIERARCHICAL: "hierarchicalChunkingConfiguration",
    ChunkingStrategy.SEMANTIC: "semanticChunkingConfiguration",
}
_WIRE_STRATEGIES = [s.value for s in ChunkingStrategy if s is not ChunkingStrategy.DEFAULT]


class _Problems:
    """Collects every problem so one error lists them all."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, field: str, message: str) -> None:
        self.items.append((field, message))

    def mapping(self, value: Any, field: str, allowed: set[str], required: set[str]) -> Mapping[str, Any] | None:
        if not isinstance(value, Mapping):
            self.add(field, f"{field} must be an object, got {type(value).__name__}")
            return None
        for key in sorted(set(value) - allowed):
            self.add(f"{field}.{key}", f"{field}.{key} is not a known field (expected one of {sorted(allowed)})")
        for key in sorted(required - set(value)):
            self.add(f"{field}.{key}", f"{field}.{key} is required")
        return value

    def integer(self, container: Mapping[str, Any], key: str, field: str, low: int, high: int | None) -> int:
        if key not in container:
            return 0  # reported as missing by mapping()
        value = container[key]
        path = f"{field}.{key}"
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(path, f"{path} must be an integer {bounds}, got {value!r}")
            return 0
        if value < low or (high is not None and value > high):
            self.add(path, f"{path} must be {bounds}, got {value}")
        return value


def validate_chunking_configuration(config: Mapping[str, Any] | None) -> ChunkingSettings:
    """Check a chunkingConfiguration (None means Bedrock's default chunking). Raises InvalidInput listing
    every problem, with `field` set to the first one's path (e.g. fixedSizeChunkingConfiguration.maxTokens)."""
    if config is None:
        return ChunkingSettings(ChunkingStrategy.DEFAULT)
    problems = _Problems()
    allowed = {"chunkingStrategy", *_SUB_CONFIGURATIONS.values()}
    top = problems.mapping(config, "chunkingConfiguration", allowed, {"chunkingStrategy"})
    settings = ChunkingSettings(ChunkingStrategy.NONE)
    if top is not None and "chunkingStrategy" in top:
        raw = top["chunkingStrategy"]
        if raw not in _WIRE_STRATEGIES:
            problems.add("chunkingStrategy", f"chunkingStrategy must be one of {_WIRE_STRATEGIES}, got {raw!r}")
        else:
            strategy = ChunkingStrategy(raw)
            own = _SUB_CONFIGURATIONS.get(strategy)
            for name in _SUB_CONFIGURATIONS.values():
                if name in top and name != own:
                    problems.add(name, f"{name} is only allowed with the chunkingStrategy it configures, not {raw}")
            if own is not None and own not in top:
                problems.add(own, f"{own} is required when chunkingStrategy is {raw}")
            elif own is not None:
                settings = _sub_configuration(strategy, top[own], own, problems)
            else:
                settings = ChunkingSettings(strategy)
    if problems.items:
        raise InvalidInput(
            "invalid chunkingConfiguration: " + "; ".join(message for _, message in problems.items),
            field=problems.items[0][0],
        )
    return settings


def _sub_configuration(strategy: ChunkingStrategy, value: Any, field: str, problems: _Problems) -> ChunkingSettings:
    if strategy is ChunkingStrategy.FIXED_SIZE:
        keys = {"maxTokens", "overlapPercentage"}
        sub = problems.mapping(value, field, keys, keys)
        if sub is None:
            return ChunkingSettings(strategy)
        return ChunkingSettings(
            strategy,
            max_tokens=problems.integer(sub, "maxTokens", field, 1, MAX_TOKENS_LIMIT),
            overlap_percentage=problems.integer(sub, "overlapPercentage", field, 1, 99),
        )
    if strategy is ChunkingStrategy.SEMANTIC:
        keys = {"maxTokens", "bufferSize", "breakpointPercentileThreshold"}
        sub = problems.mapping(value, field, keys, keys)
        if sub is None:
            return ChunkingSettings(strategy)
        return ChunkingSettings(
            strategy,
            max_tokens=problems.integer(sub, "maxTokens", field, 1, MAX_TOKENS_LIMIT),
            buffer_size=problems.integer(sub, "bufferSize", field, 0, 1),
            breakpoint_percentile_threshold=problems.integer(sub, "breakpointPercentileThreshold", field, 50, 99),
        )
    keys = {"levelConfigurations", "overlapTokens"}
    sub = problems.mapping(value, field, keys, keys)
    if sub is None:
        return ChunkingSettings(strategy)
    overlap = problems.integer(sub, "overlapTokens", field, 1, None)
    levels = sub.get("levelConfigurations")
    if levels is None:
        return ChunkingSettings(strategy, overlap_tokens=overlap)
    path = f"{field}.levelConfigurations"
    if not isinstance(levels, list) or len(levels) != 2:
        problems.add(path, f"{path} must list exactly 2 levels, [{{maxTokens: parent}}, {{maxTokens: child}}]")
        return ChunkingSettings(strategy, overlap_tokens=overlap)
    sizes = []
    for index, level in enumerate(levels):
        level_field = f"{path}[{index}]"
        checked = problems.mapping(level, level_field, {"maxTokens"}, {"maxTokens"})
        sizes.append(problems.integer(checked, "maxTokens", level_field, 1, MAX_TOKENS_LIMIT) if checked is not None else 0)
    parent, child = sizes
    if parent and child and child > parent:
        problems.add(
            f"{path}[1].maxTokens",
            f"{path}[1].maxTokens (child, {child}) must not be larger than {path}[0].maxTokens (parent, {parent})",
        )
    return ChunkingSettings(strategy, parent_max_tokens=parent, child_max_tokens=child, overlap_tokens=overlap)
