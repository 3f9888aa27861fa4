"""A 200k-token agent context costs the encoder what a short call costs: the text it reads is
bounded by design (router/decision/features.py), whatever the size of the request."""

from __future__ import annotations

import numpy as np

from router.decision.features import MAX_WORDS, view_of
from router.schemas import ChatMessage, ToolSchema

HUGE = 800_000  # characters: about 200k tokens


def huge_call() -> list[ChatMessage]:
    paragraphs = "\n\n".join(f"Step {i}: " + "observed value " * 30 for i in range(1500))
    return [
        ChatMessage(role="system", content=("You are an operations agent. " * (HUGE // 29))),
        ChatMessage(role="user", content=paragraphs + "\n\nWhich step failed first, and why?"),
        ChatMessage(role="tool", content="log line " * 50_000),
    ]


def test_the_classifier_text_is_bounded_whatever_the_context() -> None:
    messages = huge_call()
    assert sum(len(m.text()) for m in messages) > 2 * HUGE
    view = view_of(messages, [ToolSchema(function={"name": f"t{i}"}) for i in range(50)])
    assert len(view.text.split()) <= MAX_WORDS
    assert view.text.endswith("log line")  # the newest tool output, its tail only
    assert "Which step failed first" in view.text
    assert view.tokens_in > 200_000  # the estimate (cost, context window) still sees it all


def test_the_encoder_sees_no_more_tokens_than_its_window() -> None:
    from router.decision.encoders.base import weights_dir
    from router.decision.encoders.onnx_backend import _load_tokenizer

    tokenizer = _load_tokenizer(weights_dir() / "tokenizer.json", 256)
    huge = tokenizer.encode(view_of(huge_call()).text)
    short = tokenizer.encode(view_of([ChatMessage(role="user", content="hello")]).text)
    assert len(huge.ids) <= 256 and len(short.ids) <= 256
    assert np.all(np.asarray(huge.attention_mask) == 1)
