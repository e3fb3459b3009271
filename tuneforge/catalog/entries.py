"""The catalog's record of a base model, with Bedrock's FoundationModelSummary fields.

Pure data: no database, no torch. `to_summary()` gives the Bedrock wire shape (camelCase), which the CLI's
`--json` also prints, so scripts see one format everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum

from tuneforge.ids import foundation_model_arn


class Customization(StrEnum):
    FINE_TUNING = "FINE_TUNING"
    CONTINUED_PRE_TRAINING = "CONTINUED_PRE_TRAINING"
    DISTILLATION = "DISTILLATION"
    # tuneforge-only: DPO on {"prompt", "chosen", "rejected"} pairs (OpenAI's method "dpo"). Bedrock's
    # CustomizationType has no such value, and botocore 1.44's enum for customizationsSupported lists only
    # FINE_TUNING, CONTINUED_PRE_TRAINING and DISTILLATION, so FoundationModelSummary leaves it out (`WIRE_CUSTOMIZATIONS`);
    # CreateModelCustomizationJob accepts it (botocore sends any string) and jobs report it as their customizationType
    PREFERENCE_TUNING = "PREFERENCE_TUNING"


WIRE_CUSTOMIZATIONS = (Customization.FINE_TUNING, Customization.CONTINUED_PRE_TRAINING, Customization.DISTILLATION)


class InferenceType(StrEnum):
    ON_DEMAND = "ON_DEMAND"
    PROVISIONED = "PROVISIONED"


class Modality(StrEnum):
    TEXT = "TEXT"
    IMAGE = "IMAGE"
    EMBEDDING = "EMBEDDING"
    # tuneforge-only: a reranker (a cross-encoder scoring query-passage pairs). Bedrock's ModelModality has no
    # such value (TEXT, IMAGE, EMBEDDING) and lists its rerank models as TEXT, so the wire says TEXT
    # (`wire_modality`); kept apart inside, every check that a model generates text
    # (TEXT in output_modalities) refuses a reranker without knowing of it
    RERANK = "RERANK"


def wire_modality(modality: Modality) -> str:
    """What Bedrock's FoundationModelSummary says for `modality`."""
    return Modality.TEXT.value if modality is Modality.RERANK else modality.value


class SourceKind(StrEnum):
    GGUF_PACKAGE = "gguf-package"  # a GGUF file inside an installed Python package, materialized on first use
    PACKAGE_DIR = "package-dir"  # a checkpoint directory inside an installed Python package
    LOCAL = "local"  # a checkpoint directory on disk
    HUB = "hub"  # a Hugging Face hub id, downloaded into the data dir when registered


class BodyFormat(StrEnum):
    """Which Bedrock model-native request/response body InvokeModel speaks for this entry."""

    LLAMA2 = "llama2"  # {"prompt", "temperature", "top_p", "max_gen_len"} -> {"generation", ...}
    TITAN = "titan"  # {"inputText", "textGenerationConfig"} -> {"inputTextTokenCount", "results"}


@dataclass(frozen=True)
class ModelSource:
    kind: SourceKind
    location: str  # package/file for packages, a directory for LOCAL/HUB (after download), the hub id for HUB
    hub_id: str | None = None


@dataclass(frozen=True)
class FoundationModel:
    model_id: str
    model_name: str
    provider_name: str
    source: ModelSource
    input_modalities: tuple[Modality, ...] = (Modality.TEXT,)
    output_modalities: tuple[Modality, ...] = (Modality.TEXT,)
    customizations_supported: tuple[Customization, ...] = ()
    inference_types_supported: tuple[InferenceType, ...] = (InferenceType.ON_DEMAND, InferenceType.PROVISIONED)
    response_streaming_supported: bool = True
    lifecycle_status: str = "ACTIVE"
    body_format: BodyFormat = BodyFormat.LLAMA2
    context_length: int | None = None
    builtin: bool = False
    alias_of: str | None = None  # set when this entry is a Bedrock id mapped onto another catalog model
    extra: dict = field(default_factory=dict, compare=False)

    def arn(self, region: str) -> str:
        return foundation_model_arn(region, self.model_id)

    def as_alias(self, alias_id: str, provider_name: str, body_format: BodyFormat) -> "FoundationModel":
        return replace(
            self, model_id=alias_id, model_name=f"{alias_id} (alias of {self.model_id})",
            provider_name=provider_name, body_format=body_format, alias_of=self.model_id, builtin=False,
        )

    def to_summary(self, region: str) -> dict:
        """Bedrock's FoundationModelSummary / FoundationModelDetails shape."""
        return {
            "modelArn": self.arn(region),
            "modelId": self.model_id,
            "modelName": self.model_name,
            "providerName": self.provider_name,
            "inputModalities": [m.value for m in self.input_modalities],
            "outputModalities": list(dict.fromkeys(wire_modality(m) for m in self.output_modalities)),
            "responseStreamingSupported": self.response_streaming_supported,
            "customizationsSupported": [c.value for c in self.customizations_supported if c in WIRE_CUSTOMIZATIONS],
            "inferenceTypesSupported": [t.value for t in self.inference_types_supported],
            "modelLifecycle": {"status": self.lifecycle_status},
        }
