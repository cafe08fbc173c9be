"""Conformance of the llmux Anthropic surface (`/v1/messages`) with the official
`anthropic` Python SDK, against an OpenAI-dialect upstream (translated both ways) and
the built-in mock."""

from __future__ import annotations

import anthropic
import httpx2
import pytest

from conftest import (
    CHAT_PIECES,
    CHAT_TEXT,
    CHAT_USAGE,
    TOOL_CALL_ID,
    TOOL_NAME,
    UPSTREAM_400_MESSAGE,
    UPSTREAM_KEY,
    create_key,
    make_anthropic,
    usage_of,
    wait_until,
)

WEATHER_TOOL = {
    "name": TOOL_NAME,
    "description": "Current weather for a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "City name"}},
        "required": ["city"],
    },
}


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


# --------------------------------------------------------------------------------------
# Messages against an OpenAI-dialect upstream
# --------------------------------------------------------------------------------------


def test_message_non_streaming(claude, upstream, sdk_key, marker):
    message = claude.messages.create(
        model="chat",
        max_tokens=100,
        system="You are terse.",
        messages=user(marker),
        stop_sequences=["END"],
        # Current SDKs no longer offer `temperature`; older clients send it, and it maps.
        extra_body={"temperature": 0.5},
    )

    assert message.type == "message"
    assert message.role == "assistant"
    assert message.id.startswith("msg_")
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == CHAT_TEXT
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == CHAT_USAGE["prompt_tokens"]
    assert message.usage.output_tokens == CHAT_USAGE["completion_tokens"]

    recorded = upstream.one(marker)
    assert recorded.path == "/v1/chat/completions"
    assert recorded.body["model"] == "fake-chat"
    assert recorded.body["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": marker},
    ]
    assert recorded.body["max_tokens"] == 100
    assert recorded.body["temperature"] == 0.5
    assert recorded.body["stop"] == ["END"]
    assert recorded.headers.get("authorization") == f"Bearer {UPSTREAM_KEY}"
    assert sdk_key.key.encode() not in recorded.raw


def test_message_streaming_text(claude, upstream, marker):
    events = []
    with claude.messages.stream(model="chat", max_tokens=50, messages=user(marker)) as stream:
        for event in stream:
            events.append(event.type)
        final = stream.get_final_message()

    assert events[0] == "message_start"
    assert events[-1] == "message_stop"
    assert "content_block_start" in events and "content_block_stop" in events
    assert events.count("text") == len([piece for piece in CHAT_PIECES if piece])
    assert final.content[0].type == "text"
    assert final.content[0].text == CHAT_TEXT
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == CHAT_USAGE["completion_tokens"]

    recorded = upstream.one(marker)
    assert recorded.body["stream"] is True
    # llmux always asks for usage so it can meter the stream.
    assert recorded.body["stream_options"] == {"include_usage": True}


def test_tool_use_non_streaming(claude, upstream, marker):
    message = claude.messages.create(
        model="tools",
        max_tokens=100,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "auto"},
        messages=user(marker),
    )

    assert message.stop_reason == "tool_use"
    tool_uses = [block for block in message.content if block.type == "tool_use"]
    assert len(tool_uses) == 1
    assert tool_uses[0].id == TOOL_CALL_ID
    assert tool_uses[0].name == TOOL_NAME
    assert tool_uses[0].input == {"city": "Paris"}

    recorded = upstream.one(marker)
    assert recorded.body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": TOOL_NAME,
                "description": WEATHER_TOOL["description"],
                "parameters": WEATHER_TOOL["input_schema"],
            },
        }
    ]
    assert recorded.body["tool_choice"] == "auto"


def test_tool_use_streaming(claude, marker):
    with claude.messages.stream(model="tools", max_tokens=100, tools=[WEATHER_TOOL], messages=user(marker)) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()

    assert "input_json" in kinds
    assert final.stop_reason == "tool_use"
    tool_uses = [block for block in final.content if block.type == "tool_use"]
    assert [(block.id, block.name, block.input) for block in tool_uses] == [(TOOL_CALL_ID, TOOL_NAME, {"city": "Paris"})]


def test_tool_result_round_trip(claude, upstream, marker):
    message = claude.messages.create(
        model="chat",
        max_tokens=100,
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": f"weather? {marker}"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": TOOL_CALL_ID, "name": TOOL_NAME, "input": {"city": "Paris"}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": TOOL_CALL_ID, "content": "18°C and sunny"}],
            },
        ],
    )
    assert message.content[0].text == CHAT_TEXT

    messages = upstream.one(marker).body["messages"]
    assert messages[0] == {"role": "user", "content": f"weather? {marker}"}
    assert messages[1]["role"] == "assistant"
    assert messages[1]["tool_calls"] == [
        {"id": TOOL_CALL_ID, "type": "function", "function": {"name": TOOL_NAME, "arguments": '{"city":"Paris"}'}}
    ]
    assert messages[2]["role"] == "tool"
    assert messages[2]["tool_call_id"] == TOOL_CALL_ID
    assert messages[2]["content"] == "18°C and sunny"


def test_image_blocks_become_image_url_parts(claude, upstream, marker):
    pixel = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
    claude.messages.create(
        model="chat",
        max_tokens=20,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": marker},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": pixel}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
                ],
            }
        ],
    )
    content = upstream.one(marker).body["messages"][0]["content"]
    assert content[0] == {"type": "text", "text": marker}
    assert content[1]["type"] == "image_url"
    assert content[1]["image_url"]["url"] == f"data:image/png;base64,{pixel}"
    assert content[2]["image_url"]["url"] == "https://example.com/cat.png"


# --------------------------------------------------------------------------------------
# The built-in mock
# --------------------------------------------------------------------------------------


def test_mock_provider_echo(claude, marker):
    message = claude.messages.create(model="mockchat", max_tokens=50, messages=user(marker))
    assert marker in message.content[0].text
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0


def test_mock_provider_streaming(claude, marker):
    with claude.messages.stream(model="mockchat", max_tokens=50, messages=user(marker)) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert marker in text
    assert final.content[0].text == text
    assert final.stop_reason == "end_turn"


def test_count_tokens(claude):
    small = claude.messages.count_tokens(model="chat", messages=user("hi"))
    large = claude.messages.count_tokens(model="chat", messages=user("hello " * 200))
    assert 0 < small.input_tokens < large.input_tokens


def test_models_list_and_retrieve(claude, gateway, limited_key):
    ids = [model.id for model in claude.models.list()]
    assert "chat" in ids and "sonnet" in ids and "mockchat" in ids
    model = claude.models.retrieve("chat")
    assert (model.type, model.id) == ("model", "chat")
    with pytest.raises(anthropic.NotFoundError) as caught:
        claude.models.retrieve("no-such-model")
    assert caught.value.body["error"]["type"] == "not_found_error"
    with anthropic.Anthropic(
        base_url=gateway.url, api_key=limited_key.key, max_retries=0, http_client=httpx2.Client(trust_env=False)
    ) as limited:
        assert [model.id for model in limited.models.list()] == ["chat"]


# --------------------------------------------------------------------------------------
# Errors, in Anthropic's shape
# --------------------------------------------------------------------------------------


def test_error_invalid_api_key(gateway):
    with make_anthropic(gateway, "sk-llmux-not-a-real-key") as client:
        with pytest.raises(anthropic.AuthenticationError) as caught:
            client.messages.create(model="chat", max_tokens=10, messages=user("hi"))
    assert caught.value.status_code == 401
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == "authentication_error"
    assert caught.value.request_id


def test_error_unknown_model(claude):
    with pytest.raises(anthropic.NotFoundError) as caught:
        claude.messages.create(model="no-such-model", max_tokens=10, messages=user("hi"))
    assert caught.value.body["error"]["type"] == "not_found_error"
    assert "no-such-model" in caught.value.body["error"]["message"]


def test_error_missing_max_tokens(gateway, sdk_key):
    response = httpx2.post(
        f"{gateway.url}/v1/messages",
        headers={"x-api-key": sdk_key.key, "anthropic-version": "2023-06-01"},
        json={"model": "chat", "messages": user("hi")},
        trust_env=False,
    )
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in body["error"]["message"]


def test_error_upstream_400_passes_message(claude, marker):
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.create(model="bad", max_tokens=10, messages=user(marker))
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert UPSTREAM_400_MESSAGE in caught.value.body["error"]["message"]


def test_error_upstream_500_is_an_api_error(claude, marker):
    with pytest.raises(anthropic.APIStatusError) as caught:
        claude.messages.create(model="broken", max_tokens=10, messages=user(marker))
    assert caught.value.status_code == 502
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == "api_error"
    assert UPSTREAM_KEY not in str(caught.value.body)


def test_spent_budget_is_a_rate_limit_error_the_sdk_does_not_retry(gateway, upstream, marker):
    poor = create_key(gateway, {"name": "py-anthropic-budget", "budget": {"amount": 0.000001, "period": "monthly"}})
    # The SDK's default: two retries of every 429 unless told `x-should-retry: false`.
    with anthropic.Anthropic(base_url=gateway.url, api_key=poor.key, http_client=httpx2.Client(trust_env=False)) as sdk:
        with pytest.raises(anthropic.RateLimitError) as caught:
            sdk.messages.create(model="priced", max_tokens=10, messages=user(marker))
    assert caught.value.status_code == 429
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == "rate_limit_error"
    assert "budget" in caught.value.body["error"]["message"]
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert upstream.find(marker) == []
    records = usage_of(gateway, poor.id, 3)
    assert [(record["status"], record["error_code"]) for record in records] == [(429, "budget_exceeded")]


def test_usage_is_recorded_for_anthropic_requests(gateway, claude, marker):
    raw = claude.messages.with_raw_response.create(model="chat", max_tokens=10, messages=user(marker))
    request_id = raw.headers["request-id"]
    assert raw.headers["x-request-id"] == request_id
    assert raw.headers["x-llmux-provider"] == "fake"
    with gateway.admin() as admin:

        def recorded():
            rows = admin.get("/admin/usage", params={"model": "chat", "limit": 500}).json()["records"]
            return [row for row in rows if row["request_id"] == request_id]

        rows = wait_until(recorded, 10, what="the usage record of the Anthropic request")
    assert rows[0]["input_tokens"] == CHAT_USAGE["prompt_tokens"]
    assert rows[0]["output_tokens"] == CHAT_USAGE["completion_tokens"]
    assert rows[0]["status"] == 200
    assert rows[0]["provider"] == "fake"
    assert rows[0]["upstream_model"] == "fake-chat"
