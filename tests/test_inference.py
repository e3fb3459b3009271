"""The local engine and its worker process, on the tiny random-init Llama."""

import asyncio
import importlib.util
import subprocess
import sys
import threading
import time

import pytest

from tuneforge.errors import InvalidInput, ModelFailure, NotFound, Throttled, Unavailable
from tuneforge.inference.engine import LocalEngine
from tuneforge.inference.params import GenerationRequest, Message, SamplingParams, StopReason
from tuneforge.inference.protocol import Engine, Generation
from tuneforge.inference.spec import Capacity, WorkerSpec
from tuneforge.inference.worker import ENGINES, load_engine
from tuneforge.serving.client import WorkerProcess
from tuneforge.serving.pool import WorkerPool


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    return LocalEngine(tiny_model_dir, dtype="float32")


def greedy(prompt="The guest checks in", **kwargs):
    return GenerationRequest(prompt=prompt, params=SamplingParams(temperature=0.0, **kwargs))


def test_greedy_is_deterministic_and_counts_tokens(engine):
    first, second = engine.generate(greedy(max_tokens=12)), engine.generate(greedy(max_tokens=12))
    assert first == second.__class__(**{**vars(second), "first_token_seconds": first.first_token_seconds, "total_seconds": first.total_seconds})
    assert first.prompt_tokens == len(engine.tokenizer("The guest checks in")["input_ids"])
    assert first.completion_tokens == 12 and first.stop_reason is StopReason.LENGTH


def test_seeded_sampling_repeats(engine):
    request = GenerationRequest(prompt="Exchange rules", params=SamplingParams(temperature=1.0, top_p=0.95, max_tokens=16, seed=7))
    assert engine.generate(request).text == engine.generate(request).text
    texts = {engine.generate(GenerationRequest(prompt="Exchange rules", params=SamplingParams(temperature=1.0, max_tokens=16, seed=s))).text for s in range(4)}
    assert len(texts) > 1


def test_stream_concatenates_to_the_result(engine):
    deltas = list(engine.stream(greedy(max_tokens=20)))
    assert deltas[-1].result is not None and all(d.result is None for d in deltas[:-1])
    assert "".join(d.text for d in deltas) == deltas[-1].result.text


def test_stop_sequence_is_cut_and_never_streamed(engine):
    full = engine.generate(greedy(max_tokens=30)).text
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    assert len(stop) == 3 and stop.strip(), f"unexpected greedy output {full!r}"
    deltas = list(engine.stream(greedy(max_tokens=30, stop=(stop,))))
    result = deltas[-1].result
    assert result.stop_reason is StopReason.STOP_SEQUENCE
    assert result.text == full[: full.index(stop)]
    assert "".join(d.text for d in deltas) == result.text


def test_chat_messages_use_the_chat_template(engine):
    request = GenerationRequest(messages=(Message("system", "Be brief."), Message("user", "hello")), params=SamplingParams(temperature=0, max_tokens=3))
    text = engine.tokenizer.decode(engine.prompt_ids(request))
    assert text == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"
    assert engine.generate(request).completion_tokens <= 3


def test_prompt_longer_than_the_context_is_refused(engine):
    with pytest.raises(InvalidInput, match="longer than the model's context of 256"):
        engine.generate(greedy(prompt="rules " * 400))


def test_generation_stops_at_the_context_window(engine):
    result = engine.generate(greedy(prompt="rules " * 120, max_tokens=500))
    assert result.prompt_tokens + result.completion_tokens <= 256 and result.stop_reason is StopReason.LENGTH


@pytest.mark.slow  # a worker process
def test_worker_process_streams_and_survives_bad_requests(tiny_model_dir):
    with WorkerProcess(WorkerSpec("tiny", str(tiny_model_dir), dtype="float32")) as worker:
        assert worker.info.device == "cpu" and worker.info.context_length == 256
        deltas = list(worker.stream(greedy(max_tokens=8)))
        assert deltas[-1].result.completion_tokens == 8
        with pytest.raises(InvalidInput) as err:
            worker.generate(greedy(prompt="rules " * 400))
        assert err.value.field == "prompt"
        assert worker.generate(greedy(max_tokens=4)).completion_tokens == 4  # still serving


@pytest.mark.slow  # a worker process
def test_coroutines_stream_from_one_worker_at_once(tiny_model_dir):
    """The server's path: many astreams on one event loop, each answered in full and in its own words; one that
    leaves early frees its place, and a worker that dies fails the streams in flight instead of hanging them."""
    async def collect(worker, request):
        deltas = [d async for d in worker.astream(request)]
        return "".join(d.text for d in deltas), deltas[-1].result

    async def scenario(worker):
        prompts = [f"Guest {i} checks in" for i in range(6)]
        streamed = await asyncio.gather(*(collect(worker, greedy(p, max_tokens=12)) for p in prompts))
        for prompt, (text, result) in zip(prompts, streamed):
            assert text == result.text == (await worker.agenerate(greedy(prompt, max_tokens=12))).text
            assert result.completion_tokens == 12
        assert len({text for text, _ in streamed}) > 1  # different prompts, different answers: none was crossed

        early = worker.astream(greedy(max_tokens=200, ignore_eos=True))
        assert (await anext(early)).result is None
        await early.aclose()
        assert worker.pending() == 0

        dying = worker.astream(greedy(max_tokens=200, ignore_eos=True))
        await anext(dying)
        worker.kill()
        with pytest.raises(ModelFailure, match="stopped while answering"):
            async for _ in dying:
                pass

    with WorkerProcess(WorkerSpec("tiny", str(tiny_model_dir), dtype="float32")) as worker:
        asyncio.run(scenario(worker))


@pytest.mark.slow  # a worker process
def test_the_pool_starts_workers_with_the_servers_capacity(tiny_model_dir):
    """Batch 1, queue 1: while one request decodes and one waits, the next is refused."""
    pool = WorkerPool(capacity=Capacity(max_batch_size=1, max_queue=1))
    try:
        worker = pool.get("tiny", lambda: WorkerSpec("tiny", str(tiny_model_dir), dtype="float32"))
        decoding = worker.stream(greedy(max_tokens=240, ignore_eos=True))
        next(decoding)  # it holds the batch's one place
        waited = []
        waiting = threading.Thread(target=lambda: waited.append(worker.generate(greedy(max_tokens=4))))
        waiting.start()
        while worker.pending() < 2:  # registered: its line goes to the worker right after
            time.sleep(0.01)
        time.sleep(0.2)  # so it is in the pipe before the next request's line
        with pytest.raises(Throttled, match="max_queue=1"):
            worker.generate(greedy(max_tokens=4))
        decoding.close()  # cancels it: the waiting one decodes next
        waiting.join()
        assert waited[0].completion_tokens == 4
    finally:
        pool.close()


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_every_engine_keeps_the_protocol(name, tiny_model_dir):
    """What the worker relies on, for each engine it can load in this environment: submit at once, stream to the
    result, cancel, refuse beyond the queue. (vLLM lives in its own environment: tests/test_vllm_engine.py.)"""
    if name == "vllm" and importlib.util.find_spec("vllm") is None:
        pytest.skip("vllm is not installed in this environment (tests/test_vllm_engine.py runs it in its own)")
    engine = load_engine(WorkerSpec("tiny", str(tiny_model_dir), dtype="float32", engine=name, max_batch_size=1, max_queue=1))
    try:
        assert isinstance(engine, Engine) and engine.context_length == 256 and engine.max_batch_size == 1
        handle = engine.submit(greedy(max_tokens=6))
        assert isinstance(handle, Generation)
        deltas = list(handle)
        assert "".join(d.text for d in deltas) == deltas[-1].result.text and deltas[-1].result.completion_tokens == 6
        running = engine.submit(greedy(max_tokens=240, ignore_eos=True))
        next(iter(running))  # decoding: the batch of one is full
        waiting = engine.submit(greedy(max_tokens=4))
        with pytest.raises(Throttled):
            engine.submit(greedy(max_tokens=4))
        running.cancel()
        with pytest.raises(ModelFailure, match="cancelled"):
            running.result()
        assert waiting.result().completion_tokens == 4  # the cancelled one's place went to the next
    finally:
        engine.close()


@pytest.mark.slow  # a worker process
def test_an_unknown_engine_is_named(tiny_model_dir):
    with pytest.raises(InvalidInput, match="engine 'nope' is not one of: builtin") as err:
        WorkerProcess(WorkerSpec("tiny", str(tiny_model_dir), engine="nope"))
    assert err.value.field == "engine"


@pytest.mark.slow  # a worker process
@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
def test_vllm_without_vllm_says_how_to_get_it(tiny_model_dir):
    with pytest.raises(Unavailable, match="TUNEFORGE_VLLM_PYTHON") as err:
        WorkerProcess(WorkerSpec("tiny", str(tiny_model_dir), engine="vllm"))
    assert err.value.field == "engine"


@pytest.mark.slow  # a worker process
def test_worker_reports_a_missing_checkpoint(tmp_path):
    with pytest.raises((NotFound, ModelFailure, OSError, InvalidInput)):
        WorkerProcess(WorkerSpec("ghost", str(tmp_path / "nothing-here")))


def test_api_side_modules_do_not_import_torch():
    code = (
        "import sys, tuneforge.cli.main, tuneforge.api.app, tuneforge.catalog.service, tuneforge.serving.client, tuneforge.wire.bodies\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'transformers' not in sys.modules, 'transformers was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_capacity_sets_the_engine_of_generation_workers_only():
    capacity = Capacity(max_batch_size=3, max_queue=5, engine="vllm", python="/opt/vllm/bin/python")
    generate = capacity.apply(WorkerSpec("m", "/ckpt"))
    embed = capacity.apply(WorkerSpec("e", "/st", task="embed"))
    assert (generate.engine, generate.python, generate.max_batch_size, generate.max_queue) == ("vllm", "/opt/vllm/bin/python", 3, 5)
    assert (embed.engine, embed.python) == ("builtin", None)  # sentence-transformers runs where tuneforge does


def test_a_worker_in_another_python_finds_this_tuneforge(tmp_path):
    """`python=` runs the child with another interpreter; PYTHONPATH leads it to this checkout's package."""
    from tuneforge.processes.local import LOCAL, SOURCE_ROOT

    probe = LOCAL.spawn("site", [], stdout=subprocess.PIPE, python=sys.executable, env={"PYTHONPATH": str(tmp_path)})
    out, _ = probe.communicate(timeout=60)  # `python -m site` prints sys.path
    assert probe.returncode == 0 and f"'{SOURCE_ROOT}'" in out and f"'{tmp_path}'" in out
