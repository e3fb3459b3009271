"""`tuneforge models list|get|add|alias|remove`: the foundation-model catalog."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from tuneforge.catalog.entries import BodyFormat, Customization, FoundationModel, InferenceType, Modality
from tuneforge.cli.runtime import catalog, console, print_json, settings
from tuneforge.cli.tables import Column, WideFlag, customization, detail_table, print_table

app = typer.Typer(help="List, inspect and register base models.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON (Bedrock's shapes) instead of a table.")]


def _detail(model: FoundationModel) -> dict:
    data = model.to_summary(settings().region)
    data["bodyFormat"] = model.body_format.value
    data["contextLength"] = model.context_length
    data["source"] = {"kind": model.source.kind.value, "location": model.source.hub_id or model.source.location}
    if model.alias_of:
        data["aliasOf"] = model.alias_of
    return data


@app.command("list")
def list_models(
    provider: Annotated[Optional[str], typer.Option(help="Only this provider (case-insensitive).")] = None,
    customization_type: Annotated[Optional[Customization], typer.Option(help="Only models that support it.")] = None,
    inference_type: Annotated[Optional[InferenceType], typer.Option(help="Only models served this way.")] = None,
    output_modality: Annotated[Optional[Modality], typer.Option(help="Only models with this output.")] = None,
    wide: WideFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """List foundation models, like Bedrock's ListFoundationModels."""
    models = catalog().list(
        provider=provider, customization=customization_type, inference_type=inference_type, output_modality=output_modality
    )
    if as_json:
        print_json({"modelSummaries": [_detail(m) for m in models]})
        return
    # 80 columns hold a 38-character id and three short columns; provider, inference types and the alias's target
    # (another id) need --wide. The provider is mostly the id's prefix anyway.
    columns = [Column("Model ID", key=True, style="bold"), Column("Provider", wide=True), Column("Output"),
               Column("Customizations" if wide else "Tuning"), Column("Inference", wide=True), Column("Body"),
               Column("Alias of", wide=True, key=True)]
    rows = [(m.model_id, m.provider_name, ",".join(m.output_modalities),
             ", ".join(customization(c, wide=wide) for c in m.customizations_supported) or "-",
             ",".join(m.inference_types_supported), m.body_format.value if Modality.TEXT in m.output_modalities else "-",
             m.alias_of or "") for m in models]
    caption = None
    if not wide:
        notes = ["FT fine-tuning, CPT continued pre-training, PT preference tuning (DPO)"] if any(m.customizations_supported for m in models) else []
        notes += [f"alias {m.model_id} → {m.alias_of}" for m in models if m.alias_of]
        caption = "\n".join(notes) or None
    print_table(f"{len(models)} foundation model(s)", columns, rows, wide=wide, caption=caption)


@app.command("get")
def get_model(model: Annotated[str, typer.Argument(help="Model id or foundation-model ARN.")], as_json: JsonFlag = False) -> None:
    """Show one model, like Bedrock's GetFoundationModel."""
    found = catalog().get(model)
    if as_json:
        print_json({"modelDetails": _detail(found)})
        return
    console.print(detail_table(found.model_id, _detail(found).items()))


@app.command("add")
def add_model(
    model_id: Annotated[str, typer.Argument(help="The id to register it under, e.g. my-llama-3b.")],
    source: Annotated[str, typer.Argument(help="A local checkpoint directory or a Hugging Face hub id (online only).")],
    name: Annotated[Optional[str], typer.Option(help="Display name.")] = None,
    provider: Annotated[Optional[str], typer.Option(help="Provider name (default: hub org, or Local).")] = None,
    embedding: Annotated[bool, typer.Option("--embedding", help="A sentence-transformers embedding model.")] = False,
    reranker: Annotated[bool, typer.Option("--reranker", help="A cross-encoder reranker (a sequence-classification checkpoint with one label).")] = False,
    body_format: Annotated[BodyFormat, typer.Option(help="InvokeModel body family for this model.")] = BodyFormat.LLAMA2,
    as_json: JsonFlag = False,
) -> None:
    """Register a Hugging Face model from a local directory or the hub."""
    added = catalog().add(model_id, source, name=name, provider=provider, embedding=embedding, reranker=reranker,
                           body_format=body_format)
    if as_json:
        print_json({"modelDetails": _detail(added)})
    else:
        console.print(f"registered [bold]{added.model_id}[/] from {added.source.hub_id or added.source.location}")


@app.command("alias")
def alias_model(
    alias_id: Annotated[str, typer.Argument(help="A Bedrock model id, e.g. meta.llama2-13b-chat-v1.")],
    target: Annotated[str, typer.Argument(help="The catalog model that serves it.")],
    body_format: Annotated[Optional[BodyFormat], typer.Option(help="Body family (default: from the Bedrock id).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Map a Bedrock model id onto a local model, so unmodified Bedrock code runs."""
    alias = catalog().alias(alias_id, target, body_format=body_format)
    if as_json:
        print_json({"modelDetails": _detail(alias)})
    else:
        console.print(f"[bold]{alias.model_id}[/] now serves [bold]{alias.alias_of}[/] with {alias.body_format.value} bodies")


@app.command("remove")
def remove_model(model: Annotated[str, typer.Argument(help="A registered model id or alias.")]) -> None:
    """Unregister a model or alias (files of a local directory are left alone)."""
    catalog().remove(model)
    console.print(f"removed {model}")
