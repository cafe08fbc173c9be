"""The OpenAI Responses API side of the SDK suites' fake upstream (conftest `FakeUpstream`):
the checks OpenAI makes of a request body, and its answers (a response object, or the
event sequence with `sequence_number` on every event)."""

from __future__ import annotations

import time
import uuid
from typing import Any, Optional

RESPONSES_UPSTREAM_ID = "resp_fakeupstream0001"
RESPONSES_USAGE = {"input_tokens": 13, "input_tokens_details": {"cached_tokens": 4}, "output_tokens": 6,
                   "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 19}
# Chat Completions parameters the Responses API does not know.
CHAT_ONLY_PARAMETERS = ("messages", "max_tokens", "max_completion_tokens", "stop", "n", "seed", "response_format",
                        "frequency_penalty", "presence_penalty", "logit_bias", "logprobs", "functions", "function_call")


def body_problems(body: dict, headers: Any, upstream_key: str) -> list[str]:
    """What the real Responses API would reject in `body` (the subset the tests rely on)."""
    problems = []
    if headers.get("authorization") != f"Bearer {upstream_key}":
        problems.append("Incorrect API key provided.")
    for required in ("model", "input"):
        if required not in body:
            problems.append(f"Missing required parameter: '{required}'.")
    problems += [f"Unknown parameter: '{name}'." for name in CHAT_ONLY_PARAMETERS if name in body]
    for index, tool in enumerate(body.get("tools") or []):
        if tool.get("type") == "function" and ("function" in tool or "name" not in tool):
            problems.append(f"Missing required parameter: 'tools[{index}].name'.")
    items = body.get("input") if isinstance(body.get("input"), list) else []
    calls = set()
    for index, item in enumerate(items):
        kind = item.get("type", "message")
        if kind == "message" and item.get("role") not in ("user", "assistant", "system", "developer"):
            problems.append(f"Invalid value: '{item.get('role')}' (input[{index}].role).")
        elif kind == "function_call":
            calls.add(item.get("call_id"))
        elif kind == "function_call_output" and item.get("call_id") not in calls:
            problems.append(f"No tool call found for function call output with call_id {item.get('call_id')}.")
    return problems


def answer(handler: Any, body: dict, upstream_key: str, text: str, pieces: list[str]) -> None:
    """Answers `POST /v1/responses` on `handler` (the fake's request handler): checks the body
    as OpenAI would (`body_problems`), then answers `text` as a response object or, streamed
    in `pieces`, as the API's event sequence, every event numbered."""
    problems = body_problems(body, handler.headers, upstream_key)
    if problems:
        handler._json(400, {"error": {"message": " ".join(problems), "type": "invalid_request_error", "param": None, "code": None}})
        return
    if body["model"] != "fake-responses":
        handler._json(404, {"error": {"message": f"The model `{body['model']}` does not exist", "type": "invalid_request_error", "param": "model", "code": "model_not_found"}})
        return

    def response(status: str, output: list, usage: Optional[dict]) -> dict:
        return {"id": RESPONSES_UPSTREAM_ID, "object": "response", "created_at": int(time.time()), "status": status,
                "error": None, "incomplete_details": None, "instructions": body.get("instructions"),
                "max_output_tokens": body.get("max_output_tokens"), "model": body["model"], "output": output,
                "parallel_tool_calls": True, "previous_response_id": None, "reasoning": {"effort": None, "summary": None},
                "store": body.get("store", True), "temperature": 1.0, "text": {"format": {"type": "text"}},
                "tool_choice": "auto", "tools": [], "top_p": 1.0, "truncation": "disabled", "usage": usage, "metadata": {}}

    item_id = "msg_fake" + uuid.uuid4().hex[:12]
    part = {"type": "output_text", "annotations": [], "logprobs": [], "text": text}
    message = {"id": item_id, "type": "message", "status": "completed", "role": "assistant", "content": [part]}
    if not body.get("stream"):
        handler._json(200, response("completed", [message], dict(RESPONSES_USAGE)))
        return
    at = {"item_id": item_id, "output_index": 0, "content_index": 0}
    events: list[dict] = [
        {"type": "response.created", "response": response("in_progress", [], None)},
        {"type": "response.in_progress", "response": response("in_progress", [], None)},
        {"type": "response.output_item.added", "output_index": 0,
         "item": {**message, "status": "in_progress", "content": []}},
        {"type": "response.content_part.added", **at, "part": {**part, "text": ""}},
    ]
    events += [{"type": "response.output_text.delta", **at, "delta": piece, "logprobs": []} for piece in pieces]
    events += [
        {"type": "response.output_text.done", **at, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **at, "part": part},
        {"type": "response.output_item.done", "output_index": 0, "item": message},
        {"type": "response.completed", "response": response("completed", [message], dict(RESPONSES_USAGE))},
    ]
    for number, event in enumerate(events):
        event["sequence_number"] = number
    handler._named_sse(events)
