"""What the classifier sees: the call's task, not the agent's scaffolding."""

from __future__ import annotations

from router.decision.features import MAX_WORDS, estimate_tokens, focus_text, view_of, view_of_prompt
from router.schemas import ChatMessage, ToolSchema

FEW_SHOT = "\n\n".join(
    [f"Question {i}: which is heavier, a {i} kg rock or a feather?\nAnswer: rock" for i in range(5)]
    + ["Which planet is known as the red planet? A) Venus B) Mars C) Jupiter D) Saturn\nAnswer:"]
)


def test_few_shot_prompt_focuses_on_the_final_question() -> None:
    text = view_of_prompt(FEW_SHOT).text
    assert "red planet" in text
    assert "Question 3" not in text  # the shared examples in the middle are dropped


def test_two_few_shot_prompts_differing_only_in_the_question_differ() -> None:
    other = FEW_SHOT.replace("red planet", "ringed planet")
    assert view_of_prompt(FEW_SHOT).text != view_of_prompt(other).text


def test_short_last_paragraph_pulls_in_context_and_head() -> None:
    message = "Summarise the text below.\n\n" + "word " * 30 + "\n\nkeep it short"
    text = focus_text(message)
    assert text.startswith("Summarise the text below.") and text.endswith("keep it short")


def test_system_prompt_and_tools_are_not_in_the_text_but_count_in_tokens() -> None:
    user = ChatMessage(role="user", content="Find the cheapest flight to Oslo")
    system = ChatMessage(role="system", content="You are a travel agent. " * 500)
    tools = [ToolSchema(function={"name": f"tool{i}", "parameters": {"type": "object"}})
             for i in range(10)]
    bare, wrapped = view_of([user]), view_of([system, user], tools)
    assert bare.text == wrapped.text
    assert wrapped.tokens_in > bare.tokens_in + 2500


def test_tool_results_after_the_user_turn_are_read() -> None:
    messages = [
        ChatMessage(role="user", content="What is the weather in Oslo?"),
        ChatMessage(role="assistant", tool_calls=[{"id": "1", "function": {"name": "w"}}]),
        ChatMessage(role="tool", tool_call_id="1", content="Oslo: 3C, rain"),
    ]
    view = view_of(messages)
    assert "Oslo: 3C, rain" in view.text and view.numeric[2] == 1.0


def test_text_is_bounded_whatever_the_input_size() -> None:
    view = view_of_prompt("token " * 200_000)
    assert len(view.text.split()) <= MAX_WORDS
    assert view.tokens_in > 200_000


def test_token_estimate_counts_tool_calls() -> None:
    call = ChatMessage(role="assistant", tool_calls=[{"function": {"name": "f", "arguments":
                                                                   "x" * 400}}])
    assert estimate_tokens([call]) >= 100
