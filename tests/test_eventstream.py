"""tuneforge.api.eventstream against botocore's own decoder and response parser (the oracle; nothing is mocked).

Each message we encode is read back by `botocore.eventstream.EventStreamBuffer`, then by the rest-json parser with
the real bedrock-runtime operation models, and finally by a boto3 client whose only fake is the HTTP transport.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from uuid import UUID

import botocore.session
import pytest
from botocore.awsrequest import AWSResponse, HeadersDict
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer, EventStreamMessage
from botocore.exceptions import EventStreamError
from botocore.parsers import create_parser

from tuneforge.api.eventstream import (
    CONTENT_TYPE,
    MAX_PAYLOAD_LENGTH,
    chunk_event,
    encode_message,
    error_event,
    event,
    exception_event,
)

RUNTIME = botocore.session.get_session().get_service_model("bedrock-runtime")


class RawStream:
    """What botocore reads an event-stream body from (urllib3's response): `.stream()` yielding byte pieces."""

    def __init__(self, data: bytes, piece: int = 7) -> None:
        self._data, self._piece = data, piece  # 7: odd-sized pieces split preludes, headers and CRCs mid-way

    def stream(self, **_: object) -> Iterator[bytes]:
        for start in range(0, len(self._data), self._piece):
            yield self._data[start : start + self._piece]

    def close(self) -> None:
        pass


def decode(data: bytes) -> list[EventStreamMessage]:
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    return list(buffer)


def parse_stream(operation: str, body: bytes, headers: dict[str, str] | None = None) -> dict:
    """botocore's rest-json parser on a 200 response whose body is `body`, for a bedrock-runtime operation."""
    parser = create_parser("rest-json")
    # the dict botocore.endpoint.convert_to_response_dict builds; "context" names the operation for error messages
    response = {"status_code": 200, "headers": HeadersDict(headers or {}), "body": RawStream(body),
                "context": {"operation_name": operation}}
    return parser.parse(response, RUNTIME.operation_model(operation).output_shape)


# ---- framing, read back by EventStreamBuffer


def test_every_header_type_round_trips():
    when = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    uuid = UUID("12345678-1234-5678-1234-567812345678")
    headers = {
        "str": "héllo", "bytes": b"\x00\xff", "yes": True, "no": False, "int32": -(2**31), "int64": 2**40,
        "when": when, "uuid": uuid, "empty": "",
    }
    data = encode_message(headers, b'{"x":1}')
    (message,) = decode(data)
    assert message.headers == {**headers, "when": 1704164645678, "uuid": uuid.bytes}  # botocore leaves ms and raw bytes
    assert message.payload == b'{"x":1}'
    # wire layout: int sizes picked from the value, type codes from the spec
    assert data[data.index(b"int32") + 5] == 4 and data[data.index(b"int64") + 5] == 5
    assert data[data.index(b"when") + 4] == 8 and data[data.index(b"yes") + 3] == 0


def test_lengths_and_both_crcs():
    data = encode_message({":event-type": "chunk"}, b"payload")
    total, headers_len, prelude_crc = struct.unpack(">III", data[:12])
    assert total == len(data) and headers_len == len(data) - 12 - len(b"payload") - 4
    assert prelude_crc == zlib.crc32(data[:8])
    assert struct.unpack(">I", data[-4:])[0] == zlib.crc32(data[:-4]) == decode(data)[0].crc


@pytest.mark.parametrize("offset", [0, 9, -5, -1], ids=["prelude", "prelude-crc", "payload", "message-crc"])
def test_botocore_rejects_a_flipped_byte(offset: int):
    data = bytearray(event("chunk", b"0123456789"))
    data[offset] ^= 0x01
    with pytest.raises(ChecksumMismatch):
        decode(bytes(data))


def test_several_messages_in_one_buffer():
    data = event("a", {"n": 1}) + event("b", b"") + error_event("Boom", "bad")
    assert [m.headers.get(":event-type") or m.headers[":error-code"] for m in decode(data)] == ["a", "b", "Boom"]


def test_builders_write_bedrock_headers():
    (message,) = decode(event("messageStart", {"role": "assistant"}))
    assert message.headers == {
        ":message-type": "event", ":event-type": "messageStart", ":content-type": "application/json"
    }
    assert json.loads(message.payload) == {"role": "assistant"}
    (message,) = decode(exception_event("modelStreamErrorException", "oops", originalStatusCode=500))
    assert message.headers[":message-type"] == "exception"
    assert message.headers[":exception-type"] == "modelStreamErrorException"
    assert json.loads(message.payload) == {"message": "oops", "originalStatusCode": 500}
    (message,) = decode(error_event("InternalFailure", "worker died"))
    assert message.headers == {
        ":message-type": "error", ":error-code": "InternalFailure", ":error-message": "worker died"
    }
    assert message.payload == b""
    assert CONTENT_TYPE == "application/vnd.amazon.eventstream"


@pytest.mark.parametrize(
    ("headers", "payload", "error"),
    [
        ({"x" * 256: "v"}, b"", ValueError),
        ({"": "v"}, b"", ValueError),
        ({"v": "x" * 65536}, b"", ValueError),
        ({"v": datetime(2024, 1, 1)}, b"", ValueError),  # naive: which timezone would it be?
        ({"v": 1.5}, b"", TypeError),
        ({"v": 2**63}, b"", ValueError),
        ({}, b"x" * (MAX_PAYLOAD_LENGTH + 1), ValueError),
    ],
    ids=["long-name", "empty-name", "long-value", "naive-time", "float", "int-overflow", "payload-too-big"],
)
def test_refuses_what_botocore_could_not_read(headers: dict, payload: bytes, error: type[Exception]):
    with pytest.raises(error):
        encode_message(headers, payload)


# ---- through botocore's rest-json parser and the bedrock-runtime operation models


def test_invoke_model_with_response_stream_yields_chunks():
    pieces = [{"generation": "Hel", "prompt_token_count": 5}, {"generation": "lo", "stop_reason": "stop"}]
    parsed = parse_stream(
        "InvokeModelWithResponseStream",
        b"".join(chunk_event(p) for p in pieces),
        {"Content-Type": CONTENT_TYPE, "X-Amzn-Bedrock-Content-Type": "application/json"},
    )
    assert parsed["contentType"] == "application/json"
    events = list(parsed["body"])
    assert events == [{"chunk": {"bytes": json.dumps(p, separators=(",", ":")).encode()}} for p in pieces]
    assert [json.loads(e["chunk"]["bytes"]) for e in events] == pieces


def test_converse_stream_events_have_botocore_shapes():
    usage = {"inputTokens": 5, "outputTokens": 2, "totalTokens": 7}
    sent = [
        ("messageStart", {"role": "assistant"}),
        ("contentBlockDelta", {"delta": {"text": "Hel"}, "contentBlockIndex": 0}),
        ("contentBlockDelta", {"delta": {"text": "lo"}, "contentBlockIndex": 0}),
        ("contentBlockStop", {"contentBlockIndex": 0}),
        ("messageStop", {"stopReason": "end_turn"}),
        ("metadata", {"usage": usage, "metrics": {"latencyMs": 42}}),
    ]
    parsed = parse_stream("ConverseStream", b"".join(event(name, payload) for name, payload in sent))
    assert list(parsed["stream"]) == [{name: payload} for name, payload in sent]


def test_unknown_event_type_is_silently_skipped_by_botocore():
    # A typo in an event type loses the event without any error on the client: name them from the model.
    body = event("messageStrat", {"role": "assistant"}) + event("contentBlockStop", {"contentBlockIndex": 0})
    parsed = parse_stream("ConverseStream", body)
    assert list(parsed["stream"]) == [{"contentBlockStop": {"contentBlockIndex": 0}}]


@pytest.mark.parametrize("operation", ["InvokeModelWithResponseStream", "ConverseStream"])
def test_exception_event_raises_event_stream_error_while_iterating(operation: str):
    if operation == "InvokeModelWithResponseStream":
        body = chunk_event({"generation": "a"})
    else:
        body = event("messageStart", {"role": "assistant"})
    body += exception_event(
        "modelStreamErrorException", "the worker crashed", originalStatusCode=500, originalMessage="OOM"
    )
    stream = iter(next(v for k, v in parse_stream(operation, body).items() if k in ("body", "stream")))
    assert next(stream)  # the event before the error still arrives
    with pytest.raises(EventStreamError) as caught:
        next(stream)
    # botocore keeps only code and message; originalStatusCode/originalMessage are parsed and then dropped
    assert caught.value.response["Error"] == {"Code": "modelStreamErrorException", "Message": "the worker crashed"}
    assert "modelStreamErrorException" in str(caught.value) and operation in str(caught.value)


def test_error_event_raises_with_header_code():
    parsed = parse_stream("InvokeModelWithResponseStream", error_event("InternalFailure", "worker died"))
    with pytest.raises(EventStreamError) as caught:
        list(parsed["body"])
    assert caught.value.response["Error"] == {"Code": "InternalFailure", "Message": "worker died"}


# ---- through a real boto3 client; only the HTTP transport is replaced


@pytest.fixture
def runtime_client():
    session = botocore.session.get_session()
    client = session.create_client(
        "bedrock-runtime", region_name="us-east-1", endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
    )
    replies: list[tuple[dict[str, str], bytes]] = []

    def send(request, **_):  # before-send: returning a response skips the network
        headers, body = replies.pop(0)
        return AWSResponse(request.url, 200, headers, RawStream(body))

    client.meta.events.register("before-send.bedrock-runtime.*", send)
    return client, replies


def test_boto3_client_streams_our_chunks(runtime_client):
    client, replies = runtime_client
    last = {"generation": "!", "stop_reason": "stop", "amazon-bedrock-invocationMetrics": {"inputTokenCount": 3}}
    replies.append(({"Content-Type": CONTENT_TYPE, "X-Amzn-Bedrock-Content-Type": "application/json"},
                    chunk_event({"generation": "Hi"}) + chunk_event(last)))
    response = client.invoke_model_with_response_stream(modelId="meta.llama2-13b-chat-v1", body=b'{"prompt":"x"}')
    assert response["contentType"] == "application/json"
    assert [json.loads(e["chunk"]["bytes"]) for e in response["body"]] == [{"generation": "Hi"}, last]


def test_boto3_client_converse_stream_and_midstream_error(runtime_client):
    client, replies = runtime_client
    replies.append(({"Content-Type": CONTENT_TYPE}, event("messageStart", {"role": "assistant"})
                    + event("contentBlockDelta", {"delta": {"text": "Hi"}, "contentBlockIndex": 0})
                    + exception_event("throttlingException", "slow down")))
    response = client.converse_stream(modelId="m", messages=[{"role": "user", "content": [{"text": "hi"}]}])
    received = []
    with pytest.raises(EventStreamError) as caught:
        for item in response["stream"]:
            received.append(item)
    assert received == [{"messageStart": {"role": "assistant"}},
                        {"contentBlockDelta": {"delta": {"text": "Hi"}, "contentBlockIndex": 0}}]
    assert caught.value.response["Error"]["Code"] == "throttlingException"
