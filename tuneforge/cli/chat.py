"""`tuneforge chat MODEL`: an interactive multi-turn conversation with a model or a deployment.

Each turn sends the whole conversation (system prompt, earlier turns) and streams the answer. A base or custom
model runs in a worker started here; a deployment is reached through the running server (Converse). Lines
starting with "/" are commands: /reset forgets the conversation, /exit (or end of input) quits.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Annotated, Optional

import typer

from tuneforge.cli.runtime import console, err_console, model_resolver
from tuneforge.inference.params import GenerationRequest, Message, SamplingParams

Turn = Callable[[list[Message]], Iterator[str]]


def chat(
    model: Annotated[str, typer.Argument(help="Model id, alias or ARN, a custom model, or a deployment.")],
    system: Annotated[Optional[str], typer.Option(help="System prompt for the whole conversation.")] = None,
    max_tokens: Annotated[int, typer.Option(min=1, help="Most tokens per answer.")] = 256,
    temperature: Annotated[float, typer.Option(min=0.0, max=1.0, help="0 = greedy.")] = 0.7,
) -> None:
    """Talk to a model, turn after turn (/reset starts over, /exit quits)."""
    from tuneforge.cli.invoke import start_worker
    from tuneforge.models.resolve import ProvisionedRef

    found = model_resolver().resolve(model, field="MODEL")
    if isinstance(found, ProvisionedRef):  # served by the running server's workers
        _loop(_remote_turn(found.arn, max_tokens, temperature), system, close=lambda: None)
        return
    err_console.print(f"[dim]loading {model}...[/]")
    worker = start_worker(found, "auto", "auto")
    params = SamplingParams(temperature=temperature, max_tokens=max_tokens)

    def turn(messages: list[Message]) -> Iterator[str]:
        for delta in worker.stream(GenerationRequest(messages=tuple(messages), params=params)):
            if delta.text:
                yield delta.text

    _loop(turn, system, close=worker.close)


def _remote_turn(arn: str, max_tokens: int, temperature: float) -> Turn:
    from tuneforge.cli.remote import runtime_client, server_errors

    client = runtime_client()

    def turn(messages: list[Message]) -> Iterator[str]:
        system = [{"text": m.content} for m in messages if m.role == "system"]
        turns = [{"role": m.role, "content": [{"text": m.content}]} for m in messages if m.role != "system"]
        with server_errors():
            reply = client.converse_stream(modelId=arn, messages=turns, inferenceConfig={"maxTokens": max_tokens, "temperature": temperature},
                                           **({"system": system} if system else {}))
            for event in reply["stream"]:
                if "contentBlockDelta" in event:
                    yield event["contentBlockDelta"]["delta"]["text"]

    return turn


def _loop(turn: Turn, system: str | None, *, close: Callable[[], None]) -> None:
    interactive = sys.stdin.isatty()
    history: list[Message] = [Message("system", system)] if system else []
    if interactive:
        err_console.print("[dim]/reset starts over, /exit quits[/]")
    try:
        while True:
            if interactive:
                console.print("[bold cyan]you>[/] ", end="")
            line = sys.stdin.readline()
            if not line:
                break
            text = line.strip()
            if not text:
                continue
            if text in ("/exit", "/quit"):
                break
            if text == "/reset":
                history = history[:1] if system else []
                err_console.print("[dim]conversation cleared[/]")
                continue
            history.append(Message("user", text))
            if interactive:
                console.print("[bold green]model>[/] ", end="")
            answer = []
            for piece in turn(history):
                answer.append(piece)
                sys.stdout.write(piece)
                sys.stdout.flush()
            sys.stdout.write("\n")
            sys.stdout.flush()
            history.append(Message("assistant", "".join(answer)))
    finally:
        close()
