"""Fixtures for the SDK conformance suites.

The suite drives the real `llmux` binary (env `LLMUX_BIN`, default
`target/debug/llmux`) with the official `openai` and `anthropic` Python SDKs.
Upstream traffic goes to one fake server written here with the standard library
that speaks OpenAI Chat Completions, Anthropic Messages and the Gemini API
(`/v1beta/models/{model}:generateContent`), validates bodies the way those APIs
would, and records every request it receives so tests can assert on what the
gateway actually sent.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import struct
import subprocess
import threading
import time
import uuid
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Optional

import anthropic
import httpx2
import openai
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
MASTER_KEY = "sk-master-sdk-tests"
UPSTREAM_KEY = "sk-upstream-secret"

CHAT_TEXT = "Hello from fake upstream"
CHAT_PIECES = ["Hello", " from", " fake", " upstream"]
CHAT_USAGE = {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}
TOOL_NAME = "get_weather"
TOOL_ARGUMENTS = '{"city": "Paris"}'
TOOL_ARGUMENT_PIECES = ['{"', "city", '": "', "Paris", '"}']
TOOL_CALL_ID = "call_fake_0001"
UPSTREAM_400_MESSAGE = "bad thing"
EMBEDDING_DIM = 4

STARTUP_TIMEOUT_S = 20.0
# Local traffic must never go through a proxy configured in the environment.
NO_PROXY = "127.0.0.1,localhost,::1"


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.02, what: str = "condition") -> Any:
    """Polls `predicate` until it returns a truthy value or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------------------
# The fake upstream
# --------------------------------------------------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes = field(repr=False)


class FakeUpstream:
    """One server for three dialects (OpenAI, Anthropic, Gemini) whose behaviour is chosen by
    the request's model: the body's `model`, or for Gemini the model in the URL."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[Recorded] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            # HTTP/1.0: one request per connection; the end of a stream is the close.
            protocol_version = "HTTP/1.0"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_GET(self) -> None:  # noqa: N802
                upstream._record(self, b"")
                self._json(404, {"error": {"message": "not found", "type": "invalid_request_error", "param": None, "code": None}})

            def do_POST(self) -> None:  # noqa: N802
                raw = self._read_body()
                body = upstream._record(self, raw)
                if not isinstance(body, dict):
                    self._json(400, {"error": {"message": "body is not a JSON object", "type": "invalid_request_error", "param": None, "code": None}})
                    return
                path = self.path.split("?", 1)[0]
                if path == "/v1/chat/completions":
                    upstream._chat(self, body)
                elif path == "/v1/messages":
                    upstream._messages(self, body)
                elif path == "/v1/embeddings":
                    upstream._embeddings(self, body)
                elif GEMINI_PATH.fullmatch(path):
                    upstream._gemini(self, body)
                else:
                    self._json(404, {"error": {"message": f"no route {path}", "type": "invalid_request_error", "param": None, "code": None}})

            def _read_body(self) -> bytes:
                if self.headers.get("transfer-encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";", 1)[0].strip(), 16)
                        if size == 0:
                            # Trailers, then the final CRLF.
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("content-length") or 0)
                return self.rfile.read(length) if length else b""

            def _json(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _named_sse(self, events: list[dict]) -> None:
                """Anthropic-style SSE: `event:` lines, data repeating the type, no [DONE]."""
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                for event in events:
                    self.wfile.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
                    self.wfile.flush()

            def _sse(self, events: list[Any]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                for event in events:
                    self.wfile.write(b"data: " + json.dumps(event).encode() + b"\n\n")
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

            def _gemini_sse(self, chunks: list[dict]) -> None:
                """Google-style SSE: CRLF framing, `data:` lines only, no terminator (the end is the close)."""
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                for chunk in chunks:
                    self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\r\n\r\n")
                    self.wfile.flush()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, name="fake-upstream", daemon=True)

    # -- lifecycle --

    def start(self) -> "FakeUpstream":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    # -- recording --

    def _record(self, handler: BaseHTTPRequestHandler, raw: bytes) -> Any:
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {name.lower(): value for name, value in handler.headers.items()}
        with self._lock:
            self._requests.append(Recorded(handler.command, handler.path, headers, body, raw))
        return body

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    def find(self, marker: str) -> list[Recorded]:
        """Requests whose raw body contains `marker` (tests put a unique marker in each request)."""
        needle = marker.encode()
        return [request for request in self.requests if needle in request.raw]

    def one(self, marker: str) -> Recorded:
        found = self.find(marker)
        assert len(found) == 1, f"expected exactly one upstream request containing {marker!r}, got {len(found)}"
        return found[0]

    # -- behaviour --

    def _chat(self, handler: Any, body: dict) -> None:
        model = body.get("model")
        stream = bool(body.get("stream"))
        options = body.get("stream_options") or {}
        include_usage = stream and bool(options.get("include_usage"))
        created = int(time.time())
        completion_id = "chatcmpl-fake" + uuid.uuid4().hex[:12]

        if model == "fake-400":
            handler._json(400, {"error": {"message": UPSTREAM_400_MESSAGE, "type": "invalid_request_error", "param": None, "code": None}})
            return
        if model == "fake-500":
            handler._json(500, {"error": {"message": "The server had an error while processing your request.", "type": "server_error", "param": None, "code": None}})
            return
        if model not in ("fake-chat", "fake-tools"):
            handler._json(404, {"error": {"message": f"The model `{model}` does not exist", "type": "invalid_request_error", "param": "model", "code": "model_not_found"}})
            return

        tools = model == "fake-tools"
        if not stream:
            if tools:
                message = {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": TOOL_CALL_ID, "type": "function", "function": {"name": TOOL_NAME, "arguments": TOOL_ARGUMENTS}}
                    ],
                    "refusal": None,
                }
                finish = "tool_calls"
            else:
                message = {"role": "assistant", "content": CHAT_TEXT, "refusal": None}
                finish = "stop"
            handler._json(
                200,
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "system_fingerprint": "fp_fake",
                    "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                    "usage": dict(CHAT_USAGE),
                },
            )
            return

        def chunk(delta: dict, finish: Optional[str] = None) -> dict:
            event = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }
            if include_usage:
                # OpenAI sends `usage: null` on every chunk when usage was asked for.
                event["usage"] = None
            return event

        events: list[dict] = []
        if tools:
            events.append(
                chunk(
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {"index": 0, "id": TOOL_CALL_ID, "type": "function", "function": {"name": TOOL_NAME, "arguments": ""}}
                        ],
                        "refusal": None,
                    }
                )
            )
            for piece in TOOL_ARGUMENT_PIECES:
                events.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
            events.append(chunk({}, "tool_calls"))
        else:
            events.append(chunk({"role": "assistant", "content": "", "refusal": None}))
            for piece in CHAT_PIECES:
                events.append(chunk({"content": piece}))
            events.append(chunk({}, "stop"))
        if include_usage:
            events.append(
                {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "system_fingerprint": "fp_fake",
                    "choices": [],
                    "usage": dict(CHAT_USAGE),
                }
            )
        handler._sse(events)

    def _messages(self, handler: Any, body: dict) -> None:
        """An Anthropic Messages server: checks the body as Anthropic would, then answers."""
        problems = anthropic_body_problems(body, handler.headers)
        if problems:
            handler._json(400, {"type": "error", "error": {"type": "invalid_request_error", "message": "; ".join(problems)}})
            return
        model = body["model"]
        tools = model == "claude-tools"
        message_id = "msg_fake" + uuid.uuid4().hex[:12]
        usage = dict(ANTHROPIC_USAGE)
        if tools:
            content = [
                {"type": "thinking", "thinking": THINKING_TEXT, "signature": THINKING_SIGNATURE},
                {"type": "tool_use", "id": CLAUDE_TOOL_IDS[0], "name": TOOL_NAME, "input": {"city": "Paris"}},
                {"type": "tool_use", "id": CLAUDE_TOOL_IDS[1], "name": TOOL_NAME, "input": {"city": "Tokyo"}},
            ]
            stop = "tool_use"
        else:
            content = [{"type": "text", "text": CHAT_TEXT}]
            stop = "end_turn"
        if not body.get("stream"):
            handler._json(
                200,
                {"id": message_id, "type": "message", "role": "assistant", "model": model, "content": content,
                 "stop_reason": stop, "stop_sequence": None, "usage": usage},
            )
            return
        events: list[dict] = [
            {"type": "message_start", "message": {"id": message_id, "type": "message", "role": "assistant", "model": model,
             "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {**usage, "output_tokens": 1}}},
            {"type": "ping"},
        ]
        for index, block in enumerate(content):
            if block["type"] == "text":
                events.append({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})
                for piece in CHAT_PIECES:
                    events.append({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}})
            elif block["type"] == "thinking":
                events.append({"type": "content_block_start", "index": index, "content_block": {"type": "thinking", "thinking": "", "signature": ""}})
                events.append({"type": "content_block_delta", "index": index, "delta": {"type": "thinking_delta", "thinking": THINKING_TEXT}})
                events.append({"type": "content_block_delta", "index": index, "delta": {"type": "signature_delta", "signature": THINKING_SIGNATURE}})
            else:
                events.append({"type": "content_block_start", "index": index,
                               "content_block": {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}})
                arguments = json.dumps(block["input"])
                for start in range(0, len(arguments), 5):
                    events.append({"type": "content_block_delta", "index": index,
                                   "delta": {"type": "input_json_delta", "partial_json": arguments[start:start + 5]}})
            events.append({"type": "content_block_stop", "index": index})
        events.append({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                       "usage": {"output_tokens": usage["output_tokens"]}})
        events.append({"type": "message_stop"})
        handler._named_sse(events)

    def _embeddings(self, handler: Any, body: dict) -> None:
        inputs = body.get("input")
        if isinstance(inputs, (str, int)) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int)):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs:
            handler._json(400, {"error": {"message": "input must be a non-empty string or array", "type": "invalid_request_error", "param": "input", "code": None}})
            return
        base64_format = body.get("encoding_format") == "base64"
        data = []
        for index, _ in enumerate(inputs):
            vector = embedding_vector(index)
            encoded: Any = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() if base64_format else vector
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = 3 * len(inputs)
        handler._json(
            200,
            {"object": "list", "data": data, "model": body.get("model"), "usage": {"prompt_tokens": tokens, "total_tokens": tokens}},
        )

    def _gemini(self, handler: Any, body: dict) -> None:
        """A Gemini API server (`generateContent` / `streamGenerateContent?alt=sse`): checks
        the body as Google would, then answers as the model in the URL behaves
        (`GEMINI_MODELS`). A request whose last content holds function responses is always
        answered with text quoting the tool output."""
        path = urllib.parse.urlsplit(handler.path).path
        model, method = GEMINI_PATH.fullmatch(path).groups()
        problems = gemini_body_problems(body, handler.headers, handler.path)
        if problems:
            handler._json(400, google_error(400, "; ".join(problems), "INVALID_ARGUMENT"))
            return
        behaviour = GEMINI_MODELS.get(model)
        if behaviour is None:
            handler._json(404, google_error(404, f"models/{model} is not found for API version v1beta, or is not supported for {method}.", "NOT_FOUND"))
            return
        if behaviour == "busy":
            handler._json(429, GEMINI_429_BODY)
            return
        declared = {
            declaration.get("name")
            for tool in body.get("tools") or []
            for declaration in tool.get("functionDeclarations") or []
        }
        outputs = [part["functionResponse"]["response"] for part in body["contents"][-1]["parts"] if "functionResponse" in part]
        if outputs:
            answer = GEMINI_TOOL_ANSWER + "; ".join(gemini_tool_output(output) for output in outputs)
            middle = len(answer) // 2
            steps = [[{"text": answer[:middle]}], [{"text": answer[middle:]}]]
        elif behaviour in ("tools", "parallel") and TOOL_NAME in declared:
            # Gemini 3 signs the first functionCall part of a step, and only that one.
            steps = [[{"functionCall": {"name": TOOL_NAME, "args": {"city": "Paris"}}, "thoughtSignature": GEMINI_SIGNATURE}]]
            if behaviour == "parallel":
                steps.append([{"functionCall": {"name": TOOL_NAME, "args": {"city": "Tokyo"}}}])
            # A final chunk with no parts carries the finish reason.
            steps.append([])
        else:
            steps = [[{"text": piece}] for piece in GEMINI_PIECES]
            if behaviour == "thinking":
                steps.insert(0, [{"text": GEMINI_THOUGHT, "thought": True}])
            # Gemini 3 ends a text answer with an empty text part that carries a signature.
            steps.append([{"text": "", "thoughtSignature": GEMINI_TEXT_SIGNATURE}])
        response_id = "gemini-fake-" + uuid.uuid4().hex[:12]

        def response(parts: list[dict], usage: dict, finished: bool) -> dict:
            candidate: dict = {"content": {"role": "model", "parts": parts} if parts else {"role": "model"}, "index": 0}
            if finished:
                candidate["finishReason"] = "STOP"
            return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model, "responseId": response_id}

        if method == "generateContent":
            parts = [dict(part) for step in steps for part in step]
            merged: list[dict] = []
            for part in parts:
                # Whole answers hold one text part per run of text (the signature on its last one).
                if merged and set(part) <= {"text", "thoughtSignature"} and set(merged[-1]) <= {"text", "thoughtSignature"} \
                        and "thoughtSignature" not in merged[-1]:
                    merged[-1] = {**merged[-1], **part, "text": merged[-1]["text"] + part["text"]}
                else:
                    merged.append(part)
            handler._json(200, response(merged, gemini_usage(1, 1), True))
            return
        handler._gemini_sse(
            [response(step, gemini_usage(number, len(steps)), number == len(steps)) for number, step in enumerate(steps, 1)]
        )


ANTHROPIC_USAGE = {"input_tokens": 20, "cache_read_input_tokens": 8, "cache_creation_input_tokens": 2, "output_tokens": 9}
THINKING_TEXT = "The user wants weather for two cities."
THINKING_SIGNATURE = "sig-fake-0001"
CLAUDE_TOOL_IDS = ["toolu_fake_01", "toolu_fake_02"]


def assemble_tool_calls(chunks: Any) -> tuple[dict[int, dict], list[str]]:
    """Streamed OpenAI chunks -> (tool calls by index as {id, name, arguments}, finish reasons)."""
    calls: dict[int, dict] = {}
    finishes: list[str] = []
    for chunk in chunks:
        for choice in chunk.choices:
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
            for call in choice.delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"id": None, "name": None, "arguments": ""})
                entry["id"] = call.id or entry["id"]
                entry["name"] = (call.function.name if call.function else None) or entry["name"]
                entry["arguments"] += (call.function.arguments or "") if call.function else ""
    return calls, finishes


def anthropic_body_problems(body: dict, headers: Any) -> list[str]:
    """What the real Messages API would reject in `body` (the subset the tests rely on)."""
    problems = []
    if headers.get("x-api-key") != UPSTREAM_KEY:
        problems.append("x-api-key is not the provider key")
    if headers.get("anthropic-version") != "2023-06-01":
        problems.append("anthropic-version header missing")
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        problems.append("max_tokens: Field required")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        problems.append("messages: at least one message is required")
        return problems
    if messages[0].get("role") != "user":
        problems.append("messages: the first message must use the user role")
    for index, message in enumerate(messages):
        if message.get("role") not in ("user", "assistant"):
            problems.append(f"messages.{index}.role: must be user or assistant (system goes top-level)")
        if index and message.get("role") == messages[index - 1].get("role"):
            problems.append(f"messages.{index}: roles must alternate")
        content = message.get("content")
        blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
        for block in blocks:
            if block.get("type") == "text" and not block.get("text"):
                problems.append(f"messages.{index}: text content blocks must be non-empty")
            if block.get("type") == "thinking" and block.get("signature") != THINKING_SIGNATURE:
                # Anthropic checks every signature it is sent back; it minted only this one.
                problems.append(f"messages.{index}: Invalid `signature` in `thinking` block")
    for tool in body.get("tools") or []:
        if set(tool) - {"name", "description", "input_schema", "cache_control"} or "input_schema" not in tool:
            problems.append(f"tools: {tool} is not an Anthropic tool")
    for field_name in ("stream_options", "n", "response_format", "seed"):
        if field_name in body:
            problems.append(f"{field_name}: Extra inputs are not permitted")
    return problems


# --------------------------------------------------------------------------------------
# The fake Gemini API
# --------------------------------------------------------------------------------------

GEMINI_PATH = re.compile(r"/v1beta/models/([^/:]+):(generateContent|streamGenerateContent)")
# The upstream model in the URL -> how the fake answers.
GEMINI_MODELS = {
    "gemini-3-pro-preview": "text",
    "gemini-fake-thinking": "thinking",
    "gemini-fake-tools": "tools",
    "gemini-fake-parallel": "parallel",
    "gemini-fake-busy": "busy",
}
# The signature the fake puts on the first functionCall part it returns; Gemini 3 wants it
# back on that part (400 otherwise).
GEMINI_SIGNATURE = "Z2VtaW5pLXNpZy0wMDE="
# The signature on the (empty) last text part of a text answer: optional to send back.
GEMINI_TEXT_SIGNATURE = "Z2VtaW5pLXRleHQtc2lnLTAwMg=="
GEMINI_TEXT = "Bonjour from fake Gemini"
GEMINI_PIECES = ["Bonjour", " from", " fake", " Gemini"]
GEMINI_THOUGHT = "The user wants a short greeting."
GEMINI_TOOL_ANSWER = "Gemini read the tool output: "
# Final counters of every answer. Gemini 3 always thinks (thoughts are billed as output
# even when no thought text is returned); candidatesTokenCount excludes thoughts.
GEMINI_PROMPT_TOKENS = 21
GEMINI_CANDIDATES_TOKENS = 6
GEMINI_THOUGHTS_TOKENS = 4
GEMINI_RETRY_DELAY_S = 17
GEMINI_429_MESSAGE = "You exceeded your current quota, please check your plan and billing details."
GEMINI_429_BODY = {
    "error": {
        "code": 429,
        "message": GEMINI_429_MESSAGE,
        "status": "RESOURCE_EXHAUSTED",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                                "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}],
            },
            {"@type": "type.googleapis.com/google.rpc.Help",
             "links": [{"description": "Learn more about Gemini API quotas", "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{GEMINI_RETRY_DELAY_S}s"},
        ],
    }
}

GEMINI_TOP_LEVEL = {"contents", "systemInstruction", "tools", "toolConfig", "generationConfig", "safetySettings", "cachedContent", "labels"}
GEMINI_PART_DATA = {"text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode", "codeExecutionResult"}
GEMINI_PART_META = {"thought", "thoughtSignature", "videoMetadata", "partMetadata", "mediaResolution"}
GEMINI_DECLARATION_KEYS = {"name", "description", "parameters", "parametersJsonSchema", "response", "responseJsonSchema", "behavior"}
GEMINI_GENERATION_KEYS = {
    "stopSequences", "responseMimeType", "responseSchema", "responseJsonSchema", "responseModalities", "candidateCount",
    "maxOutputTokens", "temperature", "topP", "topK", "seed", "presencePenalty", "frequencyPenalty", "responseLogprobs",
    "logprobs", "enableEnhancedCivicAnswers", "speechConfig", "thinkingConfig", "imageConfig", "mediaResolution",
}
GEMINI_FUNCTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,63}")


def google_error(code: int, message: str, status: str) -> dict:
    return {"error": {"code": code, "message": message, "status": status}}


def gemini_usage(step: int, steps: int) -> dict:
    """usageMetadata of chunk `step` of `steps`: running totals (thoughts come first)."""
    candidates = GEMINI_CANDIDATES_TOKENS if step == steps else max(1, GEMINI_CANDIDATES_TOKENS * step // steps)
    return {
        "promptTokenCount": GEMINI_PROMPT_TOKENS,
        "candidatesTokenCount": candidates,
        "thoughtsTokenCount": GEMINI_THOUGHTS_TOKENS,
        "totalTokenCount": GEMINI_PROMPT_TOKENS + candidates + GEMINI_THOUGHTS_TOKENS,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": GEMINI_PROMPT_TOKENS}],
    }


def gemini_tool_output(response: dict) -> str:
    output = response.get("output")
    return output if isinstance(output, str) and len(response) == 1 else json.dumps(response, sort_keys=True)


def _camel(name: str) -> str:
    """Google's JSON parser takes proto field names in lowerCamelCase or snake_case."""
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def _is_base64(value: Any) -> bool:
    """A proto `bytes` value in JSON: base64, standard or URL-safe, padding optional."""
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9+/_-]+={0,2}", value):
        return False
    try:
        base64.urlsafe_b64decode(value.rstrip("=").replace("+", "-").replace("/", "_") + "=" * (-len(value.rstrip("=")) % 4))
    except ValueError:
        return False
    return True


def gemini_body_problems(body: dict, headers: Any, path: str) -> list[str]:
    """What the real Gemini API would reject in a `generateContent` request (the subset the tests rely on)."""
    problems = []
    if headers.get("x-goog-api-key") != UPSTREAM_KEY:
        problems.append("API key not valid. Please pass a valid API key. (x-goog-api-key)")
    if headers.get("authorization") is not None:
        problems.append("an Authorization header is OAuth, not the API key: do not send one with x-goog-api-key")
    url = urllib.parse.urlsplit(path)
    if url.path.endswith(":streamGenerateContent") and urllib.parse.parse_qs(url.query).get("alt") != ["sse"]:
        problems.append("streamGenerateContent without alt=sse answers a JSON array, not SSE: alt=sse is required")

    for name in body:
        if _camel(name) not in GEMINI_TOP_LEVEL:
            problems.append(f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.')

    system = body.get("systemInstruction")
    if system is not None:
        if not isinstance(system, dict) or system.get("role") not in (None, "system", "user"):
            problems.append(f"systemInstruction: role must be absent, system or user: {system}")
        elif not system.get("parts") or any(not isinstance(part.get("text"), str) or not part["text"] for part in system["parts"]):
            problems.append("systemInstruction: parts must be non-empty text parts")

    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        problems.append("* GenerateContentRequest.contents: contents is not specified")
        return problems
    if contents[0].get("role") != "user":
        problems.append("contents[0]: Please ensure that multiturn requests start with a user turn.")
    previous_calls: list[dict] = []
    for index, content in enumerate(contents):
        role = content.get("role")
        where = f"contents[{index}]"
        if role not in ("user", "model"):
            problems.append(f"{where}.role: Please use a valid role: user, model (got {role!r}).")
        if index and role == contents[index - 1].get("role"):
            problems.append(f"{where}: Please ensure that multiturn requests alternate between user and model.")
        for name in content:
            if name not in ("role", "parts"):
                problems.append(f'{where}: Unknown name "{name}": Cannot find field.')
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            problems.append(f"{where}.parts: must not be empty.")
            parts = []
        calls: list[tuple[int, dict, dict]] = []
        responses: list[dict] = []
        for number, part in enumerate(parts):
            at = f"{where}.parts[{number}]"
            data = [name for name in part if _camel(name) in GEMINI_PART_DATA]
            unknown = [name for name in part if _camel(name) not in GEMINI_PART_DATA | GEMINI_PART_META]
            if unknown:
                problems.append(f'{at}: Unknown name "{unknown[0]}": Cannot find field.')
            if len(data) != 1:
                problems.append(f"{at}: a part must hold exactly one of {sorted(GEMINI_PART_DATA)} (got {data})")
            if "thoughtSignature" in part and not _is_base64(part["thoughtSignature"]):
                problems.append(f"{at}.thought_signature: Invalid value (TYPE_BYTES), {part['thoughtSignature']!r}")
            if "text" in part and (not isinstance(part["text"], str) or not part["text"]):
                problems.append(f"{at}: Unable to submit request because it has an empty text parameter. Add a value to the parameter and try again.")
            if "functionCall" in part:
                call = part["functionCall"]
                if role != "model":
                    problems.append(f"{at}: functionCall parts are only allowed in model turns")
                if not isinstance(call, dict) or set(call) - {"id", "name", "args"} or not isinstance(call.get("name"), str) \
                        or not isinstance(call.get("args", {}), dict):
                    problems.append(f"{at}.function_call: Invalid value: {call}")
                else:
                    calls.append((number, call, part))
            if "functionResponse" in part:
                response = part["functionResponse"]
                if not isinstance(response, dict) or set(response) - {"id", "name", "response", "willContinue", "scheduling", "parts"}:
                    problems.append(f"{at}.function_response: Invalid value: {response}")
                    continue
                if not isinstance(response.get("response"), dict):
                    problems.append(f"{at}.function_response.response: Invalid value (type.googleapis.com/google.protobuf.Struct), {response.get('response')!r}")
                responses.append(response)
        if calls:
            number, call, part = calls[0]
            if part.get("thoughtSignature") != GEMINI_SIGNATURE:
                problems.append(
                    f"{where}: Function call is missing a thought_signature in functionCall parts. This is required for tools "
                    f"to work correctly, and missing thought_signature may lead to degraded model performance. Additional data, "
                    f"function call `default_api:{call.get('name')}` , position {number + 1}. (thoughtSignature: {part.get('thoughtSignature')!r})"
                )
        if previous_calls or responses:
            if len(responses) != len(previous_calls):
                problems.append(
                    f"{where}: Please ensure that the number of function response parts ({len(responses)}) is equal to the number "
                    f"of function call parts of the function call turn ({len(previous_calls)})."
                )
            names = {call.get("name") for call in previous_calls}
            ids = {call.get("id") for call in previous_calls if call.get("id")}
            for response in responses:
                if response.get("name") not in names:
                    problems.append(f"{where}: functionResponse name {response.get('name')!r} matches no functionCall of the model turn before ({sorted(names)})")
                if response.get("id") and ids and response["id"] not in ids:
                    problems.append(f"{where}: functionResponse id {response['id']!r} matches no functionCall id ({sorted(ids)})")
        previous_calls = [call for _, call, _ in calls]

    for tool in body.get("tools") or []:
        for declaration in tool.get("functionDeclarations") or []:
            if set(declaration) - GEMINI_DECLARATION_KEYS:
                problems.append(f"tools: Unknown name(s) {sorted(set(declaration) - GEMINI_DECLARATION_KEYS)} in function declaration")
            if not GEMINI_FUNCTION_NAME.fullmatch(str(declaration.get("name"))):
                problems.append(f"tools: invalid function name {declaration.get('name')!r}")
            if "parameters" in declaration and "parametersJsonSchema" in declaration:
                problems.append("tools: parameters and parametersJsonSchema are mutually exclusive")
    calling = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    if calling:
        if calling.get("mode") not in ("AUTO", "ANY", "NONE", "VALIDATED", "MODE_UNSPECIFIED"):
            problems.append(f"toolConfig.functionCallingConfig.mode: Invalid value {calling.get('mode')!r}")
        if calling.get("allowedFunctionNames") and calling.get("mode") not in ("ANY", "VALIDATED"):
            problems.append("toolConfig.functionCallingConfig: allowedFunctionNames needs mode ANY")
    generation = body.get("generationConfig") or {}
    for name in generation:
        if _camel(name) not in GEMINI_GENERATION_KEYS:
            problems.append(f'generationConfig: Unknown name "{name}": Cannot find field.')
    thinking = generation.get("thinkingConfig") or {}
    if "thinkingLevel" in thinking and "thinkingBudget" in thinking:
        problems.append("thinkingConfig: You can't use both thinking_level and the legacy thinking_budget parameter in the same request.")
    return problems


def embedding_vector(index: int) -> list[float]:
    """The vector the fake returns for input number `index` (exactly representable in float32)."""
    return [float(index), 0.5, -0.25, 1.0][:EMBEDDING_DIM]


# --------------------------------------------------------------------------------------
# The gateway
# --------------------------------------------------------------------------------------


@dataclass
class Gateway:
    process: subprocess.Popen
    addr: str
    workdir: Path
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{self.addr}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def admin(self) -> httpx2.Client:
        return httpx2.Client(base_url=self.url, headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=10, trust_env=False)


def _config_toml(workdir: Path, upstream: FakeUpstream) -> str:
    db = workdir / "llmux.db"
    return f"""
[server]
listen = "127.0.0.1:0"
master_key = "${{LLMUX_MASTER_KEY}}"
shutdown_grace_ms = 2000
key_refresh_ms = 200

[storage]
url = "sqlite://{db}"
flush_interval_ms = 50

[[providers]]
name = "fake"
kind = "openai-compatible"
base_url = "{upstream.base_url}"
api_key = "{UPSTREAM_KEY}"
timeout_ms = 15000

[[providers]]
name = "claude"
kind = "anthropic"
base_url = "http://127.0.0.1:{upstream.port}"
api_key = "{UPSTREAM_KEY}"
timeout_ms = 15000

[[providers]]
name = "google"
kind = "gemini"
base_url = "http://127.0.0.1:{upstream.port}"
api_key = "{UPSTREAM_KEY}"
timeout_ms = 15000

[[providers]]
name = "mock"
kind = "mock"
mock = {{ chunk_chars = 4, chunk_delay_ms = 0 }}

[[models]]
name = "chat"
routes = [{{ provider = "fake", model = "fake-chat" }}]

[[models]]
name = "tools"
routes = [{{ provider = "fake", model = "fake-tools" }}]

[[models]]
name = "bad"
routes = [{{ provider = "fake", model = "fake-400" }}]

[[models]]
name = "broken"
routes = [{{ provider = "fake", model = "fake-500" }}]

[[models]]
name = "sonnet"
routes = [{{ provider = "claude", model = "claude-text" }}]

[[models]]
name = "sonnet-tools"
routes = [{{ provider = "claude", model = "claude-tools" }}]

[[models]]
name = "mockchat"
routes = [{{ provider = "mock", model = "echo" }}]

[[models]]
name = "embed"
routes = [{{ provider = "fake", model = "fake-embed" }}]

[[models]]
name = "gemini"
routes = [{{ provider = "google", model = "gemini-3-pro-preview" }}]

[[models]]
name = "gemini-thinking"
routes = [{{ provider = "google", model = "gemini-fake-thinking" }}]

[[models]]
name = "gemini-tools"
routes = [{{ provider = "google", model = "gemini-fake-tools" }}]

[[models]]
name = "gemini-parallel"
routes = [{{ provider = "google", model = "gemini-fake-parallel" }}]

[[models]]
name = "gemini-busy"
routes = [{{ provider = "google", model = "gemini-fake-busy" }}]

[[models]]
name = "priced"
routes = [{{ provider = "fake", model = "fake-chat", price = {{ input = 1000, output = 1000 }} }}]
"""


CONFIGURED_MODELS = [
    "chat", "tools", "bad", "broken", "sonnet", "sonnet-tools", "mockchat", "embed",
    "gemini", "gemini-thinking", "gemini-tools", "gemini-parallel", "gemini-busy", "priced",
]


def _resolve_bin() -> Path:
    value = os.environ.get("LLMUX_BIN", "target/debug/llmux")
    path = Path(value)
    if not path.is_absolute():
        path = (REPO_ROOT / path).resolve() if not path.exists() else path.resolve()
    return path


@pytest.fixture(scope="session")
def upstream() -> Any:
    fake = FakeUpstream().start()
    yield fake
    fake.stop()


def launch_gateway(workdir: Path, config_path: Path, log_name: str = "llmux.log") -> Gateway:
    """Starts `llmux serve` with `config_path` in `workdir`; returns once /health answers."""
    binary = _resolve_bin()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.exit(f"llmux binary not found or not executable: {binary} (build it with `cargo build -p llmux` or set LLMUX_BIN)", returncode=2)
    log_path = workdir / log_name

    env = {name: value for name, value in os.environ.items() if not name.startswith("LLMUX_")}
    env["LLMUX_MASTER_KEY"] = MASTER_KEY
    env["LLMUX_LOG"] = os.environ.get("LLMUX_LOG", "info")
    env["NO_PROXY"] = env["no_proxy"] = NO_PROXY

    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(binary), "serve", "--config", str(config_path), "--listen", "127.0.0.1:0"],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def find_address() -> Optional[str]:
        if process.poll() is not None:
            raise AssertionError(f"llmux exited early with code {process.returncode}:\n{log_path.read_text(errors='replace')}")
        match = re.search(r"listening on http://(\S+)\s", log_path.read_text(errors="replace"))
        return match.group(1) if match else None

    try:
        addr = wait_until(find_address, STARTUP_TIMEOUT_S, what="the `listening on` line")
        gw = Gateway(process, addr, workdir, log_path)
        with httpx2.Client(timeout=2, trust_env=False) as client:

            def healthy() -> bool:
                if process.poll() is not None:
                    raise AssertionError(f"llmux exited with code {process.returncode}:\n{gw.log()}")
                try:
                    return client.get(f"{gw.url}/health").status_code == 200
                except httpx2.TransportError:
                    return False

            wait_until(healthy, STARTUP_TIMEOUT_S, interval=0.05, what="GET /health == 200")
    except BaseException:
        process.kill()
        process.wait(timeout=10)
        raise
    return gw


def stop_gateway(gw: Gateway) -> None:
    """SIGTERM, and the exit must be clean."""
    process = gw.process
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
        raise AssertionError(f"llmux did not exit within 20s of SIGTERM:\n{gw.log()[-4000:]}")
    assert code == 0, f"llmux exited with code {code} after SIGTERM:\n{gw.log()[-4000:]}"


@pytest.fixture(scope="session")
def gateway(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Any:
    workdir = tmp_path_factory.mktemp("llmux")
    config_path = workdir / "llmux.toml"
    config_path.write_text(_config_toml(workdir, upstream))
    gw = launch_gateway(workdir, config_path)
    yield gw
    stop_gateway(gw)


@dataclass
class VirtualKey:
    id: str
    key: str
    raw: dict


def usage_of(gateway: Gateway, key_id: str, count: int) -> list[dict]:
    """The key's usage records, polled until there are `count` of them (at most 2 s:
    records appear within that)."""
    with gateway.admin() as admin:

        def records() -> Optional[list[dict]]:
            response = admin.get("/admin/usage", params={"key_id": key_id})
            assert response.status_code == 200, response.text
            found = response.json()["records"]
            return found if len(found) >= count else None

        try:
            return wait_until(records, timeout=2.0, interval=0.05, what=f"{count} usage records")
        except AssertionError:
            response = admin.get("/admin/usage", params={"key_id": key_id})
            return response.json()["records"]


def create_key(gateway: Gateway, payload: dict) -> VirtualKey:
    with gateway.admin() as admin:
        response = admin.post("/admin/keys", json=payload)
    assert response.status_code == 201, f"POST /admin/keys {payload} -> {response.status_code} {response.text}"
    body = response.json()
    assert isinstance(body.get("key"), str) and body["key"], body
    assert isinstance(body.get("id"), str) and body["id"], body
    return VirtualKey(id=body["id"], key=body["key"], raw=body)


@pytest.fixture(scope="session")
def sdk_key(gateway: Gateway) -> VirtualKey:
    return create_key(gateway, {"name": "sdk"})


@pytest.fixture(scope="session")
def limited_key(gateway: Gateway) -> VirtualKey:
    return create_key(gateway, {"name": "limited", "models": ["chat"]})


@pytest.fixture(scope="session")
def ledger_key(gateway: Gateway) -> VirtualKey:
    """A key used only by the usage-ledger test, so its records are exactly that test's."""
    return create_key(gateway, {"name": "ledger"})


class SentRequests:
    """What the SDK actually put on the wire (captured with an httpx event hook)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: list[tuple[str, str, Any]] = []

    def hook(self, request: httpx2.Request) -> None:
        content = request.content if request.method != "GET" else b""
        try:
            body = json.loads(content) if content else None
        except ValueError:
            body = None
        with self._lock:
            self.items.append((request.method, str(request.url), body))

    def last_body(self) -> Any:
        with self._lock:
            return self.items[-1][2]


def make_client(gateway: Gateway, api_key: str, sent: Optional[SentRequests] = None) -> openai.OpenAI:
    hooks = {"request": [sent.hook]} if sent is not None else {}
    return openai.OpenAI(
        base_url=f"{gateway.url}/v1",
        api_key=api_key,
        max_retries=0,
        timeout=30,
        http_client=openai.DefaultHttpxClient(event_hooks=hooks, trust_env=False),
    )


@pytest.fixture(scope="session")
def sent() -> SentRequests:
    return SentRequests()


@pytest.fixture(scope="session")
def client(gateway: Gateway, sdk_key: VirtualKey, sent: SentRequests) -> Any:
    with make_client(gateway, sdk_key.key, sent) as c:
        yield c


@pytest.fixture(scope="session")
def limited_client(gateway: Gateway, limited_key: VirtualKey) -> Any:
    with make_client(gateway, limited_key.key) as c:
        yield c


@pytest.fixture
def marker() -> str:
    """A unique string to put in a request so the upstream's record of it can be found."""
    return f"marker-{uuid.uuid4().hex}"


def make_anthropic(gateway: Gateway, api_key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=gateway.url,
        api_key=api_key,
        max_retries=0,
        timeout=30,
        http_client=httpx2.Client(trust_env=False),
    )


@pytest.fixture(scope="module")
def claude(gateway: Gateway, sdk_key: VirtualKey) -> Any:
    """The official Anthropic SDK on the SDK test key."""
    with make_anthropic(gateway, sdk_key.key) as client:
        yield client
