"""Both official Python SDKs against a Gemini upstream (provider kind `gemini`).

The fake upstream (conftest `FakeUpstream._gemini`) answers `generateContent` and
`streamGenerateContent?alt=sse` and rejects what the real Gemini API would reject
(`gemini_body_problems`): wrong auth header, OpenAI-only top-level fields, non-alternating
or empty contents, function responses that match no call, and, as Gemini 3 does, a
function call sent back without the `thoughtSignature` Gemini put on it. A passing test
means the translated body was valid for Gemini.

How the fake answers depends on the upstream model in the URL (`GEMINI_MODELS`), as the
OpenAI and Anthropic fakes do with `model`: `gemini` (-> `gemini-3-pro-preview`) answers
text, `gemini-thinking` thought text then text, `gemini-tools` one `functionCall`,
`gemini-parallel` two, `gemini-busy` 429 RESOURCE_EXHAUSTED. A request whose last content
holds function responses is answered with text quoting the tool output.
"""

from __future__ import annotations

import json
import re

import anthropic
import httpx2
import openai
import pytest

from conftest import (
    GEMINI_CANDIDATES_TOKENS,
    GEMINI_PIECES,
    GEMINI_PROMPT_TOKENS,
    GEMINI_RETRY_DELAY_S,
    GEMINI_SIGNATURE,
    GEMINI_TEXT,
    GEMINI_THOUGHT,
    GEMINI_THOUGHTS_TOKENS,
    GEMINI_TOOL_ANSWER,
    TOOL_NAME,
    UPSTREAM_KEY,
    assemble_tool_calls,
)

WEATHER_PARAMETERS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
OPENAI_TOOLS = [
    {
        "type": "function",
        "function": {"name": TOOL_NAME, "description": "Current weather for a city.", "parameters": WEATHER_PARAMETERS},
    }
]
ANTHROPIC_TOOLS = [{"name": TOOL_NAME, "description": "Current weather for a city.", "input_schema": WEATHER_PARAMETERS}]
GEMINI_TOOLS = [
    {"functionDeclarations": [{"name": TOOL_NAME, "description": "Current weather for a city.", "parametersJsonSchema": WEATHER_PARAMETERS}]}
]
# Thoughts are billed as output: OpenAI completion_tokens and Anthropic output_tokens
# include them.
OUTPUT_TOKENS = GEMINI_CANDIDATES_TOKENS + GEMINI_THOUGHTS_TOKENS
TOOL_OUTPUT = "18C and sunny"
# How llmux shows Gemini's signature on an OpenAI tool call (as Google's own
# OpenAI-compatible endpoint does).
EXTRA_CONTENT = {"google": {"thought_signature": GEMINI_SIGNATURE}}


def gemini_requests(upstream, marker: str, count: int) -> list:
    """The `count` upstream requests that carried `marker`, each checked to be a Gemini request."""
    found = upstream.find(marker)
    assert len(found) == count, f"expected {count} upstream requests containing {marker!r}, got {len(found)}"
    for recorded in found:
        assert recorded.method == "POST"
        assert recorded.path.startswith("/v1beta/models/"), recorded.path
        assert recorded.headers.get("x-goog-api-key") == UPSTREAM_KEY
        assert "authorization" not in recorded.headers
        assert not {"model", "messages", "stream", "max_tokens"} & set(recorded.body), recorded.body
    return found


def gemini_request(upstream, marker: str, model: str = "gemini-3-pro-preview", stream: bool = False) -> dict:
    """The one upstream request that carried `marker`: its URL names `model`, and the method
    and `alt=sse` match `stream`. Returns its body."""
    (recorded,) = gemini_requests(upstream, marker, 1)
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    assert recorded.path == f"/v1beta/models/{model}:{method}"
    return recorded.body


def extra_of(item) -> dict:
    """The fields the SDK's model does not declare (where llmux's extensions land)."""
    return getattr(item, "model_extra", None) or {}


def assert_thinking_first(content) -> None:
    """Anthropic puts thinking blocks before the text and tool_use blocks they precede."""
    kinds = [block.type for block in content]
    first_other = next((at for at, kind in enumerate(kinds) if kind not in ("thinking", "redacted_thinking")), len(kinds))
    assert all(kind not in ("thinking", "redacted_thinking") for kind in kinds[first_other:]), f"thinking after content: {kinds}"


# --------------------------------------------------------------------------------------
# The openai SDK -> Gemini
# --------------------------------------------------------------------------------------



def second_turn_parts(contents: list) -> tuple[dict, dict]:
    """The Gemini contents of the turn after a tool call: the model's call to the weather
    tool for Paris (with its thought signature) and the tool's answer. Returns both parts."""
    assert [content["role"] for content in contents] == ["user", "model", "user"]
    (model_part,) = contents[1]["parts"]
    assert model_part["functionCall"]["name"] == TOOL_NAME
    assert model_part["functionCall"]["args"] == {"city": "Paris"}
    assert model_part["thoughtSignature"] == GEMINI_SIGNATURE
    (response_part,) = contents[2]["parts"]
    assert response_part["functionResponse"]["name"] == TOOL_NAME
    assert response_part["functionResponse"]["response"] == {"output": TOOL_OUTPUT}
    return model_part, response_part

def test_openai_chat_reaches_gemini(client, upstream, sdk_key, marker):
    raw = client.chat.completions.with_raw_response.create(
        model="gemini",
        messages=[{"role": "system", "content": "You are terse."}, {"role": "user", "content": marker}],
        max_tokens=300,
        temperature=0.5,
        stop=["END"],
    )
    assert raw.headers["x-llmux-provider"] == "google"
    completion = raw.parse()
    choice = completion.choices[0]
    assert choice.message.content == GEMINI_TEXT
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "stop"
    assert completion.usage.prompt_tokens == GEMINI_PROMPT_TOKENS
    assert completion.usage.completion_tokens == OUTPUT_TOKENS
    assert completion.usage.total_tokens == GEMINI_PROMPT_TOKENS + OUTPUT_TOKENS
    assert completion.usage.completion_tokens_details.reasoning_tokens == GEMINI_THOUGHTS_TOKENS

    body = gemini_request(upstream, marker)
    assert body["systemInstruction"] == {"parts": [{"text": "You are terse."}]}
    assert body["contents"] == [{"role": "user", "parts": [{"text": marker}]}]
    assert body["generationConfig"] == {"temperature": 0.5, "maxOutputTokens": 300, "stopSequences": ["END"]}
    assert "tools" not in body and "toolConfig" not in body
    assert sdk_key.key.encode() not in upstream.one(marker).raw


def test_openai_history_becomes_alternating_gemini_contents(client, upstream, marker):
    completion = client.chat.completions.create(
        model="gemini",
        messages=[
            {"role": "system", "content": "Rule one."},
            {"role": "user", "content": "first"},
            {"role": "user", "content": [{"type": "text", "text": "second"}]},
            {"role": "assistant", "content": "an earlier answer"},
            {"role": "developer", "content": "Rule two."},
            {"role": "user", "content": marker},
        ],
    )
    assert completion.choices[0].message.content == GEMINI_TEXT
    body = gemini_request(upstream, marker)
    assert body["systemInstruction"] == {"parts": [{"text": "Rule one."}, {"text": "Rule two."}]}
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "first"}, {"text": "second"}]},
        {"role": "model", "parts": [{"text": "an earlier answer"}]},
        {"role": "user", "parts": [{"text": marker}]},
    ]


def test_openai_streaming_text_from_gemini(client, upstream, marker):
    stream = client.chat.completions.create(
        model="gemini", messages=[{"role": "user", "content": marker}], stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    deltas = [chunk.choices[0].delta.content for chunk in chunks if chunk.choices and chunk.choices[0].delta.content]
    assert "".join(deltas) == GEMINI_TEXT
    assert len(deltas) >= len(GEMINI_PIECES), "Gemini's chunks are relayed as they come"
    assert [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices and chunk.choices[0].finish_reason] == ["stop"]
    usage_chunks = [chunk for chunk in chunks if chunk.usage is not None]
    assert len(usage_chunks) == 1 and usage_chunks[0] is chunks[-1] and chunks[-1].choices == []
    assert chunks[-1].usage.prompt_tokens == GEMINI_PROMPT_TOKENS
    assert chunks[-1].usage.completion_tokens == OUTPUT_TOKENS
    assert chunks[-1].usage.completion_tokens_details.reasoning_tokens == GEMINI_THOUGHTS_TOKENS
    body = gemini_request(upstream, marker, stream=True)
    assert body["contents"] == [{"role": "user", "parts": [{"text": marker}]}]


def test_openai_reasoning_content_from_gemini(client, upstream, marker):
    completion = client.chat.completions.create(
        model="gemini-thinking", messages=[{"role": "user", "content": marker}], reasoning_effort="low"
    )
    message = completion.choices[0].message
    assert message.content == GEMINI_TEXT
    assert extra_of(message).get("reasoning_content") == GEMINI_THOUGHT
    assert completion.usage.completion_tokens == OUTPUT_TOKENS
    assert completion.usage.completion_tokens_details.reasoning_tokens == GEMINI_THOUGHTS_TOKENS
    body = gemini_request(upstream, marker, model="gemini-fake-thinking")
    assert body["generationConfig"] == {"thinkingConfig": {"includeThoughts": True, "thinkingLevel": "LOW"}}


def test_openai_streamed_reasoning_from_gemini(client, upstream, marker):
    stream = client.chat.completions.create(
        model="gemini-thinking", messages=[{"role": "user", "content": marker}], reasoning_effort="high", stream=True
    )
    reasoning, text = "", ""
    for chunk in stream:
        for choice in chunk.choices:
            reasoning += extra_of(choice.delta).get("reasoning_content") or ""
            text += choice.delta.content or ""
    assert reasoning == GEMINI_THOUGHT
    assert text == GEMINI_TEXT
    body = gemini_request(upstream, marker, model="gemini-fake-thinking", stream=True)
    assert body["generationConfig"]["thinkingConfig"] == {"includeThoughts": True, "thinkingLevel": "HIGH"}


def test_openai_tool_call_from_gemini(client, upstream, marker):
    completion = client.chat.completions.create(
        model="gemini-tools", messages=[{"role": "user", "content": marker}], tools=OPENAI_TOOLS, tool_choice="required"
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls", "Gemini says STOP; the function call decides"
    assert not choice.message.content
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.id
    assert call.function.name == TOOL_NAME
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert completion.usage.completion_tokens == OUTPUT_TOKENS
    body = gemini_request(upstream, marker, model="gemini-fake-tools")
    assert body["tools"] == GEMINI_TOOLS
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}


def test_openai_parallel_tool_calls_from_gemini(client, upstream, marker):
    completion = client.chat.completions.create(
        model="gemini-parallel",
        messages=[{"role": "user", "content": marker}],
        tools=OPENAI_TOOLS,
        tool_choice={"type": "function", "function": {"name": TOOL_NAME}},
    )
    calls = completion.choices[0].message.tool_calls
    assert completion.choices[0].finish_reason == "tool_calls"
    assert [(call.function.name, json.loads(call.function.arguments)) for call in calls] == [
        (TOOL_NAME, {"city": "Paris"}),
        (TOOL_NAME, {"city": "Tokyo"}),
    ]
    assert len({call.id for call in calls}) == 2 and all(call.id for call in calls)
    body = gemini_request(upstream, marker, model="gemini-fake-parallel")
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [TOOL_NAME]}}


def test_openai_streamed_parallel_tool_calls_from_gemini(client, upstream, marker):
    stream = client.chat.completions.create(
        model="gemini-parallel", messages=[{"role": "user", "content": marker}], tools=OPENAI_TOOLS, stream=True
    )
    calls, finishes = assemble_tool_calls(stream)
    assert sorted(calls) == [0, 1]
    assert [(calls[i]["name"], json.loads(calls[i]["arguments"])) for i in (0, 1)] == [
        (TOOL_NAME, {"city": "Paris"}),
        (TOOL_NAME, {"city": "Tokyo"}),
    ]
    assert calls[0]["id"] and calls[1]["id"] and calls[0]["id"] != calls[1]["id"]
    assert finishes == ["tool_calls"]
    gemini_request(upstream, marker, model="gemini-fake-parallel", stream=True)


def test_openai_tool_loop_round_trips_the_signature(client, upstream, marker):
    """An app sends the SDK's own message object back, then the tool result; Gemini 3
    answers 400 unless the call comes back with its thoughtSignature."""
    messages: list = [{"role": "user", "content": f"Weather in Paris? {marker}"}]
    first = client.chat.completions.create(model="gemini-tools", messages=messages, tools=OPENAI_TOOLS)
    assert first.choices[0].finish_reason == "tool_calls"
    (call,) = first.choices[0].message.tool_calls
    messages.append(first.choices[0].message)
    messages.append({"role": "tool", "tool_call_id": call.id, "content": TOOL_OUTPUT})

    second = client.chat.completions.create(model="gemini-tools", messages=messages, tools=OPENAI_TOOLS)
    assert second.choices[0].message.content == GEMINI_TOOL_ANSWER + TOOL_OUTPUT
    assert second.choices[0].finish_reason == "stop"

    model_part, _ = second_turn_parts(gemini_requests(upstream, marker, 2)[1].body["contents"])
    assert "__gsig" not in model_part["functionCall"].get("id", "")
    # What the client saw: the signature where Google's OpenAI-compatible endpoint puts it.
    assert extra_of(call).get("extra_content") == EXTRA_CONTENT


def test_openai_parallel_tool_loop_signs_only_the_first_call(client, upstream, marker):
    messages: list = [{"role": "user", "content": f"Paris and Tokyo? {marker}"}]
    first = client.chat.completions.create(model="gemini-parallel", messages=messages, tools=OPENAI_TOOLS)
    calls = first.choices[0].message.tool_calls
    assert len(calls) == 2
    messages.append(first.choices[0].message)
    for call, output in zip(calls, ["18C", "25C"]):
        messages.append({"role": "tool", "tool_call_id": call.id, "content": output})

    second = client.chat.completions.create(model="gemini-parallel", messages=messages, tools=OPENAI_TOOLS)
    assert second.choices[0].message.content == GEMINI_TOOL_ANSWER + "18C; 25C"

    contents = gemini_requests(upstream, marker, 2)[1].body["contents"]
    assert [content["role"] for content in contents] == ["user", "model", "user"]
    assert [part["functionCall"]["args"] for part in contents[1]["parts"]] == [{"city": "Paris"}, {"city": "Tokyo"}]
    assert contents[1]["parts"][0]["thoughtSignature"] == GEMINI_SIGNATURE
    assert "thoughtSignature" not in contents[1]["parts"][1]
    assert [part["functionResponse"]["response"] for part in contents[2]["parts"]] == [{"output": "18C"}, {"output": "25C"}]


def test_openai_streamed_tool_call_carries_the_signature(client, upstream, marker):
    messages: list = [{"role": "user", "content": f"Weather in Paris? {marker}"}]
    stream = client.chat.completions.create(model="gemini-tools", messages=messages, tools=OPENAI_TOOLS, stream=True)
    deltas = [call for chunk in stream for choice in chunk.choices for call in choice.delta.tool_calls or []]
    assert deltas, "no tool-call delta"
    first = deltas[0]
    assert first.index == 0 and first.id and first.function.name == TOOL_NAME
    assert extra_of(first).get("extra_content") == EXTRA_CONTENT
    arguments = "".join(delta.function.arguments or "" for delta in deltas if delta.function)
    assert json.loads(arguments) == {"city": "Paris"}

    # A streaming app rebuilds the assistant message, keeping extra_content, and goes on.
    messages.append(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": first.id, "type": "function", "function": {"name": TOOL_NAME, "arguments": arguments},
                 "extra_content": extra_of(first).get("extra_content")}
            ],
        }
    )
    messages.append({"role": "tool", "tool_call_id": first.id, "content": TOOL_OUTPUT})
    second = client.chat.completions.create(model="gemini-tools", messages=messages, tools=OPENAI_TOOLS)
    assert second.choices[0].message.content == GEMINI_TOOL_ANSWER + TOOL_OUTPUT
    assert gemini_requests(upstream, marker, 2)[1].body["contents"][1]["parts"][0]["thoughtSignature"] == GEMINI_SIGNATURE


def test_openai_gemini_rate_limit_is_an_upstream_error(client, upstream, marker):
    """A 429 from the only route is the provider's failure, not the caller's rate limit:
    llmux answers 502 `upstream_error` (crates/llmux-gateway/src/error.rs) with Gemini's
    RetryInfo delay as Retry-After."""
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="gemini-busy", messages=[{"role": "user", "content": marker}])
    error = info.value
    assert type(error) is openai.InternalServerError
    assert error.status_code == 502
    assert error.code == "upstream_error"
    assert error.type == "api_error"
    assert error.response.headers.get("retry-after") == str(GEMINI_RETRY_DELAY_S)
    assert error.response.headers.get("x-llmux-attempts") == "1"
    assert UPSTREAM_KEY not in error.response.text
    assert f"127.0.0.1:{upstream.port}" not in error.response.text
    gemini_request(upstream, marker, model="gemini-fake-busy")


# --------------------------------------------------------------------------------------
# The anthropic SDK -> Gemini
# --------------------------------------------------------------------------------------


def test_anthropic_message_reaches_gemini(claude, upstream, marker):
    message = claude.messages.create(
        model="gemini",
        max_tokens=50,
        system="Be brief.",
        stop_sequences=["END"],
        messages=[{"role": "user", "content": marker}],
    )
    assert_thinking_first(message.content)
    assert [block.text for block in message.content if block.type == "text"] == [GEMINI_TEXT]
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == GEMINI_PROMPT_TOKENS
    assert message.usage.output_tokens == OUTPUT_TOKENS
    body = gemini_request(upstream, marker)
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert body["contents"] == [{"role": "user", "parts": [{"text": marker}]}]
    assert body["generationConfig"] == {"maxOutputTokens": 50, "stopSequences": ["END"]}


def test_anthropic_streaming_text_from_gemini(claude, upstream, marker):
    with claude.messages.stream(model="gemini", max_tokens=50, messages=[{"role": "user", "content": marker}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == GEMINI_TEXT
    assert [block.text for block in final.content if block.type == "text"] == [GEMINI_TEXT]
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens == GEMINI_PROMPT_TOKENS
    assert final.usage.output_tokens == OUTPUT_TOKENS
    gemini_request(upstream, marker, stream=True)


def test_anthropic_thinking_from_gemini(claude, upstream, marker):
    message = claude.messages.create(
        model="gemini-thinking",
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": marker}],
    )
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == GEMINI_THOUGHT
    # Gemini's signatures never sit in a thinking block (Claude would refuse them).
    assert message.content[0].signature == ""
    assert message.content[1].text == GEMINI_TEXT
    assert message.usage.output_tokens == OUTPUT_TOKENS
    body = gemini_request(upstream, marker, model="gemini-fake-thinking")
    # Anthropic's thinking budget becomes Gemini's.
    assert body["generationConfig"]["thinkingConfig"] == {"includeThoughts": True, "thinkingBudget": 1024}


def test_anthropic_tool_use_from_gemini(claude, upstream, marker):
    message = claude.messages.create(
        model="gemini-tools",
        max_tokens=200,
        tools=ANTHROPIC_TOOLS,
        tool_choice={"type": "tool", "name": TOOL_NAME},
        messages=[{"role": "user", "content": marker}],
    )
    assert message.stop_reason == "tool_use"
    assert_thinking_first(message.content)
    (tool_use,) = [block for block in message.content if block.type == "tool_use"]
    assert tool_use.name == TOOL_NAME and tool_use.id
    assert tool_use.input == {"city": "Paris"}
    assert message.usage.output_tokens == OUTPUT_TOKENS
    body = gemini_request(upstream, marker, model="gemini-fake-tools")
    assert body["tools"] == GEMINI_TOOLS
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [TOOL_NAME]}}
    assert body["generationConfig"] == {"maxOutputTokens": 200}


def _anthropic_tool_loop(claude, upstream, marker, stream: bool):
    messages: list = [{"role": "user", "content": f"Weather in Paris? {marker}"}]
    if stream:
        with claude.messages.stream(model="gemini-tools", max_tokens=200, tools=ANTHROPIC_TOOLS, messages=messages) as events:
            first = events.get_final_message()
    else:
        first = claude.messages.create(model="gemini-tools", max_tokens=200, tools=ANTHROPIC_TOOLS, messages=messages)
    assert first.stop_reason == "tool_use"
    (tool_use,) = [block for block in first.content if block.type == "tool_use"]
    # The SDK's own blocks go back as the assistant turn, as apps do.
    messages.append({"role": "assistant", "content": first.content})
    messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": TOOL_OUTPUT}]})

    second = claude.messages.create(model="gemini-tools", max_tokens=200, tools=ANTHROPIC_TOOLS, messages=messages)
    assert [block.text for block in second.content if block.type == "text"] == [GEMINI_TOOL_ANSWER + TOOL_OUTPUT]
    assert second.stop_reason == "end_turn"

    found = gemini_requests(upstream, marker, 2)
    assert found[0].path.endswith(":streamGenerateContent?alt=sse" if stream else ":generateContent")
    model_part, response_part = second_turn_parts(found[1].body["contents"])
    assert response_part["functionResponse"].get("id") == model_part["functionCall"].get("id")
    # The signature travelled in the tool_use id (opaque to the client, Anthropic's id
    # characters only), not in a thinking block.
    assert "__gsig" in tool_use.id
    assert re.fullmatch(r"[A-Za-z0-9_-]+", tool_use.id)
    assert [block for block in first.content if block.type == "thinking"] == []
    return first


def test_anthropic_tool_loop_round_trips_the_signature(claude, upstream, marker):
    _anthropic_tool_loop(claude, upstream, marker, stream=False)


def test_anthropic_streamed_tool_loop_round_trips_the_signature(claude, upstream, marker):
    _anthropic_tool_loop(claude, upstream, marker, stream=True)


def test_anthropic_streamed_text_is_not_followed_by_a_thinking_block(claude, marker):
    """Gemini 3 ends a streamed text answer with an empty text part carrying a
    thoughtSignature. Anthropic streams open with the thinking block; one that arrives
    after the text breaks that order (clients such as Claude Code drop such answers), so
    a signature that comes after the text must not open a thinking block there."""
    with claude.messages.stream(model="gemini", max_tokens=200, messages=[{"role": "user", "content": marker}]) as stream:
        final = stream.get_final_message()
    assert [block.text for block in final.content if block.type == "text"] == [GEMINI_TEXT]
    assert_thinking_first(final.content)


def test_anthropic_streamed_tool_call_carries_the_signature_in_its_id(claude, marker):
    """The signature is on the functionCall part itself: it rides in the tool_use id, so
    no thinking block is needed (nor one after text, where Anthropic never puts one)."""
    with claude.messages.stream(
        model="gemini-tools", max_tokens=200, tools=ANTHROPIC_TOOLS, messages=[{"role": "user", "content": marker}]
    ) as stream:
        final = stream.get_final_message()
    assert [block.type for block in final.content] == ["tool_use"]
    assert "__gsig" in final.content[0].id


def test_anthropic_gemini_conversation_continues_on_claude(claude, upstream, marker):
    """A Gemini signature is Gemini's only: when the conversation moves to Claude, the
    thinking block that carried it must not reach Anthropic (which answers 400 to a
    signature it did not mint)."""
    messages: list = [{"role": "user", "content": f"Weather in Paris? {marker}"}]
    first = claude.messages.create(model="gemini-tools", max_tokens=200, tools=ANTHROPIC_TOOLS, messages=messages)
    (tool_use,) = [block for block in first.content if block.type == "tool_use"]
    messages.append({"role": "assistant", "content": first.content})
    messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": TOOL_OUTPUT}]})

    second = claude.messages.create(model="sonnet", max_tokens=200, tools=ANTHROPIC_TOOLS, messages=messages)
    assert second.content[0].type == "text"
    sent = [recorded for recorded in upstream.find(marker) if recorded.path == "/v1/messages"]
    assert len(sent) == 1
    assistant = sent[0].body["messages"][1]
    assert [block["type"] for block in assistant["content"]] == ["tool_use"]
    # Claude sees only a longer id, in the tool_use and its tool_result alike.
    assert assistant["content"][0]["id"] == tool_use.id
    assert sent[0].body["messages"][2]["content"][0]["tool_use_id"] == tool_use.id


def test_anthropic_gemini_rate_limit_is_an_upstream_error(claude, upstream, marker):
    with pytest.raises(anthropic.InternalServerError) as caught:
        claude.messages.create(model="gemini-busy", max_tokens=10, messages=[{"role": "user", "content": marker}])
    error = caught.value
    assert type(error) is anthropic.InternalServerError
    assert error.status_code == 502
    assert error.body["type"] == "error"
    assert error.body["error"]["type"] == "api_error"
    assert error.response.headers.get("retry-after") == str(GEMINI_RETRY_DELAY_S)
    assert UPSTREAM_KEY not in str(error.body)
    gemini_request(upstream, marker, model="gemini-fake-busy")


# --------------------------------------------------------------------------------------
# The fake itself: it must reject what Gemini rejects, or the tests above prove nothing
# --------------------------------------------------------------------------------------

_USER = {"role": "user", "parts": [{"text": "weather?"}]}
_CALL = {"functionCall": {"name": TOOL_NAME, "args": {"city": "Paris"}}}
_RESULT = {"role": "user", "parts": [{"functionResponse": {"name": TOOL_NAME, "response": {"output": "18C"}}}]}


def _signed(signature):
    return {"role": "model", "parts": [{**_CALL, "thoughtSignature": signature}]}


@pytest.mark.parametrize(
    ("case", "body", "path", "headers", "problem"),
    [
        ("valid loop", {"contents": [_USER, _signed(GEMINI_SIGNATURE), _RESULT]}, None, None, None),
        ("no signature", {"contents": [_USER, {"role": "model", "parts": [_CALL]}, _RESULT]}, None, None, "thought_signature"),
        ("foreign signature", {"contents": [_USER, _signed("gemini:" + GEMINI_SIGNATURE), _RESULT]}, None, None, "thought_signature"),
        ("wrong signature", {"contents": [_USER, _signed("b3RoZXI="), _RESULT]}, None, None, "thought_signature"),
        ("unknown response name", {"contents": [_USER, _signed(GEMINI_SIGNATURE),
                                                {"role": "user", "parts": [{"functionResponse": {"name": "other", "response": {}}}]}]},
         None, None, "matches no functionCall"),
        ("response not an object", {"contents": [_USER, _signed(GEMINI_SIGNATURE),
                                                 {"role": "user", "parts": [{"functionResponse": {"name": TOOL_NAME, "response": "18C"}}]}]},
         None, None, "protobuf.Struct"),
        ("missing response", {"contents": [_USER, _signed(GEMINI_SIGNATURE), _USER]}, None, None, "number of function response parts"),
        ("same role twice", {"contents": [_USER, _USER]}, None, None, "alternate"),
        ("model first", {"contents": [{"role": "model", "parts": [{"text": "hi"}]}, _USER]}, None, None, "start with a user turn"),
        ("bad role", {"contents": [{"role": "assistant", "parts": [{"text": "hi"}]}]}, None, None, "valid role"),
        ("empty text", {"contents": [{"role": "user", "parts": [{"text": ""}]}]}, None, None, "empty text parameter"),
        ("no contents", {"contents": []}, None, None, "contents is not specified"),
        ("OpenAI fields", {"model": "x", "stream": True, "contents": [_USER]}, None, None, 'Unknown name "model"'),
        ("system role", {"systemInstruction": {"role": "model", "parts": [{"text": "x"}]}, "contents": [_USER]}, None, None, "systemInstruction"),
        ("stream without alt=sse", {"contents": [_USER]}, "/v1beta/models/gemini-3-pro-preview:streamGenerateContent", None, "alt=sse"),
        ("bearer auth", {"contents": [_USER]}, None, {"authorization": f"Bearer {UPSTREAM_KEY}"}, "Authorization"),
        ("wrong key", {"contents": [_USER]}, None, {"x-goog-api-key": "nope"}, "API key not valid"),
    ],
)
def test_fake_gemini_rejects_what_gemini_rejects(upstream, case, body, path, headers, problem):
    sent_headers = {"x-goog-api-key": UPSTREAM_KEY, **(headers or {})}
    with httpx2.Client(base_url=f"http://127.0.0.1:{upstream.port}", trust_env=False, timeout=10) as fake:
        response = fake.post(path or "/v1beta/models/gemini-3-pro-preview:generateContent", json=body, headers=sent_headers)
    if problem is None:
        assert response.status_code == 200, response.text
        assert response.json()["candidates"][0]["content"]["parts"][0]["text"] == GEMINI_TOOL_ANSWER + "18C"
        return
    assert response.status_code == 400, f"{case}: {response.text}"
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")
    assert problem in error["message"], f"{case}: {error['message']}"
