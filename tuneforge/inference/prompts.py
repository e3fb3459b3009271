"""A request's prompt as token ids: rendered by tuneforge (the tokenizer's chat template, or the plain prompt), so
every engine reads the same tokens and answers do not depend on which engine serves. No torch here."""

from __future__ import annotations

from tuneforge.errors import InvalidInput
from tuneforge.inference.params import GenerationRequest


def prompt_ids(tokenizer, request: GenerationRequest) -> list[int]:
    if request.messages is not None:
        if not tokenizer.chat_template:
            raise InvalidInput(
                "this model has no chat template, so it cannot take chat messages: send a plain prompt instead",
                field="messages",
            )
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        add_prompt = messages[-1]["role"] != "assistant"
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_prompt)
        # the template already holds every special token it needs
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    return tokenizer(request.prompt)["input_ids"]
