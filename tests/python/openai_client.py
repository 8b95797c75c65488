"""The official OpenAI Python client against `nesa gateway`.

Usage: openai_client.py chat|errors BASE_URL API_KEY [EMPTY_WALLET_BASE_URL EMPTY_WALLET_KEY]

Prints one JSON object with what the client received, for the end-to-end test to check
against the chain. `chat` lists the models and asks the first one twice (not streamed, then
streamed); `errors` asks for an unknown model, and through a gateway whose wallet is empty.
"""

import json
import sys

import openai

QUESTION = "What is the capital of France?"
SYSTEM = "You are a helpful AI assistant."


def messages():
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]


def error_of(call):
    try:
        call()
    except openai.APIStatusError as error:
        body = error.body if isinstance(error.body, dict) else {}
        return {
            "class": type(error).__name__,
            "status": error.status_code,
            "code": error.code,
            "type": body.get("type"),
            "message": error.message,
        }
    return None


def chat(client):
    models = client.models.list()
    model = models.data[0].id
    plain = client.chat.completions.create(
        model=model, messages=messages(), max_tokens=24, temperature=0
    )
    stream = client.chat.completions.create(
        model=model,
        messages=messages(),
        max_tokens=24,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, finish_reason, usage, settlement, chunks = [], None, None, None, 0
    for chunk in stream:
        chunks += 1
        if chunk.choices:
            choice = chunk.choices[0]
            if choice.delta.content:
                pieces.append(choice.delta.content)
            finish_reason = choice.finish_reason or finish_reason
        if chunk.usage:
            usage = chunk.usage.model_dump()
        extra = chunk.model_extra or {}
        if "nesa" in extra:
            settlement = extra["nesa"]
    return {
        "models": [m.id for m in models.data],
        "model_details": [(m.model_extra or {}).get("nesa") for m in models.data],
        "completion": {
            "id": plain.id,
            "object": plain.object,
            "model": plain.model,
            "content": plain.choices[0].message.content,
            "role": plain.choices[0].message.role,
            "finish_reason": plain.choices[0].finish_reason,
            "usage": plain.usage.model_dump(),
            "nesa": (plain.model_extra or {}).get("nesa"),
        },
        "stream": {
            "content": "".join(pieces),
            "pieces": len(pieces),
            "chunks": chunks,
            "finish_reason": finish_reason,
            "usage": usage,
            "nesa": settlement,
        },
    }


def errors(client, empty):
    ask = lambda c, model: c.chat.completions.create(  # noqa: E731
        model=model, messages=messages(), max_tokens=24
    )
    stream = lambda c, model: list(  # noqa: E731
        c.chat.completions.create(model=model, messages=messages(), max_tokens=24, stream=True)
    )
    model = client.models.list().data[0].id
    wrong_key = openai.OpenAI(base_url=str(client.base_url), api_key="sk-not-the-gateways", max_retries=0)
    return {
        "unknown_model": error_of(lambda: ask(client, "gpt-4o")),
        "unknown_model_streamed": error_of(lambda: stream(client, "gpt-4o")),
        "wrong_api_key": error_of(lambda: ask(wrong_key, model)),
        "empty_wallet": error_of(lambda: ask(empty, model)),
        "empty_wallet_streamed": error_of(lambda: stream(empty, model)),
    }


def main():
    mode, base_url, api_key = sys.argv[1:4]
    client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=600)
    if mode == "chat":
        result = chat(client)
    else:
        empty = openai.OpenAI(base_url=sys.argv[4], api_key=sys.argv[5], max_retries=0)
        result = errors(client, empty)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
