"""Conformance of the llmux OpenAI surface with the official `openai` Python SDK."""

from __future__ import annotations

import json

import openai
import pytest

from conftest import (
    CHAT_TEXT,
    CHAT_USAGE,
    CONFIGURED_MODELS,
    EMBEDDING_DIM,
    TOOL_ARGUMENTS,
    TOOL_CALL_ID,
    TOOL_NAME,
    UPSTREAM_400_MESSAGE,
    UPSTREAM_KEY,
    create_key,
    embedding_vector,
    make_client,
    usage_of,
    wait_until,
)

WEATHER_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": TOOL_NAME,
            "description": "Current weather for a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "description": "City name"}},
                "required": ["city"],
                "additionalProperties": False,
            },
            "strict": True,
        },
    }
]


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def assert_upstream_auth(recorded, client_key: str) -> None:
    """The upstream sees the provider's key, never the caller's virtual key."""
    assert recorded.headers.get("authorization") == f"Bearer {UPSTREAM_KEY}"
    for name, value in recorded.headers.items():
        assert client_key not in value, f"client key leaked upstream in header {name}"
    assert client_key.encode() not in recorded.raw


# --------------------------------------------------------------------------------------
# Chat completions
# --------------------------------------------------------------------------------------


def test_chat_non_streaming(client, upstream, sdk_key, marker):
    completion = client.chat.completions.create(model="chat", messages=user(marker))

    assert completion.choices[0].message.content == CHAT_TEXT
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == CHAT_USAGE["prompt_tokens"]
    assert completion.usage.completion_tokens == CHAT_USAGE["completion_tokens"]
    assert completion.usage.total_tokens == CHAT_USAGE["total_tokens"]

    recorded = upstream.one(marker)
    assert recorded.method == "POST"
    assert recorded.path == "/v1/chat/completions"
    assert recorded.body["model"] == "fake-chat"
    assert recorded.body["messages"] == user(marker)
    assert "stream_options" not in recorded.body
    assert_upstream_auth(recorded, sdk_key.key)


def test_chat_streaming_without_stream_options(client, upstream, sdk_key, marker):
    stream = client.chat.completions.create(model="chat", messages=user(marker), stream=True)
    chunks = list(stream)

    assert chunks, "no chunks received"
    empty = [chunk for chunk in chunks if not chunk.choices]
    assert not empty, f"the client did not ask for usage but got {len(empty)} chunk(s) with empty `choices`: {empty}"
    assert all(chunk.usage is None for chunk in chunks), "usage leaked into chunks the client did not ask it for"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert text == CHAT_TEXT
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)

    recorded = upstream.one(marker)
    assert recorded.body["model"] == "fake-chat"
    assert recorded.body["stream"] is True
    # The gateway asks the upstream for usage (to meter the request) even though the client did not.
    assert recorded.body.get("stream_options", {}).get("include_usage") is True
    assert_upstream_auth(recorded, sdk_key.key)


def test_chat_streaming_with_include_usage(client, upstream, marker):
    stream = client.chat.completions.create(
        model="chat", messages=user(marker), stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)

    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == CHAT_TEXT
    final = chunks[-1]
    assert final.choices == []
    assert final.usage is not None
    assert final.usage.prompt_tokens == CHAT_USAGE["prompt_tokens"]
    assert final.usage.completion_tokens == CHAT_USAGE["completion_tokens"]
    assert final.usage.total_tokens == CHAT_USAGE["total_tokens"]
    assert sum(1 for chunk in chunks if not chunk.choices) == 1

    recorded = upstream.one(marker)
    assert recorded.body["stream_options"] == {"include_usage": True}


def test_chat_streaming_raw_response_headers(client, marker):
    raw = client.chat.completions.with_raw_response.create(model="chat", messages=user(marker), stream=True)
    assert raw.http_response.status_code == 200
    assert raw.headers.get("content-type", "").startswith("text/event-stream")
    assert raw.headers.get("x-request-id")
    assert raw.headers.get("x-llmux-provider") == "fake"
    assert raw.headers.get("x-llmux-attempts") == "1"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in raw.parse() if chunk.choices)
    assert text == CHAT_TEXT


# --------------------------------------------------------------------------------------
# Tools
# --------------------------------------------------------------------------------------


def test_tools_non_streaming(client, upstream, marker):
    completion = client.chat.completions.create(
        model="tools", messages=user(f"Weather in Paris? {marker}"), tools=WEATHER_TOOLS, tool_choice="auto"
    )

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None and len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    assert call.id == TOOL_CALL_ID
    assert call.type == "function"
    assert call.function.name == TOOL_NAME
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert call.function.arguments == TOOL_ARGUMENTS

    recorded = upstream.one(marker)
    assert recorded.body["model"] == "fake-tools"
    assert recorded.body["tools"] == WEATHER_TOOLS
    assert recorded.body["tool_choice"] == "auto"


def test_tools_streaming(client, upstream, marker):
    stream = client.chat.completions.create(
        model="tools", messages=user(f"Weather in Paris? {marker}"), tools=WEATHER_TOOLS, stream=True
    )
    calls: dict[int, dict] = {}
    finish_reasons = []
    for chunk in stream:
        for choice in chunk.choices:
            if choice.finish_reason:
                finish_reasons.append(choice.finish_reason)
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"id": None, "type": None, "name": "", "arguments": ""})
                if delta.id:
                    call["id"] = delta.id
                if delta.type:
                    call["type"] = delta.type
                if delta.function is not None:
                    call["name"] += delta.function.name or ""
                    call["arguments"] += delta.function.arguments or ""

    assert finish_reasons == ["tool_calls"]
    assert list(calls) == [0]
    assert calls[0] == {"id": TOOL_CALL_ID, "type": "function", "name": TOOL_NAME, "arguments": TOOL_ARGUMENTS}
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}

    recorded = upstream.one(marker)
    assert recorded.body["tools"] == WEATHER_TOOLS
    assert recorded.body["stream"] is True


def test_tool_result_round_trip_passes_through(client, upstream, marker):
    """A follow-up turn carrying the assistant's tool call and the tool result reaches the upstream intact."""
    messages = [
        {"role": "user", "content": f"Weather in Paris? {marker}"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": TOOL_CALL_ID, "type": "function", "function": {"name": TOOL_NAME, "arguments": TOOL_ARGUMENTS}}
            ],
        },
        {"role": "tool", "tool_call_id": TOOL_CALL_ID, "content": '{"temperature_c": 18}'},
    ]
    completion = client.chat.completions.create(model="chat", messages=messages, tools=WEATHER_TOOLS)
    assert completion.choices[0].message.content == CHAT_TEXT
    recorded = upstream.one(marker)
    assert recorded.body["messages"] == messages
    assert recorded.body["tools"] == WEATHER_TOOLS


# --------------------------------------------------------------------------------------
# Pass-through of parameters and content
# --------------------------------------------------------------------------------------


def test_extra_and_unknown_parameters_pass_through(client, upstream, sent, marker):
    completion = client.chat.completions.create(
        model="chat",
        messages=user(marker),
        seed=7,
        response_format={"type": "json_object"},
        logprobs=True,
        top_logprobs=2,
        temperature=0.25,
        max_completion_tokens=64,
        stop=["END"],
        user="end-user-42",
        extra_body={"custom_vendor_flag": {"a": 1}},
    )
    assert completion.choices[0].message.content == CHAT_TEXT

    body = upstream.one(marker).body
    assert body["custom_vendor_flag"] == {"a": 1}
    assert body["seed"] == 7
    assert body["response_format"] == {"type": "json_object"}
    assert body["logprobs"] is True
    assert body["top_logprobs"] == 2
    assert body["temperature"] == 0.25
    assert body["max_completion_tokens"] == 64
    assert body["stop"] == ["END"]
    assert body["user"] == "end-user-42"

    # Everything the SDK sent arrives verbatim; only `model` is rewritten to the route's model.
    client_body = sent.last_body()
    assert client_body["model"] == "chat"
    assert body == {**client_body, "model": "fake-chat"}


def test_image_content_parts_pass_through(client, upstream, marker):
    # A 1x1 transparent PNG.
    data_url = (
        "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhf"
        "DwAChwGA60e6kgAAAABJRU5ErkJggg=="
    )
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": f"What is in this image? {marker}"},
                {"type": "image_url", "image_url": {"url": data_url, "detail": "low"}},
            ],
        }
    ]
    completion = client.chat.completions.create(model="chat", messages=messages)
    assert completion.choices[0].message.content == CHAT_TEXT

    recorded = upstream.one(marker)
    assert recorded.body["messages"] == messages
    assert recorded.body["messages"][0]["content"][1]["image_url"]["url"] == data_url


# --------------------------------------------------------------------------------------
# Embeddings and models
# --------------------------------------------------------------------------------------


def test_embeddings_default_encoding(client, upstream, marker):
    # The SDK asks for base64 by default and decodes it to floats itself.
    response = client.embeddings.create(model="embed", input=["a", marker])
    assert len(response.data) == 2
    for index, item in enumerate(response.data):
        assert item.index == index
        assert item.embedding == embedding_vector(index)
    assert response.usage.prompt_tokens == 6

    recorded = upstream.one(marker)
    assert recorded.path == "/v1/embeddings"
    assert recorded.body["model"] == "fake-embed"
    assert recorded.body["input"] == ["a", marker]
    assert recorded.body["encoding_format"] == "base64"
    assert recorded.headers.get("authorization") == f"Bearer {UPSTREAM_KEY}"


def test_embeddings_float_encoding(client, upstream, marker):
    response = client.embeddings.create(model="embed", input=marker, encoding_format="float")
    assert len(response.data) == 1
    assert response.data[0].embedding == embedding_vector(0)
    assert len(response.data[0].embedding) == EMBEDDING_DIM
    assert upstream.one(marker).body["encoding_format"] == "float"


def test_models_list(client):
    ids = [model.id for model in client.models.list()]
    assert set(CONFIGURED_MODELS) <= set(ids), ids
    assert len(ids) == len(set(ids)), f"duplicate model ids: {ids}"
    model = client.models.retrieve("chat")
    assert model.id == "chat"


def test_models_list_limited_key(limited_client):
    ids = [model.id for model in limited_client.models.list()]
    assert ids == ["chat"]


# --------------------------------------------------------------------------------------
# The mock provider through the SDK
# --------------------------------------------------------------------------------------


def test_mock_provider_echo(client, upstream, marker):
    text = f"Echo this back, please: {marker}"
    raw = client.chat.completions.with_raw_response.create(model="mockchat", messages=user(text))
    completion = raw.parse()
    assert completion.choices[0].message.content == text
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens > 0
    assert raw.headers.get("x-llmux-provider") == "mock"
    assert not upstream.find(marker), "the mock provider must not call the fake upstream"


def test_mock_provider_echo_streaming(client, marker):
    text = f"Stream me back: {marker}"
    chunks = list(
        client.chat.completions.create(
            model="mockchat", messages=user(text), stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices) == text
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    finishes = [choice.finish_reason for chunk in chunks for choice in chunk.choices if choice.finish_reason]
    assert finishes == ["stop"]


def test_mock_provider_streaming_without_usage(client, marker):
    chunks = list(client.chat.completions.create(model="mockchat", messages=user(marker), stream=True))
    assert all(chunk.choices for chunk in chunks)
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == marker


# --------------------------------------------------------------------------------------
# Errors as the SDK's typed exceptions
# --------------------------------------------------------------------------------------


def test_error_invalid_api_key(gateway):
    with make_client(gateway, "sk-llmux-not-a-real-key") as bad_client:
        with pytest.raises(openai.AuthenticationError) as info:
            bad_client.chat.completions.create(model="chat", messages=user("hi"))
    error = info.value
    assert error.status_code == 401
    assert error.code == "invalid_api_key"
    assert error.type == "authentication_error"
    assert error.request_id, "error responses carry x-request-id"


def test_error_invalid_api_key_on_models(gateway):
    with make_client(gateway, "sk-llmux-not-a-real-key") as bad_client:
        with pytest.raises(openai.AuthenticationError) as info:
            bad_client.models.list()
    assert info.value.status_code == 401
    assert info.value.code == "invalid_api_key"


def test_error_unknown_model(client):
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="no-such-model", messages=user("hi"))
    error = info.value
    assert error.status_code == 404
    assert error.code == "model_not_found"
    assert error.param == "model"
    assert "no-such-model" in error.message


def test_error_unknown_model_retrieve(client):
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("no-such-model")
    assert info.value.status_code == 404
    assert info.value.code == "model_not_found"


def test_error_malformed_request(client, upstream):
    before = len(upstream.requests)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="chat", messages=[])
    error = info.value
    assert error.status_code == 400
    assert error.code == "invalid_request_error"
    assert error.type == "invalid_request_error"
    assert error.param == "messages"
    assert len(upstream.requests) == before, "a malformed request must not reach the upstream"


def test_error_model_not_allowed(limited_client, upstream, marker):
    with pytest.raises(openai.PermissionDeniedError) as info:
        limited_client.chat.completions.create(model="tools", messages=user(marker))
    error = info.value
    assert error.status_code == 403
    assert error.code == "model_not_allowed"
    assert error.type == "permission_error"
    assert not upstream.find(marker)


def test_limited_key_allowed_model_works(limited_client):
    completion = limited_client.chat.completions.create(model="chat", messages=user("hi"))
    assert completion.choices[0].message.content == CHAT_TEXT


def test_error_upstream_400(client, upstream, marker):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="bad", messages=user(marker))
    error = info.value
    assert error.status_code == 400
    assert UPSTREAM_400_MESSAGE in error.message
    assert error.type == "invalid_request_error"
    assert error.request_id
    # A client fault is not retried.
    assert len(upstream.find(marker)) == 1


def test_error_upstream_400_streaming(client, upstream, marker):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="bad", messages=user(marker), stream=True)
    assert info.value.status_code == 400
    assert UPSTREAM_400_MESSAGE in info.value.message


def test_error_upstream_500(client, upstream, marker):
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="broken", messages=user(marker))
    error = info.value
    assert isinstance(error, openai.InternalServerError)
    assert error.status_code == 502
    assert error.code == "upstream_error"
    assert error.type == "api_error"
    body_text = error.response.text
    assert UPSTREAM_KEY not in error.message
    assert UPSTREAM_KEY not in body_text
    assert upstream.base_url not in body_text, "the upstream URL must not be shown to clients"
    assert error.response.headers.get("x-llmux-attempts"), "failed upstream attempts are counted"
    assert upstream.find(marker), "the upstream was tried"


# --------------------------------------------------------------------------------------
# Headers
# --------------------------------------------------------------------------------------


def test_response_headers_served(client, marker):
    raw = client.chat.completions.with_raw_response.create(model="chat", messages=user(marker))
    assert raw.http_response.status_code == 200
    assert raw.headers.get("x-request-id")
    assert raw.headers.get("x-llmux-provider") == "fake"
    assert raw.headers.get("x-llmux-attempts") == "1"
    assert raw.parse().choices[0].message.content == CHAT_TEXT

    raw_embed = client.embeddings.with_raw_response.create(model="embed", input="x")
    assert raw_embed.headers.get("x-request-id")
    assert raw_embed.headers.get("x-llmux-provider") == "fake"
    assert raw_embed.headers.get("x-llmux-attempts") == "1"

    raw_models = client.models.with_raw_response.list()
    assert raw_models.headers.get("x-request-id")


def test_request_ids_are_unique(client):
    ids = {client.chat.completions.with_raw_response.create(model="mockchat", messages=user("x")).headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3


def test_client_request_id_is_echoed(client):
    raw = client.chat.completions.with_raw_response.create(
        model="mockchat", messages=user("x"), extra_headers={"x-request-id": "sdk-test-req-123"}
    )
    assert raw.headers.get("x-request-id") == "sdk-test-req-123"


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda c: c.chat.completions.create(model="no-such-model", messages=user("hi")), id="404"),
        pytest.param(lambda c: c.chat.completions.create(model="chat", messages=[]), id="400"),
        pytest.param(lambda c: c.chat.completions.create(model="bad", messages=user("hi")), id="upstream-400"),
        pytest.param(lambda c: c.chat.completions.create(model="broken", messages=user("hi")), id="upstream-500"),
    ],
)
def test_error_responses_have_request_id(client, call):
    with pytest.raises(openai.APIStatusError) as info:
        call(client)
    assert info.value.response.headers.get("x-request-id")
    assert info.value.request_id == info.value.response.headers.get("x-request-id")


# --------------------------------------------------------------------------------------
# Usage ledger
# --------------------------------------------------------------------------------------


def test_rate_limit_error(gateway):
    limited = create_key(gateway, {"name": "py-rpm", "rpm_limit": 1})
    with make_client(gateway, limited.key) as sdk:
        # A window is a calendar minute: should the pair straddle two, it is tried again.
        for _ in range(2):
            sdk.chat.completions.create(model="chat", messages=user("one"))
            try:
                sdk.chat.completions.create(model="chat", messages=user("two"))
            except openai.RateLimitError as error:
                refused = error
                break
        else:
            pytest.fail("the second request of a minute was admitted twice")
    assert refused.status_code == 429
    assert refused.code == "rate_limit_exceeded"
    assert refused.type == "rate_limit_error"
    headers = refused.response.headers
    seconds, millis = int(headers["retry-after"]), int(headers["retry-after-ms"])
    assert 1 <= seconds <= 60
    assert -(-millis // 1000) == seconds
    assert headers["x-ratelimit-limit-requests"] == "1"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert "x-should-retry" not in headers, "a rate limit may be retried once the window ends"


def test_spent_budget_is_not_retried_by_the_sdk(gateway, upstream, marker):
    poor = create_key(gateway, {"name": "py-budget", "budget": {"amount": 0.000001, "period": "monthly"}})
    # The SDK's default: two retries of every 429 unless told `x-should-retry: false`.
    sdk = openai.OpenAI(
        base_url=f"{gateway.url}/v1", api_key=poor.key, timeout=30, http_client=openai.DefaultHttpxClient(trust_env=False)
    )
    with sdk, pytest.raises(openai.RateLimitError) as info:
        sdk.chat.completions.create(model="priced", messages=user(marker))
    error = info.value
    assert (error.status_code, error.code, error.type) == (429, "budget_exceeded", "insufficient_quota")
    assert "budget" in error.message
    assert error.response.headers["x-should-retry"] == "false"
    assert upstream.find(marker) == [], "the upstream is not called"
    # Had the SDK retried, three records would appear within the 2 s records take.
    records = usage_of(gateway, poor.id, 3)
    assert [(record["status"], record["error_code"]) for record in records] == [(429, "budget_exceeded")]


def test_usage_ledger(gateway, ledger_key):
    with make_client(gateway, ledger_key.key) as ledger_client:
        request_ids = set()
        raw = ledger_client.chat.completions.with_raw_response.create(model="chat", messages=user("one"))
        raw.parse()
        request_ids.add(raw.headers["x-request-id"])
        raw = ledger_client.chat.completions.with_raw_response.create(model="chat", messages=user("two"))
        raw.parse()
        request_ids.add(raw.headers["x-request-id"])
        # A streamed request without stream_options: the gateway still meters it from the
        # usage chunk it asked the upstream for.
        raw = ledger_client.chat.completions.with_raw_response.create(model="chat", messages=user("three"), stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices) == CHAT_TEXT
        request_ids.add(raw.headers["x-request-id"])
    assert len(request_ids) == 3

    with gateway.admin() as admin:

        def records():
            response = admin.get("/admin/usage", params={"key_id": ledger_key.id})
            assert response.status_code == 200, response.text
            found = response.json()["records"]
            return found if len(found) >= 3 else None

        found = wait_until(records, timeout=2.0, interval=0.05, what="3 usage records for the ledger key")

        # The admin API refuses anything but the master key.
        denied = admin.get("/admin/usage", headers={"Authorization": f"Bearer {ledger_key.key}"})
        assert denied.status_code == 401

    assert len(found) == 3, found
    assert {record["request_id"] for record in found} == request_ids
    for record in found:
        assert record["key_id"] == ledger_key.id
        assert record["model"] == "chat"
        assert record["provider"] == "fake"
        assert record["upstream_model"] == "fake-chat"
        assert record["status"] == 200
        assert record["input_tokens"] == CHAT_USAGE["prompt_tokens"]
        assert record["output_tokens"] == CHAT_USAGE["completion_tokens"]
        assert record["error_code"] is None
        assert record["attempts"] == 1


# --------------------------------------------------------------------------------------
# Async client and the legacy completions endpoint
# --------------------------------------------------------------------------------------


def test_async_client_streaming(gateway, sdk_key, upstream, marker):
    import asyncio

    async def run() -> tuple[str, object]:
        async with openai.AsyncOpenAI(
            base_url=f"{gateway.url}/v1",
            api_key=sdk_key.key,
            max_retries=0,
            timeout=30,
            http_client=openai.DefaultAsyncHttpxClient(trust_env=False),
        ) as async_client:
            stream = await async_client.chat.completions.create(
                model="chat", messages=user(marker), stream=True, stream_options={"include_usage": True}
            )
            text = ""
            usage = None
            async for chunk in stream:
                if chunk.choices:
                    text += chunk.choices[0].delta.content or ""
                if chunk.usage is not None:
                    usage = chunk.usage
            return text, usage

    text, usage = asyncio.run(run())
    assert text == CHAT_TEXT
    assert usage is not None and usage.total_tokens == CHAT_USAGE["total_tokens"]
    assert upstream.one(marker).body["model"] == "fake-chat"


def test_legacy_completions_mock(client, marker):
    completion = client.completions.create(model="mockchat", prompt=marker)
    assert completion.choices[0].text == marker
    assert completion.usage is not None and completion.usage.completion_tokens >= 1

    chunks = list(client.completions.create(model="mockchat", prompt=marker, stream=True))
    assert "".join(choice.text for chunk in chunks for choice in chunk.choices) == marker
