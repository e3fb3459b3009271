"""`tuneforge invoke MODEL PROMPT`: one generation from a base or custom model or a deployment, streamed.

A base or custom model runs in a worker subprocess started here (tuneforge.inference.worker): this process never
imports torch. A provisioned model (deployment) is served by the running `tuneforge serve`, so it is invoked
through the server's Bedrock API.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer

from tuneforge.cli.runtime import err_console, model_resolver, print_json
from tuneforge.inference.params import GenerationRequest, Message, SamplingParams
from tuneforge.models.resolve import CustomRef, FoundationRef, ProvisionedRef
from tuneforge.serving.client import WorkerProcess
from tuneforge.wire.bodies import parse_body, render_response


def start_worker(model: FoundationRef | CustomRef, device: str, dtype: str) -> WorkerProcess:
    """A worker started here for a catalog or custom model (a custom model runs on its base with its adapter).
    Locally, custom models are invoked directly; through the Bedrock API they need a provisioned throughput, as in
    Bedrock."""
    spec = model_resolver().worker_spec(model, device=device, dtype=dtype)
    try:
        return WorkerProcess(spec)
    finally:
        model_resolver().registry.release(spec)  # an encrypted model's decrypted copy is needed only while the worker loads it


def invoke(
    model: Annotated[str, typer.Argument(help="Model id, alias or ARN, a custom model, or a deployment (provisioned model).")],
    prompt: Annotated[Optional[str], typer.Argument(help="The prompt ('-' reads stdin). Omit with --body.")] = None,
    system: Annotated[Optional[str], typer.Option(help="System prompt (chat mode).")] = None,
    raw: Annotated[bool, typer.Option("--raw", help="Send the prompt as plain text, without the chat template.")] = False,
    body: Annotated[Optional[str], typer.Option(help="A Bedrock model-native JSON body (Llama 2 or Titan, per the model); prints the native response.")] = None,
    max_tokens: Annotated[int, typer.Option(min=1, help="Most tokens to generate.")] = 256,
    temperature: Annotated[float, typer.Option(min=0.0, max=2.0, help="0 = greedy.")] = 0.7,
    top_p: Annotated[float, typer.Option(min=0.0, max=1.0, help="Nucleus sampling mass.")] = 0.9,
    stop: Annotated[Optional[list[str]], typer.Option(help="Stop sequence (repeatable).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed for repeatable sampling.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda[:N].")] = "auto",
    dtype: Annotated[str, typer.Option(help="auto, float32, bfloat16 or float16.")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON instead of streaming text.")] = False,
) -> None:
    """Generate text with a model or a deployment; streams tokens as they come."""
    if body is not None and prompt is not None:
        raise typer.BadParameter("give either PROMPT or --body, not both", param_hint="--body")
    if body is None and prompt is None:
        raise typer.BadParameter("a PROMPT is required (or --body)", param_hint="PROMPT")
    if prompt == "-":
        prompt = sys.stdin.read()
    found = model_resolver().resolve(model, field="MODEL")
    if isinstance(found, ProvisionedRef):  # served by the running server's workers
        _invoke_deployment(found.arn, prompt, body, system=system, raw=raw, max_tokens=max_tokens,
                           temperature=temperature, top_p=top_p, stop=stop or [], as_json=as_json)
        return
    body_format = found.entry.body_format  # an alias's or a custom model's base's: what --body speaks
    if body is not None:
        request = parse_body(body, body_format)
    else:
        params = SamplingParams(
            temperature=temperature, top_p=top_p, max_tokens=max_tokens, stop=tuple(stop or ()), seed=seed
        )
        if raw:
            request = GenerationRequest(prompt=prompt, params=params)
        else:
            turns = ((Message("system", system),) if system else ()) + (Message("user", prompt),)
            request = GenerationRequest(messages=turns, params=params)

    worker = start_worker(found, device, dtype)
    with worker:
        if body is not None or as_json:
            result = worker.generate(request)
            print_json(render_response(result, body_format) if body is not None else vars(result))
            return
        result = None
        for delta in worker.stream(request):
            sys.stdout.write(delta.text)
            sys.stdout.flush()
            result = delta.result or result
    sys.stdout.write("\n")
    assert result is not None
    rate = result.completion_tokens / result.total_seconds if result.total_seconds else 0.0
    err_console.print(
        f"[dim]{result.prompt_tokens} prompt + {result.completion_tokens} generated tokens, stop: {result.stop_reason.value}, "
        f"{rate:.1f} tokens/s on {worker.info.device} ({worker.info.dtype}), first token {result.first_token_seconds:.2f}s[/]"
    )


def _invoke_deployment(arn: str, prompt: str | None, body: str | None, *, system: str | None, raw: bool, max_tokens: int,
                       temperature: float, top_p: float, stop: list[str], as_json: bool) -> None:
    from tuneforge.cli.remote import runtime_client, server_errors

    client = runtime_client()
    with server_errors():
        if body is not None:
            print_json(json.loads(client.invoke_model(modelId=arn, body=body)["body"].read()))
            return
        if raw:  # plain text: a Llama 2 body, which the server does not wrap in a chat template unless it has [INST]
            reply = client.invoke_model_with_response_stream(modelId=arn, body=json.dumps(
                {"prompt": prompt, "max_gen_len": max_tokens, "temperature": min(temperature, 1.0), "top_p": top_p}))
            pieces = (json.loads(event["chunk"]["bytes"])["generation"] for event in reply["body"] if "chunk" in event)
        else:
            reply = client.converse_stream(
                modelId=arn, messages=[{"role": "user", "content": [{"text": prompt}]}],
                inferenceConfig={"maxTokens": max_tokens, "temperature": min(temperature, 1.0), "topP": top_p, "stopSequences": stop},
                **({"system": [{"text": system}]} if system else {}),
            )
            pieces = (event["contentBlockDelta"]["delta"]["text"] for event in reply["stream"] if "contentBlockDelta" in event)
        text = []
        for piece in pieces:
            text.append(piece)
            if not as_json:
                sys.stdout.write(piece)
                sys.stdout.flush()
    if as_json:
        print_json({"text": "".join(text)})
    else:
        sys.stdout.write("\n")
