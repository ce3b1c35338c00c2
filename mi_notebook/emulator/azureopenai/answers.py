"""The emulated Azure OpenAI's answers: chat completions, embeddings and streams, derived from the input.

No model runs. A chat answer says so in its text and carries a digest of the request, so the same
request always gets the same words (``created`` comes from the emulator's clock); an embedding is
a unit vector drawn from a generator seeded by the model and the text. Token counts are word counts
(plus a few per message), close enough for ``usage`` to move the way a notebook expects, not
tiktoken's. The bodies have the fields the openai SDK's ``ChatCompletion``, ``ChatCompletionChunk``
and ``CreateEmbeddingResponse`` need.

Example::

    >>> body = chat_completion(Deployment.of("gpt-4o-mini", "gpt-4o-mini-2024-07-18"),
    ...                        {"messages": [{"role": "user", "content": "hello"}]}, created=0, sequence=1)
    >>> body["object"], body["choices"][0]["finish_reason"], "emulator" in body["choices"][0]["message"]["content"]
    ('chat.completion', 'stop', True)
    >>> body == chat_completion(Deployment.of("gpt-4o-mini", "gpt-4o-mini-2024-07-18"),
    ...                         {"messages": [{"role": "user", "content": "hello"}]}, created=0, sequence=1)
    True
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import struct
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .deployments import Deployment

__all__ = ["chat_completion", "count_tokens", "embeddings", "sse_stream", "text_of"]

_EXCERPT = 60


def text_of(content: Any) -> str:
    """The text of a message's ``content``: a string, or the ``text`` of its parts.

    Example::

        >>> text_of([{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {}}, {"type": "text", "text": "b"}])
        'a b'
    """
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping) and p.get("type") == "text")
    return ""


def count_tokens(text: str) -> int:
    """A rough token count: the words (at least 1 for non-empty text).

    Example::

        >>> count_tokens("one two  three"), count_tokens("")
        (3, 0)
    """
    return len(text.split())


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _reply(deployment: Deployment, messages: Sequence[Mapping[str, Any]], choice: int) -> str:
    last = next((text_of(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
    excerpt = " ".join(last.split())
    if len(excerpt) > _EXCERPT:
        excerpt = excerpt[:_EXCERPT - 3] + "..."
    tag = _digest(deployment.name, messages, choice)[:8]
    return (f"This answer comes from the mi-notebook emulator of Azure OpenAI (no model ran): deployment "
            f"'{deployment.name}', reply {tag}, to \"{excerpt}\".")


def _choices(deployment: Deployment, request: Mapping[str, Any]) -> tuple[list[tuple[str, str]], int]:
    """[(content, finish_reason)] for each of the ``n`` choices, and the prompt's token count."""
    messages = [m for m in request.get("messages", []) if isinstance(m, Mapping)]
    prompt_tokens = sum(count_tokens(text_of(m.get("content"))) + 3 for m in messages) + 3
    limit = request.get("max_completion_tokens", request.get("max_tokens"))
    asked = request.get("n")
    n = asked if isinstance(asked, int) and not isinstance(asked, bool) and asked > 0 else 1
    out = []
    for i in range(min(n, 8)):
        words = _reply(deployment, messages, i).split()
        if isinstance(limit, int) and not isinstance(limit, bool) and 0 < limit < len(words):
            out.append((" ".join(words[:limit]), "length"))
        else:
            out.append((" ".join(words), "stop"))
    return out, prompt_tokens


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def chat_completion(deployment: Deployment, request: Mapping[str, Any], *, created: int,
                    sequence: int) -> dict[str, Any]:
    """A ``chat.completion`` for ``request`` (its ``messages``, ``n``, ``max_tokens`` /
    ``max_completion_tokens``); ``sequence`` numbers the calls so ids differ between them.

    Example::

        >>> d, req = Deployment.of("chat", "gpt-4o"), {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
        >>> body = chat_completion(d, req, created=0, sequence=1)
        >>> body["choices"][0]["finish_reason"], body["usage"]["completion_tokens"]
        ('length', 3)
        >>> body["id"] != chat_completion(d, req, created=0, sequence=2)["id"]
        True
    """
    choices, prompt = _choices(deployment, request)
    completion = sum(count_tokens(text) for text, _ in choices)
    return {
        "id": "chatcmpl-emu" + _digest(deployment.name, request.get("messages"), sequence)[:26],
        "object": "chat.completion",
        "created": created,
        "model": deployment.model,
        "system_fingerprint": "fp_emulator",
        "choices": [{"index": i, "message": {"role": "assistant", "content": text, "refusal": None},
                     "finish_reason": reason, "logprobs": None} for i, (text, reason) in enumerate(choices)],
        "usage": _usage(prompt, completion),
    }


def sse_stream(deployment: Deployment, request: Mapping[str, Any], *, created: int, sequence: int) -> bytes:
    """The same answer as :func:`chat_completion`, as server-sent ``chat.completion.chunk`` events.

    A role chunk, one chunk per word, a chunk with the ``finish_reason``, a usage chunk when
    ``stream_options.include_usage`` is set, then ``data: [DONE]``.

    Example::

        >>> raw = sse_stream(Deployment.of("d", "m"), {"messages": [{"role": "user", "content": "hi"}]},
        ...                  created=0, sequence=1).decode()
        >>> raw.splitlines()[-2:], raw.count("data: ") > 5
        (['data: [DONE]', ''], True)
    """
    whole = chat_completion(deployment, request, created=created, sequence=sequence)
    base = {"id": whole["id"], "object": "chat.completion.chunk", "created": created, "model": deployment.model,
            "system_fingerprint": whole["system_fingerprint"]}

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
        return "data: " + json.dumps({**base, "choices": choices, **extra}, separators=(",", ":")) + "\n\n"

    def events() -> Iterator[str]:
        for choice in whole["choices"]:
            i = choice["index"]
            yield chunk([{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None,
                          "logprobs": None}])
            words = choice["message"]["content"].split(" ")
            for n, word in enumerate(words):
                piece = word if n == len(words) - 1 else word + " "
                yield chunk([{"index": i, "delta": {"content": piece}, "finish_reason": None, "logprobs": None}])
            yield chunk([{"index": i, "delta": {}, "finish_reason": choice["finish_reason"], "logprobs": None}])
        options = request.get("stream_options")
        if isinstance(options, Mapping) and options.get("include_usage"):
            yield chunk([], usage=whole["usage"])
        yield "data: [DONE]\n\n"

    return "".join(events()).encode()


def _vector(model: str, text: str, dimensions: int) -> list[float]:
    rng = random.Random(int(_digest(model, text)[:16], 16))
    raw = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [round(x / norm, 8) for x in raw]


def embeddings(deployment: Deployment, inputs: Sequence[str], *, dimensions: int | None = None,
               encoding: str = "float") -> dict[str, Any]:
    """A ``list`` of unit-length embeddings, one per input; ``encoding="base64"`` packs each as
    little-endian float32, as the SDK decodes it.

    Example::

        >>> body = embeddings(Deployment.of("e", "text-embedding-3-small"), ["a b", "c"], dimensions=4)
        >>> [len(d["embedding"]) for d in body["data"]], body["usage"]
        ([4, 4], {'prompt_tokens': 3, 'total_tokens': 3})
        >>> round(sum(x * x for x in body["data"][0]["embedding"]), 6)
        1.0
    """
    size = dimensions or deployment.dimensions
    data: list[dict[str, Any]] = []
    for i, text in enumerate(inputs):
        vector = _vector(deployment.model, text, size)
        value: Any = vector
        if encoding == "base64":
            value = base64.b64encode(struct.pack(f"<{size}f", *vector)).decode("ascii")
        data.append({"object": "embedding", "index": i, "embedding": value})
    tokens = sum(count_tokens(t) for t in inputs)
    return {"object": "list", "data": data, "model": deployment.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
