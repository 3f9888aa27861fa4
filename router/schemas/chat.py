"""The chat messages a call carries, as OpenAI, the Responses API and Anthropic send them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonDict

Id = Annotated[str, Field(min_length=1, max_length=256)]


TEXT_PARTS = frozenset({"text", "input_text", "output_text"})
IMAGE_PARTS = frozenset({"image_url", "input_image", "image"})
AUDIO_PARTS = frozenset({"input_audio", "audio"})
# Anthropic blocks that carry no new task text, or carry it in `content` (tool_result)
BLOCK_PARTS = frozenset({"tool_use", "tool_result", "thinking", "redacted_thinking", "document",
                         "refusal", "file", "input_file"})
PART_TYPES = TEXT_PARTS | IMAGE_PARTS | AUDIO_PARTS | BLOCK_PARTS
# What a content part needs from a tier beyond text
PART_CAPABILITY = {**dict.fromkeys(IMAGE_PARTS, "vision"), **dict.fromkeys(AUDIO_PARTS, "audio")}


class ContentPart(BaseModel):
    """One content part, as OpenAI chat (text, image_url, input_audio), the Responses API
    (input_text, input_image) or Anthropic (text, image, tool_use, tool_result) send it. The
    classifier reads the text parts; images and audio count in the token estimate and need a
    tier with that capability."""

    model_config = ConfigDict(extra="allow")
    type: str = Field(json_schema_extra={"enum": list[JsonValue](sorted(PART_TYPES))},
                      description="The part's kind, one of the listed types; image and audio "
                                  "parts need a tier with 'vision' / 'audio'.")
    text: str | None = Field(default=None, description="A text part's text (read by the "
                                                       "classifier).")
    content: str | list[Any] | None = Field(  # an Anthropic tool_result's output
        default=None, description="An Anthropic tool_result's output (read as a tool result).")

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in PART_TYPES:
            raise ValueError(f"content part type {value!r} is not one of {sorted(PART_TYPES)}")
        return value

    def routed_text(self) -> str:
        if self.type in TEXT_PARTS:
            return self.text or ""
        if self.type == "tool_result":
            if isinstance(self.content, str):
                return self.content
            return "\n".join(str(b.get("text", "")) for b in self.content or []
                             if isinstance(b, dict))
        return ""


class ToolCall(BaseModel):
    """A tool call an assistant message made; counted in the token estimate only."""

    model_config = ConfigDict(extra="allow")
    id: str | None = Field(default=None, description="The call's id (a tool message answers "
                                                     "it by tool_call_id).")
    type: str = Field(default="function", description="'function'.")
    function: dict[str, Any] = Field(default_factory=dict,
                                     description="{name, arguments}, as the LLM returned it.")


HAS_CONTENT: JsonDict = {"anyOf": [  # the schema form of `_has_content`
    {"required": ["content"], "properties": {"content": {"not": {"type": "null"}}}},
    {"required": ["role", "tool_calls"],
     "properties": {"role": {"const": "assistant"},
                    "tool_calls": {"type": "array", "minItems": 1}}},
]}


class ChatMessage(BaseModel):
    """One OpenAI chat message: system, developer, user, assistant or tool."""

    model_config = ConfigDict(extra="allow", json_schema_extra=HAS_CONTENT)
    role: Literal["system", "developer", "user", "assistant", "tool"] = Field(
        description="Who speaks. The classifier reads the latest user message and the tool "
                    "messages after it; the others count in the token estimate only.")
    content: str | list[ContentPart] | None = Field(
        default=None,
        description="A string, or a list of content parts; at most limits.max_content_chars "
                    "(1,000,000) characters of text. Required except on an assistant message "
                    "with tool_calls.")
    name: str | None = Field(default=None, description="The speaker's name (OpenAI); unused.")
    tool_calls: list[ToolCall] | None = Field(
        default=None, description="An assistant message's tool calls.")
    tool_call_id: str | None = Field(
        default=None, description="A tool message: the id of the call it answers.")

    @field_validator("content", mode="before")
    @classmethod
    def _known_parts(cls, value: Any) -> Any:
        """Name an unknown part's type here: the str | list union would only say 'not a str'."""
        if isinstance(value, list):
            for i, part in enumerate(value):
                if isinstance(part, ContentPart):
                    continue
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                if kind not in PART_TYPES:
                    raise ValueError(f"content part {i} has type {kind!r}; known part types: "
                                     f"{', '.join(sorted(PART_TYPES))}")
        return value

    @model_validator(mode="after")
    def _has_content(self) -> ChatMessage:
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise ValueError(
                f"a '{self.role}' message needs 'content' (only an assistant message with "
                "'tool_calls' may omit it)"
            )
        return self

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(t for t in (part.routed_text() for part in self.content) if t)

    def media(self) -> list[tuple[int, str]]:
        """(part index, capability) of every image or audio part."""
        if not isinstance(self.content, list):
            return []
        return [(i, PART_CAPABILITY[p.type]) for i, p in enumerate(self.content)
                if p.type in PART_CAPABILITY]


class ToolSchema(BaseModel):
    """An OpenAI tool definition; only its presence and size matter to routing."""

    model_config = ConfigDict(extra="allow")
    type: str = Field(default="function", description="'function'.")
    function: dict[str, Any] = Field(
        default_factory=dict, description="{name, description, parameters}: counted in the "
                                          "token estimate, never read by the classifier.")


def exactly_one_input(model: Any) -> Any:
    """A call is given as chat `messages` or as a `prompt`, never both, never neither."""
    if (model.messages is None) == (model.prompt is None):
        raise ValueError("give exactly one of 'messages' (a non-empty list) or 'prompt'")
    return model


