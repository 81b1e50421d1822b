"""The local model server's own pieces, without loading a model: the usage chunk that ends
every stream, the chat format that carries the system message, the llama.cpp settings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llama_cpp import llama_chat_format

from whisp_agent.local_llm import (
    USAGE_FORMAT_PREFIX,
    model_options,
    register_chat_format,
    with_stream_usage,
)
from whisp_agent.settings import LocalLLMSettings


class FakeLlama:
    """Tokenizes by words; completes with three chunks."""

    def tokenize(self, data: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        return list(range(len(data.split()) + (1 if add_bos else 0)))

    def create_completion(self, prompt: Any, stream: bool = False, **_: Any) -> Any:
        if not stream:
            return {"usage": {"prompt_tokens": len(prompt)}}
        return iter(())


def handler(*, llama: Any, messages: list[dict[str, str]], stream: bool = False, **_: Any) -> Any:
    """What llama.cpp's handlers do: tokenize the prompt, call create_completion."""
    prompt = llama.tokenize(" ".join(m["content"] for m in messages).encode())
    llama.create_completion(prompt=prompt, stream=stream)
    if not stream:
        return {"choices": [{"message": {"content": "a b"}}], "usage": {"prompt_tokens": 9}}

    def chunks() -> Iterator[dict[str, Any]]:
        yield {
            "id": "c1",
            "model": "m",
            "created": 1,
            "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}],
        }
        for word in ("Paris ", "is ", "nice."):
            yield {
                "id": "c1",
                "model": "m",
                "created": 1,
                "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}],
            }
        yield {"id": "c1", "model": "m", "created": 1,
               "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}  # fmt: skip

    return chunks()


MESSAGES = [
    {"role": "system", "content": "Answer in French."},
    {"role": "user", "content": "Hi there"},
]


def test_streams_end_with_a_usage_chunk() -> None:
    chunks = list(with_stream_usage(handler)(llama=FakeLlama(), messages=MESSAGES, stream=True))
    *text, last = chunks
    assert len(text) == 5 and last["choices"] == []
    # prompt: 5 words + BOS, as the handler tokenized it; completion: "Paris is nice."
    assert last["usage"] == {"prompt_tokens": 6, "completion_tokens": 3, "total_tokens": 9}
    assert last["id"] == "c1" and last["object"] == "chat.completion.chunk"


def test_whole_answers_pass_through() -> None:
    answer = with_stream_usage(handler)(llama=FakeLlama(), messages=MESSAGES)
    assert answer["usage"] == {"prompt_tokens": 9}


def test_chatml_carries_the_system_message() -> None:
    name = register_chat_format("chatml")
    assert name == USAGE_FORMAT_PREFIX + "chatml"
    assert llama_chat_format.get_chat_completion_handler(name) is not None
    prompt = llama_chat_format.format_chatml(messages=MESSAGES)
    assert prompt.prompt.startswith("<|im_start|>system\nAnswer in French.<|im_end|>\n")
    assert prompt.stop == "<|im_end|>"


def test_llama_settings_fit_this_machine(tmp_path: Path) -> None:
    settings = LocalLLMSettings()
    assert settings.n_ctx >= 4096 and settings.chat_format == "chatml"
    options = model_options(settings, tmp_path / "m.gguf")
    assert options["logits_all"] is False  # else n_ctx x vocab floats (~2.5 GB)
    assert options["n_threads"] == options["n_threads_batch"] >= 1
    assert options["chat_format"] == USAGE_FORMAT_PREFIX + "chatml"
    assert options["model_alias"] == "qwen2.5-coder-1.5b-instruct"
    assert LocalLLMSettings(model_path=tmp_path / "my-model.gguf").alias == "my-model"
