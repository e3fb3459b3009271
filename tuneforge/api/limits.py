"""Request-size limit shared by every protocol on the server (TUNEFORGE_MAX_REQUEST_BYTES)."""

from __future__ import annotations

from starlette.requests import Request

from tuneforge.errors import PayloadTooLarge


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than `limit` bytes: by Content-Length first, then as it arrives
    (a chunked upload declares no length), so an oversized body is never held in memory whole."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(_message(int(declared), limit), field="body")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(_message(size, limit), field="body")
        chunks.append(chunk)
    return b"".join(chunks)


def _message(size: int, limit: int) -> str:
    return f"the request body is {size}+ bytes, over the server's limit of {limit} bytes (TUNEFORGE_MAX_REQUEST_BYTES)"
