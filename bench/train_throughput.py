"""LoRA fine-tuning throughput: tuneforge's `train()` vs TRL's `SFTTrainer` (default settings), same data, same run.

    python bench/train_throughput.py                  # 64 records, both sides (several minutes on 2 cores)
    python bench/train_throughput.py --skip-trl       # ours only, while developing
    python bench/train_throughput.py --records 16
    python bench/train_throughput.py --records 2 --dialogue-chars 200 --peak-size 256   # smoke run (CI): a step each

Workload: the default model (SmolLM2-135M-Instruct, materialized the product way), LoRA, one epoch over the
first `--records` DialogSum training dialogues (`../shared/data/dialogsum/train.jsonl`, or
$TUNEFORGE_SHARED_DATA/dialogsum/), prompt = the reference prompt + dialogue + "\\n\\nSummary: ", completion =
the summary (only the completion is learned, on both sides).
- Ours: `train()` with Bedrock-style hyperparameters {"batchSize": "4", "epochCount": "1"}; everything else our
  defaults (the LoRA rank, alpha, dropout and target modules of `Hyperparameters`, printed in the header; lr 2e-4;
  dtype auto = bf16 autocast over fp32 weights where the CPU has native bf16).
- TRL: `SFTTrainer(model=<checkpoint dir>, peft_config=<the same LoraConfig>)` with `SFTConfig` defaults except
  per_device_train_batch_size=4, num_train_epochs=1, our learning rate, use_cpu=True (without it transformers
  refuses bf16 on a machine without a GPU) and what running offline without side
  effects needs (report_to none, no eval, no saving). TRL's defaults then give bf16 autocast (SFTConfig turns
  `bf16` on), gradient checkpointing on, padding to the longest example of a random batch, logits everywhere.

Timing (model load, tokenization and saving excluded on both sides):
- Ours: `TrainResult.tokens_per_second` is real input tokens / the summed wall time of the optimizer steps
  (batch building, forward, backward, clipping, optimizer step), measured inside the loop; seconds = real tokens /
  that rate. train() loads the model and saves the artifact around the loop, so timing the whole call would mix
  those in, and timing between on_step callbacks would lose the first step (TRL's first step is counted).
- TRL: wall time of `trainer.train()` (its dataloader setup and callbacks included: small next to 16 steps).
- CPU seconds (process time, all threads) of the same span, ours the whole train() call (load and save add about
  2 s): on a shared machine this is steadier than wall time, as it leaves out time spent waiting for a core.
- Real tokens: non-padding input tokens of the epoch. Ours: the examples `train()` builds (the same
  `fine_tuning_examples` call, so the same tokenization and max length). TRL: the lengths of its tokenized
  dataset (`input_ids`, already cut at max_length), i.e. the attention mask summed over the epoch. Learned tokens
  (for the LM head's FLOPs): ours from on_step, TRL's from its `labels` column.

Peak: torch.matmul of 2048x2048 by 2048x2048 in bf16 and in fp32, `PEAK_WARMUP` calls then the best of
`PEAK_REPEATS` timed calls, torch's default threads. MFU = model FLOPs/s / the peak of the dtype a side computes in.
Model FLOPs of an example of T real tokens, L of them learned (LoRA: the base is frozen, so its backward computes
activation gradients, 2 FLOPs per weight per token, but no weight gradients):
    T * (4 * N_base + 6 * N_lora)            N_base: weights of the decoder layers (embedding and norms excluded)
  + L * 4 * N_head                           the LM head (tied, frozen) is only needed where a token is learned
  + 6 * layers * heads * head_dim * T^2      causal attention scores and values, forward (2 T^2 per layer) + backward
Also printed: the 6N convention, 6 x (all matmul weights, head included) x every token, which overstates what a
LoRA run must compute. Gradient checkpointing's recomputed forward (TRL) is hardware work, not model FLOPs, so
neither figure counts it.
Limits: other load on the machine slows both sides, unevenly if it changes between them: the load average is
printed before each phase. On a CPU busier than its cores, OpenMP's default spin-waiting makes every parallel
region wait for descheduled threads (measured: a 256-token forward 1.3 s alone vs 9-18 s at load 9 on 2 cores);
run with OMP_WAIT_POLICY=PASSIVE (read when torch loads, so set it in the environment) or --threads 1 there.
One epoch of 64 records is 16 steps, so the first step's warm-up weighs in.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from _preflight import require, shared_data  # bench/ is sys.path[0] when a benchmark runs

require("tuneforge", "torch", "transformers", "peft", "datasets", "trl")

# trl too is imported here, before any work: a broken install fails now, not after our side has trained
import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from peft import LoraConfig  # noqa: E402
from trl import SFTConfig, SFTTrainer  # noqa: E402

from tuneforge.catalog.builtin import BUILTIN_MODELS, DEFAULT_MODEL_ID, package_path  # noqa: E402
from tuneforge.catalog.entries import Customization  # noqa: E402
from tuneforge.inference.device import pick_dtype  # noqa: E402
from tuneforge.inference.materialize import materialize_gguf  # noqa: E402
from tuneforge.settings import load_settings  # noqa: E402
from tuneforge.training import TrainConfig, parse_hyperparameters, train  # noqa: E402
from tuneforge.training.data import fine_tuning_examples  # noqa: E402
from tuneforge.training.hparams import ALL_LINEAR  # noqa: E402
from tuneforge.training.trainer import DEFAULT_MAX_LEN  # noqa: E402

PROMPT = "Summarize the simplest and most interesting part of the following conversation.\n\n"
HYPERPARAMETERS = {"batchSize": "4", "epochCount": "1"}  # TRL's side gets the same batch, epochs and learning rate
PEAK_SIZE = 2048  # square matmul: large enough to reach the kernel's steady state, small enough to run in seconds
PEAK_WARMUP = 3
PEAK_REPEATS = 10


# ---- inputs ---------------------------------------------------------------------------------------------------------
def dialogsum_records(count: int, dialogue_chars: int | None = None) -> list[dict[str, str]]:
    path = shared_data("dialogsum/train.jsonl") / "dialogsum" / "train.jsonl"
    records = []
    with path.open() as lines:
        for line in lines:
            if len(records) == count:
                break
            row = json.loads(line)
            records.append({"prompt": PROMPT + row["dialogue"][:dialogue_chars] + "\n\nSummary: ", "completion": row["summary"]})
    return records


def default_checkpoint() -> Path:
    settings = load_settings()
    entry = next(m for m in BUILTIN_MODELS if m.model_id == DEFAULT_MODEL_ID)
    return materialize_gguf(package_path(entry.source.location), settings.models_dir / DEFAULT_MODEL_ID)


def load() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


# ---- peak -----------------------------------------------------------------------------------------------------------
def matmul_gflops(dtype: torch.dtype, size: int = PEAK_SIZE) -> float:
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    for _ in range(PEAK_WARMUP):
        torch.matmul(a, b)
    best = float("inf")
    for _ in range(PEAK_REPEATS):
        started = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


# ---- model FLOPs ----------------------------------------------------------------------------------------------------
def flop_counter(checkpoint: Path, rank: int):
    """A function (lengths, learned tokens) -> model FLOPs of one LoRA training pass (see the module docstring)."""
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(checkpoint)
    d, ff, heads, kv = c.hidden_size, c.intermediate_size, c.num_attention_heads, c.num_key_value_heads
    head_dim = getattr(c, "head_dim", None) or d // heads
    linears = [(d, heads * head_dim), (d, kv * head_dim), (d, kv * head_dim), (heads * head_dim, d),  # q k v o
               (d, ff), (d, ff), (ff, d)]  # gate up down
    n_base = c.num_hidden_layers * sum(i * o for i, o in linears)
    n_lora = c.num_hidden_layers * sum(rank * (i + o) for i, o in linears)
    n_head = c.vocab_size * d

    def flops(lengths: list[int], learned: int, convention: bool = False) -> float:
        tokens = sum(lengths)
        if convention:  # 6 x every matmul weight x every token, attention left out
            return 6 * (n_base + n_lora + n_head) * tokens
        attention = sum(6 * c.num_hidden_layers * heads * head_dim * t * t for t in lengths)
        return tokens * (4 * n_base + 6 * n_lora) + learned * 4 * n_head + attention

    return flops


# ---- ours -----------------------------------------------------------------------------------------------------------
def run_ours(checkpoint: Path, records: list[dict[str, str]]) -> dict[str, object]:
    from transformers import AutoConfig, AutoTokenizer

    hp = parse_hyperparameters(HYPERPARAMETERS, family="default")
    # the examples train() builds: same function, same max length and end token (the count does not depend on
    # which end token is appended)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    context = int(getattr(AutoConfig.from_pretrained(checkpoint), "max_position_embeddings", 0) or DEFAULT_MAX_LEN)
    max_len = hp.max_sequence_length or min(DEFAULT_MAX_LEN, context)
    examples, _ = fine_tuning_examples(tokenizer, records, max_len=max_len, eos_ids=[tokenizer.eos_token_id])
    lengths = [len(e.input_ids) for e in examples]
    steps = []

    def on_step(m) -> None:
        steps.append(m)
        print(f"ours: step {m.step + 1}, {m.tokens_per_second:.1f} tokens/s, loss {m.loss:.3f}", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="tuneforge-bench-") as out:
        cpu = time.process_time()
        result = train(TrainConfig(base=checkpoint, kind=Customization.FINE_TUNING, training=records,
                                   output=Path(out), hparams=hp), on_step=on_step)
        cpu = time.process_time() - cpu
    real = sum(lengths)
    dtype = pick_dtype("auto", torch.device("cpu"))
    return {"side": "tuneforge", "dtype": "bf16 autocast" if dtype is torch.bfloat16 else "fp32", "bf16": dtype is torch.bfloat16,
            "steps": result.steps, "real": real, "seconds": real / result.tokens_per_second, "cpu": cpu, "lengths": lengths,
            "learned": sum(s.tokens for s in steps), "loss": result.training_loss, "lr": hp.learning_rate, "hp": hp}


# ---- TRL ------------------------------------------------------------------------------------------------------------
def run_trl(checkpoint: Path, records: list[dict[str, str]], hp) -> dict[str, object]:
    lora = LoraConfig(r=hp.lora_rank, lora_alpha=hp.lora_alpha, lora_dropout=hp.lora_dropout, task_type="CAUSAL_LM",
                      target_modules=ALL_LINEAR if hp.lora_target_modules == (ALL_LINEAR,) else list(hp.lora_target_modules))
    with tempfile.TemporaryDirectory(prefix="tuneforge-bench-trl-") as out:
        args = SFTConfig(output_dir=out, per_device_train_batch_size=hp.batch_size, num_train_epochs=hp.epoch_count,
                         learning_rate=hp.learning_rate, use_cpu=True, report_to="none", eval_strategy="no", save_strategy="no",
                         disable_tqdm=True)
        trainer = SFTTrainer(model=str(checkpoint), args=args, train_dataset=Dataset.from_list(records), peft_config=lora)
        lengths = [len(ids) for ids in trainer.train_dataset["input_ids"]]  # already cut at max_length
        learned = sum(sum(label != -100 for label in labels) for labels in trainer.train_dataset["labels"])
        started, cpu = time.perf_counter(), time.process_time()
        output = trainer.train()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    bf16 = trainer.accelerator.mixed_precision == "bf16"
    dtype = ("bf16 autocast" if bf16 else "fp32") + (" + grad ckpt" if args.gradient_checkpointing else "")
    return {"side": "TRL SFTTrainer", "dtype": dtype, "bf16": bf16, "steps": output.global_step, "real": sum(lengths),
            "seconds": seconds, "cpu": cpu, "lengths": lengths, "learned": learned, "loss": output.training_loss}


# ---- main -----------------------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=64, help="first N DialogSum training dialogues")
    parser.add_argument("--dialogue-chars", type=int, default=None, help="cut each dialogue to its first N characters (smoke runs)")
    parser.add_argument("--skip-trl", action="store_true", help="measure our side only")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads (default: torch's)")
    parser.add_argument("--peak-size", type=int, default=PEAK_SIZE, help="side of the square matmul that measures the peak")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if os.getloadavg()[0] > os.cpu_count():
        print(f"warning: load average {load()} on {os.cpu_count()} CPUs: other processes will slow both sides; "
              "with OpenMP's default busy waiting a loaded CPU can slow training ~10x (OMP_WAIT_POLICY=PASSIVE helps)")
    records = dialogsum_records(args.records, args.dialogue_chars)
    checkpoint = default_checkpoint()
    loads = {"start": load()}
    peaks = {"bf16": matmul_gflops(torch.bfloat16, args.peak_size), "fp32": matmul_gflops(torch.float32, args.peak_size)}
    loads["ours"] = load()
    ours = run_ours(checkpoint, records)
    rows = [ours]
    if not args.skip_trl:
        loads["TRL"] = load()
        rows.append(run_trl(checkpoint, records, ours["hp"]))
    loads["end"] = load()
    flops = flop_counter(checkpoint, ours["hp"].lora_rank)

    hp = ours["hp"]
    print(f"model: {DEFAULT_MODEL_ID}, {len(records)} DialogSum records, LoRA r{hp.lora_rank} alpha {hp.lora_alpha} "
          f"dropout {hp.lora_dropout:g} on {','.join(hp.lora_target_modules)}, batch {hp.batch_size}, 1 epoch, lr {ours['lr']:g}")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()} of {os.cpu_count()} CPUs, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}")
    print("load average (1/5/15 min): " + "; ".join(f"{k} {v}" for k, v in loads.items()))
    print(f"{'side':16}{'dtype':27}{'steps':>6}{'real tok':>9}{'learned':>8}{'seconds':>9}{'tok/s':>8}"
          f"{'cpu s':>8}{'tok/cpu-s':>10}{'loss':>7}")
    for r in rows:
        print(f"{r['side']:16}{r['dtype']:27}{r['steps']:>6}{r['real']:>9}{r['learned']:>8}{r['seconds']:>9.1f}"
              f"{r['real'] / r['seconds']:>8.1f}{r['cpu']:>8.1f}{r['real'] / r['cpu']:>10.1f}{r['loss']:>7.3f}")
    if len(rows) == 2:
        ratio = (ours["real"] / ours["seconds"]) / (rows[1]["real"] / rows[1]["seconds"])
        cpu_ratio = (ours["real"] / ours["cpu"]) / (rows[1]["real"] / rows[1]["cpu"])
        print(f"ratio ours/TRL (real tokens/s): {ratio:.2f}  (target >= 2.5: {'met' if ratio >= 2.5 else 'NOT met'}); "
              f"per CPU second: {cpu_ratio:.2f}")
    print(f"peak matmul {args.peak_size}^3: bf16 {peaks['bf16']:.0f} GFLOP/s, fp32 {peaks['fp32']:.0f} GFLOP/s")
    for r in rows:
        achieved = flops(r["lengths"], r["learned"]) / r["seconds"] / 1e9
        conventional = flops(r["lengths"], r["learned"], convention=True) / r["seconds"] / 1e9
        peak = peaks["bf16" if r["bf16"] else "fp32"]
        print(f"MFU {r['side']}: {achieved:.1f} model GFLOP/s / {peak:.0f} peak = {100 * achieved / peak:.1f}% "
              f"(6N convention: {100 * conventional / peak:.1f}%)")


if __name__ == "__main__":
    main()
