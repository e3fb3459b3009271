"""Bedrock-style pagination for List* operations: maxResults plus an opaque nextToken."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select

from tuneforge.errors import InvalidInput

T = TypeVar("T")
MAX_RESULTS = 1000  # Bedrock's upper bound for maxResults on the List* operations


def page(items: Sequence[T], *, max_results: int | None, next_token: str | None) -> tuple[list[T], str | None]:
    """One page of `items` (already filtered and sorted) and the token for the next page, if any."""
    if max_results is not None and not 1 <= max_results <= MAX_RESULTS:
        raise InvalidInput(f"maxResults must be between 1 and {MAX_RESULTS}, got {max_results}", field="maxResults")
    start = _decode(next_token) if next_token else 0
    size = max_results or MAX_RESULTS
    chunk = list(items[start : start + size])
    more = start + size < len(items)
    return chunk, _encode(start + size) if more else None


def by_creation(query: Select, table: Any, tiebreak: Any, *, created_after: datetime | None,
                created_before: datetime | None, ascending: bool) -> Select:
    """The List* operations' creationTimeAfter/Before filters and CreationTime sort (ties by id, so pages are stable)."""
    if created_after:
        query = query.where(table.created_at > created_after)
    if created_before:
        query = query.where(table.created_at < created_before)
    return query.order_by(table.created_at.asc() if ascending else table.created_at.desc(), tiebreak)


def _encode(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _decode(token: str) -> int:
    try:
        kind, _, value = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if kind == "offset" and value.isdigit():
            return int(value)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise InvalidInput("nextToken is not one this server issued: pass the nextToken of the previous page", field="nextToken")
