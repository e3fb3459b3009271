"""The continuous-batching engine on the tiny random-init Llama, with real client threads.

The reference for every output is the single-request LocalEngine on the same checkpoint, in float32.
"""

from __future__ import annotations

import threading

import pytest

from tuneforge.errors import InvalidInput, ModelFailure, Throttled
from tuneforge.inference.batch_engine import BatchEngine
from tuneforge.inference.engine import LocalEngine
from tuneforge.inference.params import GenerationRequest, Message, SamplingParams, StopReason

PROMPTS = [
    "The guest checks in",
    "Exchange rules describe order types, auctions, market makers and",
    "Fine",
    "Knowledge bases retrieve passages and answer questions with citations. The room is on the fifth",
    "Continued pre-training teaches a model",
    "Summarize the simplest and most interesting part of the following conversation. The guest pays with",
]


def greedy(prompt: str, **kwargs) -> GenerationRequest:
    return GenerationRequest(prompt=prompt, params=SamplingParams(temperature=0.0, **kwargs))


def long_running(max_tokens: int = 200) -> GenerationRequest:
    """A request that holds its slot for a while: the end token cannot cut it short."""
    return greedy("The guest checks in", max_tokens=max_tokens, ignore_eos=True)


@pytest.fixture(scope="module")
def reference(tiny_model_dir) -> LocalEngine:
    return LocalEngine(tiny_model_dir, dtype="float32")


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    # 3 slots for up to 6 concurrent requests: sequences must join and leave the running batch
    with BatchEngine(tiny_model_dir, dtype="float32", max_batch_size=3, max_queue=16) as engine:
        yield engine


def same_output(got, want) -> bool:
    return (got.text, got.prompt_tokens, got.completion_tokens, got.stop_reason) == (
        want.text, want.prompt_tokens, want.completion_tokens, want.stop_reason,
    )


def test_greedy_batch_outputs_equal_single_request_outputs(engine, reference):
    requests = [greedy(p, max_tokens=m) for p, m in zip(PROMPTS, [40, 9, 60, 25, 3, 50])]
    requests.append(GenerationRequest(messages=(Message("user", "hello"),), params=SamplingParams(temperature=0, max_tokens=30)))
    want = [reference.generate(r) for r in requests]
    first_wave = [engine.submit(r) for r in requests[:4]]
    next(iter(first_wave[0]))  # staggered: the rest arrive while the first wave is decoding
    second_wave = [engine.submit(r) for r in requests[4:]]
    got = [h.result() for h in first_wave + second_wave]
    for g, w in zip(got, want):
        assert same_output(g, w), (g, w)
        assert 0 < g.first_token_seconds <= g.total_seconds


def test_concurrent_streams_concatenate_to_their_results(engine):
    outcomes: dict[int, tuple[str, object]] = {}

    def client(i: int) -> None:
        deltas = list(engine.submit(greedy(PROMPTS[i], max_tokens=20 + 7 * i)))
        assert deltas[-1].result is not None and all(d.result is None for d in deltas[:-1])
        outcomes[i] = ("".join(d.text for d in deltas), deltas[-1].result)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(PROMPTS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == list(range(len(PROMPTS)))
    for streamed, result in outcomes.values():
        assert streamed == result.text


def test_stop_sequences_are_per_request(engine, reference):
    full = [reference.generate(greedy(p, max_tokens=30)).text for p in PROMPTS[:3]]
    stops = [text[len(text) // 2 : len(text) // 2 + 3] for text in full]
    assert all(len(s) == 3 and s.strip() for s in stops), f"unexpected greedy outputs {full!r}"
    requests = [greedy(PROMPTS[0], max_tokens=30, stop=(stops[0],)), greedy(PROMPTS[1], max_tokens=30, stop=(stops[1],)),
                greedy(PROMPTS[2], max_tokens=30)]
    handles = [engine.submit(r) for r in requests]
    streams = [list(h) for h in handles]
    for i in range(2):
        result = streams[i][-1].result
        assert result.stop_reason is StopReason.STOP_SEQUENCE and result.text == full[i][: full[i].index(stops[i])]
        assert "".join(d.text for d in streams[i]) == result.text  # never streamed past the stop
    assert streams[2][-1].result.text == full[2]


def test_max_tokens_and_the_context_window(engine, reference):
    short, at_context = greedy(PROMPTS[0], max_tokens=5, ignore_eos=True), greedy("rules " * 120, max_tokens=500)
    handles = [engine.submit(short), engine.submit(at_context)]
    got_short, got_context = (h.result() for h in handles)
    assert got_short.completion_tokens == 5 and got_short.stop_reason is StopReason.LENGTH
    assert got_context.prompt_tokens + got_context.completion_tokens <= 256
    assert same_output(got_context, reference.generate(at_context))


def test_sampling_params_are_per_request_and_seeded(engine, reference):
    requests = [
        GenerationRequest(prompt="Exchange rules", params=SamplingParams(temperature=1.0, top_p=0.95, max_tokens=16, seed=7)),
        GenerationRequest(prompt="Exchange rules", params=SamplingParams(temperature=1.0, top_p=1.0, max_tokens=16, seed=8)),
        greedy("Exchange rules", max_tokens=16),
    ]
    want = [reference.generate(r).text for r in requests]
    for _ in range(2):  # repeatable, whatever else shares the batch
        assert [h.result().text for h in [engine.submit(r) for r in requests]] == want
    assert len(set(want)) == 3


def test_a_bad_request_fails_alone(engine, reference):
    good = [greedy(p, max_tokens=12) for p in PROMPTS[:2]]
    handles = [engine.submit(good[0]), engine.submit(greedy("rules " * 400)), engine.submit(good[1])]
    with pytest.raises(InvalidInput, match="longer than the model's context of 256") as err:
        handles[1].result()
    assert err.value.field == "prompt"
    assert [h.result().text for h in (handles[0], handles[2])] == [reference.generate(r).text for r in good]


def test_a_full_queue_throttles_and_recovers(tiny_model_dir):
    with BatchEngine(tiny_model_dir, dtype="float32", max_batch_size=1, max_queue=2) as engine:
        accepted = []
        with pytest.raises(Throttled, match="max_queue=2"):
            for _ in range(4):  # one slot runs a long request; at most two more may wait
                accepted.append(engine.submit(long_running()))
        assert len(accepted) in (2, 3)
        assert all(h.result().completion_tokens == 200 for h in accepted)
        assert engine.generate(greedy("Fine", max_tokens=3)).completion_tokens == 3


def test_cancel_ends_the_stream_and_frees_the_slot(tiny_model_dir):
    with BatchEngine(tiny_model_dir, dtype="float32", max_batch_size=1) as engine:
        handle = engine.submit(long_running(max_tokens=250))
        stream = iter(handle)
        next(stream)
        handle.cancel()
        assert all(d.result is None for d in stream)  # ends without a result
        with pytest.raises(ModelFailure, match="cancelled"):
            handle.result()
        # the engine goes on serving with its only slot
        assert engine.generate(greedy("Fine", max_tokens=4)).completion_tokens == 4


def test_close_fails_running_and_waiting_requests(tiny_model_dir):
    engine = BatchEngine(tiny_model_dir, dtype="float32", max_batch_size=1)
    running = engine.submit(long_running(max_tokens=250))
    waiting = [engine.submit(long_running()) for _ in range(2)]
    next(iter(running))  # it is decoding
    engine.close()
    for handle in [running, *waiting]:
        with pytest.raises(ModelFailure, match="closed"):
            handle.result()
    with pytest.raises(ModelFailure, match="closed"):
        engine.submit(greedy("Fine"))


def test_engine_and_request_settings_are_checked(tiny_model_dir):
    with pytest.raises(InvalidInput) as err:
        BatchEngine(tiny_model_dir, max_batch_size=0)
    assert err.value.field == "max_batch_size"
    with pytest.raises(InvalidInput) as err:
        SamplingParams(ignore_eos="yes")
    assert err.value.field == "ignore_eos"
