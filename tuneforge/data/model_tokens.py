"""A model's tokenizer as a TokenCounter, and its context window, for processes that must not import torch.

    count, context = model_token_counter(models.base_spec(models.resolve(model_id)))   # models: tuneforge.models.resolve

The tokenizer is read from the checkpoint's tokenizer.json with `tokenizers` (validate.load_token_counter). A
catalog model shipped as GGUF has no checkpoint until it is materialized; that is done once, in a child process
(`python -m tuneforge.inference.materialize`, started through the process executor like every other), because
materializing needs torch.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tuneforge.data.validate import TokenCounter, load_token_counter
from tuneforge.errors import ModelFailure
from tuneforge.inference.checkpoint import COMPLETE_MARKER, check_checkpoint_dir, context_length
from tuneforge.inference.spec import WorkerSpec
from tuneforge.processes.executor import Executor
from tuneforge.processes.local import LOCAL
from tuneforge.training.lengths import FALLBACK_CONTEXT


def ensure_checkpoint(spec: WorkerSpec, *, executor: Executor = LOCAL) -> Path:
    """The spec's checkpoint directory, materialized from its GGUF file first if needed (in a child process)."""
    checkpoint = Path(spec.checkpoint)
    if spec.gguf and not (checkpoint / COMPLETE_MARKER).is_file():
        proc = executor.spawn("tuneforge.inference.materialize", [spec.gguf, str(checkpoint)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _, stderr = proc.communicate()
        finally:
            if proc.poll() is None:  # interrupted (Ctrl-C): do not leave it running; it writes into a staging directory
                proc.kill()
                proc.wait()
        if proc.returncode != 0:
            tail = (stderr.strip().splitlines() or ["no output"])[-1]
            raise ModelFailure(f"could not materialize {spec.model_id} from {spec.gguf} (exit code {proc.returncode}): {tail}")
    return checkpoint


def model_token_counter(spec: WorkerSpec) -> tuple[TokenCounter, int]:
    """(token counter, context window in tokens) of the model a WorkerSpec loads."""
    checkpoint = ensure_checkpoint(spec)
    config = check_checkpoint_dir(checkpoint)
    return load_token_counter(checkpoint), context_length(config) or FALLBACK_CONTEXT

