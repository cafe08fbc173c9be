"""Both official Python SDKs against an Anthropic-dialect upstream (provider kind
`anthropic`). The fake upstream rejects bodies the real Messages API would reject
(system inside messages, no max_tokens, OpenAI-only fields, non-alternating roles,
empty text blocks, OpenAI-shaped tools), so a passing test means the translated body
was valid for Anthropic."""

from __future__ import annotations

import json

from conftest import (
    ANTHROPIC_USAGE,
    CHAT_PIECES,
    CHAT_TEXT,
    CLAUDE_TOOL_IDS,
    THINKING_SIGNATURE,
    THINKING_TEXT,
    TOOL_NAME,
    UPSTREAM_KEY,
    assemble_tool_calls,
)

OPENAI_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": TOOL_NAME,
            "description": "Current weather for a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
PROMPT_TOKENS = ANTHROPIC_USAGE["input_tokens"] + ANTHROPIC_USAGE["cache_read_input_tokens"] + ANTHROPIC_USAGE["cache_creation_input_tokens"]


def messages_to(upstream, marker):
    recorded = upstream.one(marker)
    assert recorded.path == "/v1/messages"
    assert recorded.headers.get("x-api-key") == UPSTREAM_KEY
    assert "authorization" not in recorded.headers
    return recorded.body


# --------------------------------------------------------------------------------------
# The openai SDK -> Anthropic
# --------------------------------------------------------------------------------------


def test_openai_chat_reaches_anthropic(client, upstream, sdk_key, marker):
    completion = client.chat.completions.create(
        model="sonnet",
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": marker},
        ],
        max_tokens=300,
        seed=1,
    )
    assert completion.choices[0].message.content == CHAT_TEXT
    assert completion.choices[0].finish_reason == "stop"
    # Anthropic's input_tokens exclude cache reads and writes; OpenAI's prompt_tokens include them.
    assert completion.usage.prompt_tokens == PROMPT_TOKENS
    assert completion.usage.completion_tokens == ANTHROPIC_USAGE["output_tokens"]
    assert completion.usage.prompt_tokens_details.cached_tokens == ANTHROPIC_USAGE["cache_read_input_tokens"]

    body = messages_to(upstream, marker)
    assert body["model"] == "claude-text"
    assert body["system"] == "You are terse."
    assert body["max_tokens"] == 300
    assert body["messages"][0]["role"] == "user"
    assert sdk_key.key.encode() not in upstream.one(marker).raw


def test_openai_dropped_parameters_are_named(client, marker):
    raw = client.chat.completions.with_raw_response.create(
        model="sonnet", messages=[{"role": "user", "content": marker}], seed=7, n=1
    )
    assert raw.headers["x-llmux-provider"] == "claude"
    assert raw.headers["x-llmux-dropped-params"] == "seed"


def test_openai_streaming_text_from_anthropic(client, marker):
    stream = client.chat.completions.create(
        model="sonnet", messages=[{"role": "user", "content": marker}], stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == "".join(CHAT_PIECES)
    assert [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices and chunk.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage.prompt_tokens == PROMPT_TOKENS
    assert chunks[-1].usage.completion_tokens == ANTHROPIC_USAGE["output_tokens"]


def test_openai_parallel_tool_calls_from_anthropic(client, upstream, marker):
    completion = client.chat.completions.create(
        model="sonnet-tools", messages=[{"role": "user", "content": marker}], tools=OPENAI_TOOLS, tool_choice="required"
    )
    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "tool_calls"
    assert [(call.id, call.function.name, json.loads(call.function.arguments)) for call in message.tool_calls] == [
        (CLAUDE_TOOL_IDS[0], TOOL_NAME, {"city": "Paris"}),
        (CLAUDE_TOOL_IDS[1], TOOL_NAME, {"city": "Tokyo"}),
    ]
    body = messages_to(upstream, marker)
    assert body["tools"] == [
        {"name": TOOL_NAME, "description": "Current weather for a city.", "input_schema": OPENAI_TOOLS[0]["function"]["parameters"]}
    ]
    assert body["tool_choice"] == {"type": "any"}


def test_openai_streamed_parallel_tool_calls_have_ordinal_indexes(client, marker):
    stream = client.chat.completions.create(
        model="sonnet-tools", messages=[{"role": "user", "content": marker}], tools=OPENAI_TOOLS, stream=True
    )
    calls, _ = assemble_tool_calls(stream)
    # Anthropic's tool_use blocks are at content indexes 1 and 2 (after thinking); OpenAI wants 0 and 1.
    assert sorted(calls) == [0, 1]
    assert [(calls[i]["id"], json.loads(calls[i]["arguments"])) for i in (0, 1)] == [
        (CLAUDE_TOOL_IDS[0], {"city": "Paris"}),
        (CLAUDE_TOOL_IDS[1], {"city": "Tokyo"}),
    ]


def test_openai_tool_results_and_images_become_valid_anthropic_turns(client, upstream, marker):
    pixel = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
    client.chat.completions.create(
        model="sonnet",
        tools=OPENAI_TOOLS,
        messages=[
            {"role": "user", "content": [{"type": "text", "text": marker}, {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{pixel}"}}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_a", "type": "function", "function": {"name": TOOL_NAME, "arguments": '{"city":"Paris"}'}},
                    {"id": "call_b", "type": "function", "function": {"name": TOOL_NAME, "arguments": '{"city":"Tokyo"}'}},
                ],
            },
            {"role": "tool", "tool_call_id": "call_a", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_b", "content": "25C"},
        ],
    )
    turns = messages_to(upstream, marker)["messages"]
    assert [turn["role"] for turn in turns] == ["user", "assistant", "user"]
    image = [block for block in turns[0]["content"] if block["type"] == "image"][0]
    assert image["source"] == {"type": "base64", "media_type": "image/png", "data": pixel}
    assert [(block["type"], block["id"], block["input"]) for block in turns[1]["content"]] == [
        ("tool_use", "call_a", {"city": "Paris"}),
        ("tool_use", "call_b", {"city": "Tokyo"}),
    ]
    assert [(block["type"], block["tool_use_id"], block["content"]) for block in turns[2]["content"]] == [
        ("tool_result", "call_a", "18C"),
        ("tool_result", "call_b", "25C"),
    ]


# --------------------------------------------------------------------------------------
# The anthropic SDK -> Anthropic (through the canonical model)
# --------------------------------------------------------------------------------------


def test_anthropic_message_reaches_anthropic(claude, upstream, marker):
    message = claude.messages.create(model="sonnet", max_tokens=50, system="Be brief.", messages=[{"role": "user", "content": marker}])
    assert message.content[0].text == CHAT_TEXT
    assert message.usage.input_tokens == ANTHROPIC_USAGE["input_tokens"]
    assert message.usage.cache_read_input_tokens == ANTHROPIC_USAGE["cache_read_input_tokens"]
    assert message.usage.cache_creation_input_tokens == ANTHROPIC_USAGE["cache_creation_input_tokens"]
    body = messages_to(upstream, marker)
    assert body["system"] == "Be brief."
    assert body["max_tokens"] == 50


def test_anthropic_thinking_and_parallel_tools_stream_through(claude, marker):
    with claude.messages.stream(model="sonnet-tools", max_tokens=200, messages=[{"role": "user", "content": marker}]) as stream:
        final = stream.get_final_message()
    assert [block.type for block in final.content] == ["thinking", "tool_use", "tool_use"]
    assert final.content[0].thinking == THINKING_TEXT
    assert final.content[0].signature == THINKING_SIGNATURE
    assert [(block.id, block.input) for block in final.content[1:]] == [
        (CLAUDE_TOOL_IDS[0], {"city": "Paris"}),
        (CLAUDE_TOOL_IDS[1], {"city": "Tokyo"}),
    ]
    assert final.stop_reason == "tool_use"


def test_anthropic_thinking_signature_survives_the_next_turn(claude, upstream, marker):
    claude.messages.create(
        model="sonnet",
        max_tokens=50,
        messages=[
            {"role": "user", "content": f"weather? {marker}"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": THINKING_TEXT, "signature": THINKING_SIGNATURE},
                    {"type": "tool_use", "id": CLAUDE_TOOL_IDS[0], "name": TOOL_NAME, "input": {"city": "Paris"}},
                ],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": CLAUDE_TOOL_IDS[0], "content": "18C"}]},
        ],
    )
    assistant = messages_to(upstream, marker)["messages"][1]
    assert assistant["content"][0] == {"type": "thinking", "thinking": THINKING_TEXT, "signature": THINKING_SIGNATURE}
