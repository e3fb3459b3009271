"""Which dtype should the default model run in on this CPU? float32 (baseline) vs bfloat16, same run.

    python bench/cpu_dtype.py [--tokens 64] [--threads N]
    python bench/cpu_dtype.py --tokens 4 --passages 1     # smoke run (CI)

Speed: decode tokens/s at batch 1 (greedy, 64 new tokens, after a warm-up) and prefill tokens/s on a
~400-token prompt (`--passages` 3 copies of a ~130-token passage). Quality: perplexity of each dtype on the same
prompt (teacher forcing) and how many of the float32 greedy tokens bfloat16 reproduces. Prints each figure with
its ratio against float32.
"""

from __future__ import annotations

import argparse
import math
import time

from _preflight import require  # bench/ is sys.path[0] when a benchmark runs

require("tuneforge", "torch", "transformers")

import torch  # noqa: E402

from tuneforge.catalog.builtin import BUILTIN_MODELS, DEFAULT_MODEL_ID, package_path  # noqa: E402
from tuneforge.inference.device import cpu_has_native_bf16  # noqa: E402
from tuneforge.inference.engine import LocalEngine  # noqa: E402
from tuneforge.inference.materialize import materialize_gguf  # noqa: E402
from tuneforge.inference.params import GenerationRequest, Message, SamplingParams  # noqa: E402
from tuneforge.settings import load_settings  # noqa: E402

PASSAGE = (
    "A customer walks up to the front desk of a hotel and says that he has a reservation. The receptionist asks "
    "for his name and finds the booking: a double room for three nights. She explains that breakfast is served "
    "from seven to ten in the restaurant on the ground floor, that the swimming pool closes at nine in the "
    "evening, and that checkout is at noon. The customer asks whether he can pay by credit card, and she tells "
    "him that the hotel accepts most major cards. She hands him the key to his room on the fifth floor and "
    "wishes him a pleasant stay. "
)


def perplexity(engine: LocalEngine, passage: str) -> float:
    ids = torch.tensor([engine.tokenizer(passage)["input_ids"]])
    with torch.inference_mode():
        loss = engine.model(ids, labels=ids).loss.float()
    return math.exp(loss.item())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--passages", type=int, default=3, help="copies of the passage in the prefill prompt and the perplexity text")
    args = parser.parse_args()
    passage = PASSAGE * args.passages
    torch.set_num_threads(args.threads)
    settings = load_settings()
    entry = next(m for m in BUILTIN_MODELS if m.model_id == DEFAULT_MODEL_ID)
    checkpoint = materialize_gguf(package_path(entry.source.location), settings.models_dir / DEFAULT_MODEL_ID)

    question = GenerationRequest(
        messages=(Message("user", "Explain in a few sentences how a hotel check-in works."),),
        params=SamplingParams(temperature=0.0, max_tokens=args.tokens),
    )
    prefill = GenerationRequest(prompt=passage, params=SamplingParams(temperature=0.0, max_tokens=1))
    rows = {}
    for dtype in ("float32", "bfloat16"):
        engine = LocalEngine(checkpoint, device="cpu", dtype=dtype)
        engine.generate(GenerationRequest(prompt="warm up", params=SamplingParams(temperature=0.0, max_tokens=4)))
        started = time.perf_counter()
        result = engine.generate(question)
        decode = result.completion_tokens / (time.perf_counter() - started)
        started = time.perf_counter()
        p = engine.generate(prefill)
        prefill_rate = p.prompt_tokens / (time.perf_counter() - started)
        rows[dtype] = {"decode": decode, "prefill": prefill_rate, "ppl": perplexity(engine, passage),
                       "ids": engine.tokenizer(result.text)["input_ids"]}
        del engine
    base, bf16 = rows["float32"], rows["bfloat16"]
    agree = 0
    for a, b in zip(base["ids"], bf16["ids"]):
        if a != b:
            break
        agree += 1
    print(f"CPU native bf16: {cpu_has_native_bf16()}, threads: {args.threads}, model: {DEFAULT_MODEL_ID}")
    print(f"{'':22}{'float32':>12}{'bfloat16':>12}{'ratio':>8}")
    print(f"{'decode tokens/s':22}{base['decode']:12.1f}{bf16['decode']:12.1f}{bf16['decode'] / base['decode']:8.2f}")
    print(f"{'prefill tokens/s':22}{base['prefill']:12.1f}{bf16['prefill']:12.1f}{bf16['prefill'] / base['prefill']:8.2f}")
    print(f"{'perplexity (passage)':22}{base['ppl']:12.3f}{bf16['ppl']:12.3f}{bf16['ppl'] / base['ppl']:8.3f}")
    print(f"greedy tokens identical before the first difference: {agree} of {len(base['ids'])}")


if __name__ == "__main__":
    main()
