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

from tuneforge.cli.runtime import catalog, err_console, print_json
from tuneforge.inference.params import GenerationRequest, Message, SamplingParams
from tuneforge.serving.client import WorkerProcess
from tuneforge.wire.bodies import parse_body, render_response


def _resolve(model: str, device: str, dtype: str):
    """A catalog model, or a custom model (served on its base with its adapter): its catalog entry (whose body
    format --body uses), its worker spec, and what to call once the worker has loaded it. Locally, custom models
    are invoked directly; through the Bedrock API they need a provisioned throughput, as in Bedrock."""
    from tuneforge.cli.jobs import registry
    from tuneforge.registry.resolve import resolve_model

    resolved = resolve_model(model, catalog(), registry(), device=device, dtype=dtype, field="MODEL")
    return resolved.entry, resolved.spec, lambda: registry().release(resolved.spec)


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
    from tuneforge.cli.deployments import deployments

    deployment = deployments().find(model)
    if deployment is not None:
        _invoke_deployment(deployment.provisioned_model_arn, prompt, body, system=system, raw=raw, max_tokens=max_tokens,
                           temperature=temperature, top_p=top_p, stop=stop or [], as_json=as_json)
        return
    entry, spec, release = _resolve(model, device, dtype)
    if body is not None:
        request = parse_body(body, entry.body_format)
    else:
        params = SamplingParams(
            temperature=temperature, top_p=top_p, max_tokens=max_tokens, stop=tuple(stop or ()), seed=seed
        )
        if raw:
            request = GenerationRequest(prompt=prompt, params=params)
        else:
            turns = ((Message("system", system),) if system else ()) + (Message("user", prompt),)
            request = GenerationRequest(messages=turns, params=params)

    try:
        worker = WorkerProcess(spec)
    finally:
        release()  # an encrypted model's decrypted copy is needed only while the worker loads it
    with worker:
        if body is not None or as_json:
            result = worker.generate(request)
            print_json(render_response(result, entry.body_format) if body is not None else vars(result))
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
