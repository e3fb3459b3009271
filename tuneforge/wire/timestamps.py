"""Timestamps as Bedrock's JSON sends them."""

from __future__ import annotations

from datetime import datetime


def timestamp(value: datetime | None) -> str | None:
    """ISO 8601 with milliseconds and Z, as Bedrock sends them."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z" if value else None
