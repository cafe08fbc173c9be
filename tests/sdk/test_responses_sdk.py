"""The official `openai` Python SDK's Responses API (`client.responses`) against llmux,
translated to an OpenAI-dialect (Chat Completions) fake upstream: plain and streamed
answers, a tool-call round trip, usage, the ledger, and what llmux does not do yet."""

from __future__ import annotations

import json

import openai
import pytest

from conftest import CHAT_TEXT, CHAT_USAGE, TOOL_ARGUMENTS, TOOL_CALL_ID, TOOL_NAME, wait_until

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
    assert response.store is False, "nothing is stored yet, and the answer says so"

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


def test_responses_previous_response_id_is_refused_until_responses_are_stored(client, marker):
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="chat", input=marker, previous_response_id="resp_elsewhere")
    assert caught.value.status_code == 400
    assert caught.value.body["param"] == "previous_response_id"
