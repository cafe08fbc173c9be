"""The official `openai` Python SDK's Responses API (`client.responses`) against llmux, to
an upstream that serves the Responses API itself (provider kind `openai`, the fake's
`/v1/responses`): a request llmux keeps no state for (`store=False`) is forwarded as it is
and the provider's events come back unchanged; with `store` left to its default, llmux
answers with its own response, translated through the canonical model."""

from __future__ import annotations

from conftest import CHAT_PIECES, CHAT_TEXT, wait_until
from fake_responses import RESPONSES_UPSTREAM_ID, RESPONSES_USAGE


def ledger_record(gateway, request_id: str) -> dict:
    def record():
        with gateway.admin() as admin:
            records = admin.get("/admin/usage", params={"limit": 50}).json()["records"]
        return next((found for found in records if found["request_id"] == request_id), None)

    return wait_until(record, timeout=2.0, interval=0.05, what="the usage record")


def test_responses_stream_from_a_responses_upstream_is_the_upstreams_own(client, upstream, gateway, marker):
    with client.responses.with_streaming_response.create(
        model="responses-native", input=marker, store=False, stream=True
    ) as raw:
        request_id = raw.headers["x-request-id"]
        assert raw.headers["x-llmux-provider"] == "oai"
        assert b"event: response.completed" in raw.read()
    with client.responses.stream(model="responses-native", input=marker, store=False) as stream:
        events = list(stream)
        final = stream.get_final_response()

    types = [event.type for event in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert [event.delta for event in events if event.type == "response.output_text.delta"] == CHAT_PIECES
    # The provider's own response (its id), not one llmux made.
    assert final.id == RESPONSES_UPSTREAM_ID
    assert final.output_text == CHAT_TEXT
    assert final.usage.input_tokens_details.cached_tokens == RESPONSES_USAGE["input_tokens_details"]["cached_tokens"]

    sent = upstream.find(marker)
    assert len(sent) == 2
    for recorded in sent:
        assert recorded.path == "/v1/responses"
        assert recorded.body["model"] == "fake-responses"
        assert recorded.body["store"] is False and recorded.body["stream"] is True
    found = ledger_record(gateway, request_id)
    assert (found["model"], found["provider"], found["status"]) == ("responses-native", "oai", 200)
    assert (found["input_tokens"], found["output_tokens"], found["cached_tokens"], found["reasoning_tokens"]) == (
        RESPONSES_USAGE["input_tokens"],
        RESPONSES_USAGE["output_tokens"],
        RESPONSES_USAGE["input_tokens_details"]["cached_tokens"],
        RESPONSES_USAGE["output_tokens_details"]["reasoning_tokens"],
    )


def test_a_stored_response_is_llmuxs_own_made_through_the_responses_upstream(client, upstream, marker):
    response = client.responses.create(model="responses-native", instructions="Be brief.", input=marker)

    assert response.id.startswith("resp_") and response.id != RESPONSES_UPSTREAM_ID
    assert response.output_text == CHAT_TEXT
    assert response.usage.total_tokens == RESPONSES_USAGE["total_tokens"]
    sent = upstream.one(marker)
    assert sent.path == "/v1/responses"
    assert sent.body["store"] is False, "llmux, not the provider, would keep it"
    assert sent.body["instructions"] == "Be brief."
    assert sent.body["input"] == [{"type": "message", "role": "user", "content": marker}]
