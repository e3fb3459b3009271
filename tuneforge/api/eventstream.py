"""Encoder for AWS event-stream framing (`application/vnd.amazon.eventstream`).

InvokeModelWithResponseStream and ConverseStream answer with a body of these messages; boto3 decodes them with
`botocore.eventstream`. One message, all integers big-endian (docs/bedrock-api.md §3):

    [total_len u32][headers_len u32][prelude_crc u32][headers][payload][message_crc u32]
    header = [name_len u8][name utf-8][type u8][value]

`encode_message` writes any message; `event`, `chunk_event`, `exception_event` and `error_event` write the four kinds
the Bedrock runtime sends. Each returns the complete bytes of one message, ready to flush to the client.

Limits: only encoding (decoding is botocore's job, and the tests use it as the oracle). Header values map from Python
types (str, bytes, bool, int, datetime, UUID); int8 and int16 are never written, since no Bedrock event uses them.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from uuid import UUID

CONTENT_TYPE = "application/vnd.amazon.eventstream"

HeaderValue = str | bytes | bool | int | datetime | UUID

# botocore refuses messages beyond these sizes (botocore/eventstream.py), so we refuse to write them.
MAX_HEADERS_LENGTH = 128 * 1024
MAX_PAYLOAD_LENGTH = 24 * 1024 * 1024

_PRELUDE = struct.Struct(">II")  # total length, headers length; the prelude CRC follows
_CRC = struct.Struct(">I")
_INT32 = range(-(2**31), 2**31)
_INT64 = range(-(2**63), 2**63)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Header value type codes from the event-stream spec.
_TRUE, _FALSE, _INT32_T, _INT64_T, _BYTES_T, _STRING_T, _TIMESTAMP_T, _UUID_T = 0, 1, 4, 5, 6, 7, 8, 9


def _encode_value(value: HeaderValue) -> bytes:
    # bool before int: bool is a subclass of int, and true/false have their own type codes with no value bytes.
    if isinstance(value, bool):
        return bytes([_TRUE if value else _FALSE])
    if isinstance(value, int):
        if value in _INT32:
            return struct.pack(">Bi", _INT32_T, value)
        if value in _INT64:
            return struct.pack(">Bq", _INT64_T, value)
        raise ValueError(f"event-stream integer header value {value} does not fit in 64 bits")
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"timestamp header value {value!r} has no timezone; pass an aware datetime")
        return struct.pack(">Bq", _TIMESTAMP_T, (value - _EPOCH) // timedelta(milliseconds=1))  # exact, no float
    if isinstance(value, UUID):
        return bytes([_UUID_T]) + value.bytes
    if isinstance(value, str):
        type_code, raw = _STRING_T, value.encode()
    elif isinstance(value, bytes):
        type_code, raw = _BYTES_T, value
    else:
        raise TypeError(
            f"event-stream header values are str, bytes, bool, int, datetime or UUID, not {type(value).__name__}"
        )
    if len(raw) > 0xFFFF:  # u16 length prefix
        raise ValueError(f"event-stream header value is {len(raw)} bytes; the limit is 65535")
    return struct.pack(">BH", type_code, len(raw)) + raw


def _encode_headers(headers: Mapping[str, HeaderValue]) -> bytes:
    parts = []
    for name, value in headers.items():
        raw_name = name.encode()
        if not 0 < len(raw_name) <= 0xFF:  # u8 length prefix
            raise ValueError(f"event-stream header name {name!r} must be 1 to 255 bytes")
        parts.append(bytes([len(raw_name)]) + raw_name + _encode_value(value))
    return b"".join(parts)


def encode_message(headers: Mapping[str, HeaderValue], payload: bytes) -> bytes:
    """One event-stream message: prelude, prelude CRC32, headers, payload, message CRC32."""
    raw_headers = _encode_headers(headers)
    if len(raw_headers) > MAX_HEADERS_LENGTH or len(payload) > MAX_PAYLOAD_LENGTH:
        raise ValueError(
            f"event-stream message too large: headers {len(raw_headers)} bytes (max {MAX_HEADERS_LENGTH}), "
            f"payload {len(payload)} bytes (max {MAX_PAYLOAD_LENGTH}); split the payload into several events"
        )
    total = _PRELUDE.size + _CRC.size + len(raw_headers) + len(payload) + _CRC.size
    prelude = _PRELUDE.pack(total, len(raw_headers))
    prelude_crc = _CRC.pack(zlib.crc32(prelude))
    body = prelude + prelude_crc + raw_headers + payload
    return body + _CRC.pack(zlib.crc32(body))  # the message CRC covers everything before it, prelude CRC included


def _json(value: Mapping[str, object]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def event(event_type: str, payload: Mapping[str, object] | bytes, content_type: str = "application/json") -> bytes:
    """A data event. `event_type` is the union member boto3 yields: `chunk`, `messageStart`, `metadata`, ..."""
    headers = {":message-type": "event", ":event-type": event_type, ":content-type": content_type}
    return encode_message(headers, payload if isinstance(payload, bytes) else _json(payload))


def chunk_event(model_json: Mapping[str, object]) -> bytes:
    """An InvokeModelWithResponseStream chunk: boto3 yields `{"chunk": {"bytes": <model_json as JSON bytes>}}`."""
    # The blob travels base64'd inside JSON; botocore decodes it back to bytes. (AWS also adds a padding key "p"
    # to hide token lengths; botocore ignores it and so do we.)
    return event("chunk", {"bytes": base64.b64encode(_json(model_json)).decode()})


def exception_event(exception_type: str, message: str, **extra: object) -> bytes:
    """A modeled error mid-stream; boto3 raises `EventStreamError` with code `exception_type`.

    `exception_type` is the stream's union member name (`modelStreamErrorException`, `throttlingException`, ...),
    not the class name; `extra` adds members such as `originalStatusCode`.
    """
    headers = {":message-type": "exception", ":exception-type": exception_type, ":content-type": "application/json"}
    return encode_message(headers, _json({"message": message, **extra}))


def error_event(code: str, message: str) -> bytes:
    """An unmodeled error mid-stream: code and message travel in headers and the payload is empty."""
    return encode_message({":message-type": "error", ":error-code": code, ":error-message": message}, b"")


__all__ = [
    "CONTENT_TYPE",
    "HeaderValue",
    "MAX_HEADERS_LENGTH",
    "MAX_PAYLOAD_LENGTH",
    "encode_message",
    "event",
    "chunk_event",
    "exception_event",
    "error_event",
]
