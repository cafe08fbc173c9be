"""The official `openai` Python SDK's Responses API (`client.responses`) against llmux,
translated to an OpenAI-dialect (Chat Completions) fake upstream: plain and streamed
answers, a tool-call round trip, usage, the ledger, and stored responses (retrieve,
input items, input tokens, delete, `previous_response_id`, through a second instance
of the gateway, owned by the key that created them)."""

from __future__ import annotations

import json

import openai
import pytest

from conftest import (
    CHAT_TEXT,
    CHAT_USAGE,
    TOOL_ARGUMENTS,
    TOOL_CALL_ID,
    TOOL_NAME,
    create_key,
    launch_gateway,
    make_client,
    stop_gateway,
    wait_until,
)

RESPONSES_TOOLS = [
    {
        "type": "function",
        "name": TOOL_NAME,
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        "strict": False,
    }
]


def test_responses_create_answers_in_a_response_object(client, upstream, gateway, marker):
    raw = client.responses.with_raw_response.create(model="chat", instructions="Be brief.", input=marker)
    response = raw.parse()

    assert response.id.startswith("resp_")
    assert response.object == "response"
    assert response.status == "completed"
    assert response.output_text == CHAT_TEXT
    assert response.usage is not None
    assert response.usage.input_tokens == CHAT_USAGE["prompt_tokens"]
    assert response.usage.output_tokens == CHAT_USAGE["completion_tokens"]
    assert response.usage.total_tokens == CHAT_USAGE["total_tokens"]
    assert response.store is True, "stored by default, as the API does"

    # Translated to Chat Completions: the instructions lead as a system message.
    sent = upstream.one(marker)
    assert (sent.path, sent.body["model"]) == ("/v1/chat/completions", "fake-chat")
    assert sent.body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": marker}]
    # One ledger record, with the usage the upstream reported.
    request_id = raw.headers["x-request-id"]

    def record():
        with gateway.admin() as admin:
            records = admin.get("/admin/usage", params={"limit": 50}).json()["records"]
        return next((found for found in records if found["request_id"] == request_id), None)

    found = wait_until(record, timeout=2.0, interval=0.05, what="the usage record")
    assert (found["model"], found["status"]) == ("chat", 200)
    assert (found["input_tokens"], found["output_tokens"]) == (CHAT_USAGE["prompt_tokens"], CHAT_USAGE["completion_tokens"])


def test_responses_stream_is_the_event_sequence_the_sdk_reads(client, upstream, marker):
    with client.responses.stream(model="chat", input=[{"role": "user", "content": marker}]) as stream:
        events = list(stream)
        final = stream.get_final_response()

    types = [event.type for event in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert "".join(deltas) == CHAT_TEXT
    assert final.output_text == CHAT_TEXT
    assert final.usage is not None and final.usage.total_tokens == CHAT_USAGE["total_tokens"]
    assert upstream.one(marker).body["stream"] is True


def test_responses_tool_call_round_trip(client, upstream, marker):
    first = client.responses.create(model="tools", input=f"Weather in Paris? {marker}", tools=RESPONSES_TOOLS)
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1
    call = calls[0]
    assert (call.call_id, call.name, call.arguments) == (TOOL_CALL_ID, TOOL_NAME, TOOL_ARGUMENTS)
    assert json.loads(call.arguments) == {"city": "Paris"}
    sent = upstream.one(marker).body
    assert sent["tools"][0]["function"]["name"] == TOOL_NAME

    # The result goes back as input items, as Codex sends it.
    second_marker = f"{marker}-2"
    second = client.responses.create(
        model="chat",
        input=[
            {"role": "user", "content": f"Weather in Paris? {second_marker}"},
            {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "18C and sunny"},
        ],
        tools=RESPONSES_TOOLS,
    )
    assert second.output_text == CHAT_TEXT
    messages = upstream.one(second_marker).body["messages"]
    assert [message["role"] for message in messages] == ["user", "assistant", "tool"]
    assert messages[1]["tool_calls"][0]["id"] == TOOL_CALL_ID
    assert messages[2] == {"role": "tool", "content": "18C and sunny", "tool_call_id": TOOL_CALL_ID}


def test_stored_responses_are_retrieved_listed_counted_continued_and_deleted(client, upstream, marker):
    first = client.responses.create(model="chat", instructions="Be brief.", input=marker)
    assert first.store is True
    again = client.responses.retrieve(first.id)
    assert (again.id, again.output_text, again.usage.total_tokens) == (first.id, CHAT_TEXT, CHAT_USAGE["total_tokens"])
    items = client.responses.input_items.list(first.id)
    assert [(item.type, item.role, item.content[0].text) for item in items.data] == [("message", "user", marker)]
    assert items.data[0].id

    # The next turn sends only its new input; the provider gets the whole conversation
    # (without the earlier instructions, which a new request's own replace).
    second_marker = f"{marker}-2"
    second = client.responses.create(model="chat", input=second_marker, previous_response_id=first.id)
    assert second.previous_response_id == first.id
    assert upstream.one(second_marker).body["messages"] == [
        {"role": "user", "content": marker},
        {"role": "assistant", "content": CHAT_TEXT},
        {"role": "user", "content": second_marker},
    ]

    # Input items: every item the response was made from; newest first by default,
    # paginated by the SDK's cursor (`after`).
    listed = client.responses.input_items.list(second.id, order="asc")
    assert [(item.role, item.content[0].text) for item in listed.data] == [
        ("user", marker),
        ("assistant", CHAT_TEXT),
        ("user", second_marker),
    ]
    page = client.responses.input_items.list(second.id, limit=1)
    assert len(page.data) == 1 and page.has_more
    assert [item.id for item in client.responses.input_items.list(second.id, limit=1)] == [
        item.id for item in reversed(listed.data)
    ]

    alone = client.responses.input_tokens.count(model="chat", input="count me")
    continued = client.responses.input_tokens.count(model="chat", input="count me", previous_response_id=second.id)
    assert alone.input_tokens > 0 and continued.input_tokens > alone.input_tokens

    client.responses.delete(second.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(second.id)
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="chat", input="again", previous_response_id=second.id)
    assert caught.value.body["param"] == "previous_response_id"


def test_a_streamed_response_is_kept_before_its_last_event(client, upstream, marker):
    with client.responses.stream(model="chat", input=marker) as stream:
        final = stream.get_final_response()
    # Continued at once: the stored response is there as soon as `response.completed` is.
    second_marker = f"{marker}-next"
    client.responses.create(model="chat", input=second_marker, previous_response_id=final.id)
    roles = [message["role"] for message in upstream.one(second_marker).body["messages"]]
    assert roles == ["user", "assistant", "user"]


def test_store_false_keeps_nothing(client, marker):
    response = client.responses.create(model="chat", input=marker, store=False)
    assert response.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


def test_stored_responses_belong_to_the_key_that_created_them(client, gateway, marker):
    mine = client.responses.create(model="chat", input=marker)
    other_key = create_key(gateway, {"name": "responses-other"})
    with make_client(gateway, other_key.key) as other:
        with pytest.raises(openai.NotFoundError):
            other.responses.retrieve(mine.id)
        with pytest.raises(openai.NotFoundError):
            other.responses.input_items.list(mine.id)
        with pytest.raises(openai.NotFoundError):
            other.responses.delete(mine.id)
        with pytest.raises(openai.BadRequestError) as caught:
            other.responses.create(model="chat", input="steal", previous_response_id=mine.id)
        assert caught.value.body["param"] == "previous_response_id"
    assert client.responses.retrieve(mine.id).id == mine.id


def test_previous_response_id_works_through_another_instance(client, gateway, upstream, sdk_key, marker):
    # A second gateway process on the same store (the SQLite file; a fleet shares
    # PostgreSQL the same way).
    second = launch_gateway(gateway.workdir, gateway.workdir / "llmux.toml", log_name="llmux-second.log")
    try:
        first = client.responses.create(model="chat", input=marker)
        next_marker = f"{marker}-b"
        with make_client(second, sdk_key.key) as other_instance:
            answer = other_instance.responses.create(model="chat", input=next_marker, previous_response_id=first.id)
            assert answer.output_text == CHAT_TEXT
            assert other_instance.responses.retrieve(answer.id).previous_response_id == first.id
        assert [message["content"] for message in upstream.one(next_marker).body["messages"]] == [
            marker,
            CHAT_TEXT,
            next_marker,
        ]
        # And back on the first instance.
        assert client.responses.retrieve(answer.id).output_text == CHAT_TEXT
    finally:
        stop_gateway(second)


def test_an_unknown_previous_response_id_is_a_bad_request(client, marker):
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="chat", input=marker, previous_response_id="resp_elsewhere")
    assert caught.value.status_code == 400
    assert caught.value.body["param"] == "previous_response_id"
