import json

import pytest

from tuneforge.catalog.entries import BodyFormat
from tuneforge.errors import InvalidInput
from tuneforge.inference.params import Delta, GenerationResult, Message, StopReason
from tuneforge.wire.bodies import llama2_prompt_to_messages, parse_body, render_response, render_stream_chunk


def test_llama2_defaults_and_plain_prompt():
    request = parse_body(json.dumps({"prompt": "Summary: "}).encode(), BodyFormat.LLAMA2)
    assert request.prompt == "Summary: " and request.messages is None
    assert (request.params.temperature, request.params.top_p, request.params.max_tokens) == (0.5, 0.9, 512)


def test_llama2_chat_markup_becomes_messages():
    prompt = "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Who are you? [/INST]"
    assert llama2_prompt_to_messages(prompt) == (
        Message("system", "Be brief."), Message("user", "Hi"), Message("assistant", "Hello!"), Message("user", "Who are you?"),
    )
    request = parse_body({"prompt": prompt, "max_gen_len": 64, "temperature": 0.0}, BodyFormat.LLAMA2)
    assert request.messages[-1] == Message("user", "Who are you?") and request.params.max_tokens == 64
    # markup followed by stray text is not a chat: sent as is
    assert llama2_prompt_to_messages("[INST] a [/INST] b") is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": "x", "max_gen_len": 0}, "max_gen_len"),
        ({"prompt": "x", "max_gen_len": 2049}, "max_gen_len"),
        ({"prompt": "x", "temperature": 1.5}, "temperature"),
        ({"prompt": "x", "top_p": "0.9"}, "top_p"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x", "maxTokens": 5}, "maxTokens"),
        ({}, "prompt"),
    ],
)
def test_llama2_bad_bodies_name_the_field(body, field):
    with pytest.raises(InvalidInput) as err:
        parse_body(body, BodyFormat.LLAMA2)
    assert err.value.field == field and field in err.value.message


def test_bad_json_and_non_object():
    with pytest.raises(InvalidInput, match="not valid JSON"):
        parse_body(b"{oops", BodyFormat.LLAMA2)
    with pytest.raises(InvalidInput, match="JSON object"):
        parse_body(b"[1, 2]", BodyFormat.TITAN)


def test_titan_body():
    request = parse_body(
        {"inputText": "User: hi\nBot:", "textGenerationConfig": {"maxTokenCount": 100, "stopSequences": ["User:"], "topP": 1}},
        BodyFormat.TITAN,
    )
    assert request.messages == (Message("user", "hi"),)  # Titan chat markup -> the model's own chat template
    assert (request.params.max_tokens, request.params.stop, request.params.temperature, request.params.top_p) == (100, ("User:",), 0.7, 1.0)
    with pytest.raises(InvalidInput) as err:
        parse_body({"inputText": "x", "textGenerationConfig": {"maxTokenCount": 9000}}, BodyFormat.TITAN)
    assert err.value.field == "maxTokenCount"
    with pytest.raises(InvalidInput):
        parse_body({"inputText": "x", "textGenerationConfig": {"stopSequences": "User:"}}, BodyFormat.TITAN)
    with pytest.raises(InvalidInput):
        parse_body({"prompt": "x"}, BodyFormat.TITAN)


def test_responses_and_stream_chunks():
    result = GenerationResult(text="Hi.", prompt_tokens=7, completion_tokens=3, stop_reason=StopReason.STOP_SEQUENCE)
    assert render_response(result, BodyFormat.LLAMA2) == {
        "generation": "Hi.", "prompt_token_count": 7, "generation_token_count": 3, "stop_reason": "stop",
    }
    assert render_response(result, BodyFormat.TITAN) == {
        "inputTextTokenCount": 7,
        "results": [{"tokenCount": 3, "outputText": "Hi.", "completionReason": "STOP_CRITERIA_MET"}],
    }
    length = GenerationResult(text="a", prompt_tokens=1, completion_tokens=1, stop_reason=StopReason.LENGTH)
    assert render_response(length, BodyFormat.LLAMA2)["stop_reason"] == "length"
    assert render_response(length, BodyFormat.TITAN)["results"][0]["completionReason"] == "LENGTH"
    first = render_stream_chunk(Delta("Hi"), BodyFormat.LLAMA2, first=True, prompt_tokens=7, tokens_so_far=1)
    assert first == {"generation": "Hi", "prompt_token_count": 7, "generation_token_count": 1, "stop_reason": None}
    last = render_stream_chunk(Delta(".", result), BodyFormat.TITAN, first=False, prompt_tokens=7, tokens_so_far=3)
    assert last == {"outputText": ".", "index": 0, "totalOutputTextTokenCount": 3, "completionReason": "STOP_CRITERIA_MET", "inputTextTokenCount": None}


def test_titan_conversation_markup_becomes_chat_messages():
    from tuneforge.wire.bodies import titan_prompt_to_messages

    request = parse_body({"inputText": "Be brief.\nUser: Which ferry?\nBot: The Morwen Tide.\nUser: When?\nBot:"}, BodyFormat.TITAN)
    assert [(m.role, m.content) for m in request.messages] == [
        ("system", "Be brief."), ("user", "Which ferry?"), ("assistant", "The Morwen Tide."), ("user", "When?")]
    assert [(m.role, m.content) for m in titan_prompt_to_messages("User: hi\nBot:")] == [("user", "hi")]
    for plain in ("Describe the book.", "User: hi", "User: hi\nBot: hello", "Bot: hi\nUser: x\nBot:"):
        assert titan_prompt_to_messages(plain) is None  # no open Bot turn, or not a conversation: sent as raw text
    assert parse_body({"inputText": "Describe the book."}, BodyFormat.TITAN).prompt == "Describe the book."
