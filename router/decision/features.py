"""From an agent's call to what the classifier sees: a focused text and a few cheap numbers.

Agents resend a long system prompt and every tool schema with each call, and benchmark prompts
carry identical few-shot examples in front of the one question that differs. The encoder reads
only its first ~256 tokens, so feeding it the whole request would make every call of one agent
(or every ARC question) look the same. The rule, the same offline and online:

1. The *focus* is the latest user message. It is split into paragraphs (blank lines) and read
   from the end: the last paragraph, plus earlier ones until ``MIN_FOCUS_WORDS`` are reached.
   If that skipped the message's opening, its first ``HEAD_WORDS`` words are put in front,
   since instructions ("Summarise the text below:") usually sit there.
2. Tool results that came after that user message (the step is "read this output and go on")
   add their last ``TOOL_WORDS`` words each, newest first, at most ``MAX_TOOL_TURNS`` of them.
3. System prompts, tool schemas and older turns are not part of the text nor of the cheap
   features: they are the agent's scaffolding, not the call's task. They count only in the
   token estimate (context window and cost), and tools in the policy's capability check.
4. The result is capped at ``MAX_WORDS`` words, about the encoder's window, so a 200k-token
   context costs the same to route as a short one.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from router.schemas import ChatMessage, ToolSchema

MIN_FOCUS_WORDS = 24
HEAD_WORDS = 16
TOOL_WORDS = 48
MAX_TOOL_TURNS = 2
MAX_WORDS = 200
CHARS_PER_TOKEN = 4.0
TOKENS_PER_MESSAGE = 4
# Flat estimates per media part: a high-detail 1024x1024 image is 765 tokens on OpenAI's
# documented tiling; audio input is billed by duration, which a part does not say, so one
# minute of speech (~1,000 tokens) stands for each part.
MEDIA_TOKENS = {"vision": 765, "audio": 1000}

_PARAGRAPH = re.compile(r"\n\s*\n")
_CODE = re.compile(r"```|\bdef \w+\(|\bclass \w+|[;{}]\s*$|\bimport \w+|\breturn\b", re.M)
_MATH = re.compile(
    r"\$|\\frac|\\sqrt|\d+\s*[-+*/^=]\s*\d+|\b(solve|calculate|compute|prove)\b", re.I
)

FEATURE_NAMES = (
    "log_focus_words",
    "n_user_turns",
    "has_tool_results",
    "code_markers",
    "math_markers",
)
# Stored with every decision's features (router.traces): bump it whenever the view rule above
# or FEATURE_NAMES change, so learning never mixes features computed two ways.
FEATURE_VERSION = "view-1"


@dataclass(frozen=True)
class CallView:
    """What routing needs to know about one call."""

    text: str
    numeric: tuple[float, ...]
    tokens_in: int


@dataclass(frozen=True)
class FeatureSpec:
    """What a scorer reads: the embedding, then the cheap numbers named here (a subset of
    `FEATURE_NAMES`, in that order). A model directory records it; training, selection and
    serving all build a scorer's input with `assemble`."""

    numeric: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = [n for n in self.numeric if n not in FEATURE_NAMES]
        if unknown:
            raise ValueError(f"The 'numeric' parameter must name features of {FEATURE_NAMES}. "
                             f"Got {unknown} instead.")
        object.__setattr__(self, "numeric", tuple(n for n in FEATURE_NAMES
                                                  if n in self.numeric))

    @classmethod
    def of(cls, numeric: bool) -> FeatureSpec:
        """The embedding alone, or the embedding and every cheap number."""
        return cls(FEATURE_NAMES if numeric else ())

    @classmethod
    def from_metadata(cls, features: Mapping[str, Any]) -> FeatureSpec:
        return cls(tuple(features.get("numeric") or ()))

    def as_metadata(self) -> dict[str, Any]:
        return {"embedding": True, "numeric": list(self.numeric)}

    def assemble(self, embeddings: np.ndarray, numbers: np.ndarray) -> np.ndarray:
        """(n, d + k) scorer input from (n, d) embeddings and (n, len(FEATURE_NAMES)) cheap
        numbers (`numbers_of`)."""
        if not self.numeric:
            return embeddings
        columns = [FEATURE_NAMES.index(n) for n in self.numeric]
        return np.hstack([embeddings, np.asarray(numbers, dtype=np.float32)[:, columns]])


def numbers_of(views: Sequence[CallView]) -> np.ndarray:
    """(n, len(FEATURE_NAMES)) float32: every view's cheap numbers."""
    return np.asarray([v.numeric for v in views], dtype=np.float32).reshape(
        len(views), len(FEATURE_NAMES))


def view_of(
    messages: Sequence[ChatMessage], tools: Sequence[ToolSchema] | None = None
) -> CallView:
    """The classifier text, cheap features and token estimate of one call."""
    focus, tool_snippets, n_user = _focus_and_tools(messages)
    text = _cap_words(" \n".join([focus, *tool_snippets]).strip(), MAX_WORDS)
    numeric = (
        math.log1p(len(focus.split())),
        float(min(n_user, 20)),
        float(bool(tool_snippets)),
        float(min(len(_CODE.findall(focus)), 10)),
        float(min(len(_MATH.findall(focus)), 10)),
    )
    return CallView(text=text, numeric=numeric, tokens_in=estimate_tokens(messages, tools))


def view_of_prompt(prompt: str) -> CallView:
    return view_of([ChatMessage(role="user", content=prompt)])


def estimate_tokens(
    messages: Sequence[ChatMessage], tools: Sequence[ToolSchema] | None = None
) -> int:
    """A provider-neutral estimate (about 4 characters a token, as OpenAI documents)."""
    chars = sum(len(m.text()) for m in messages)
    chars += sum(len(json.dumps(c.function)) for m in messages for c in m.tool_calls or [])
    if tools:
        chars += sum(len(json.dumps(t.model_dump())) for t in tools)
    media = sum(MEDIA_TOKENS[kind] for m in messages for _, kind in m.media())
    return math.ceil(chars / CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE * len(messages) + media


def focus_text(message: str) -> str:
    """The part of one user message that says what this call is about (rule 1)."""
    paragraphs = [p.strip() for p in _PARAGRAPH.split(message.strip()) if p.strip()]
    if not paragraphs:
        return ""
    taken: list[str] = []
    words = 0
    for paragraph in reversed(paragraphs):
        taken.insert(0, paragraph)
        words += len(paragraph.split())
        if words >= MIN_FOCUS_WORDS:
            break
    if len(taken) < len(paragraphs):
        head = _cap_words(paragraphs[0], HEAD_WORDS)
        taken.insert(0, head)
    return _tail_words("\n\n".join(taken), MAX_WORDS)


def _focus_and_tools(messages: Sequence[ChatMessage]) -> tuple[str, list[str], int]:
    user_turns = [i for i, m in enumerate(messages) if m.role == "user"]
    if not user_turns:
        last = next((m for m in reversed(messages) if m.text().strip()), messages[-1])
        return focus_text(last.text()), [], 0
    last_user = user_turns[-1]
    after = [m for m in messages[last_user + 1 :] if m.role == "tool" and m.text().strip()]
    snippets = [_tail_words(m.text(), TOOL_WORDS) for m in reversed(after)][:MAX_TOOL_TURNS]
    return focus_text(messages[last_user].text()), snippets, len(user_turns)


def _cap_words(text: str, n: int) -> str:
    words = text.split(" ")
    return text if len(words) <= n else " ".join(words[:n])


def _tail_words(text: str, n: int) -> str:
    words = text.split(" ")
    return text if len(words) <= n else " ".join(words[-n:])
