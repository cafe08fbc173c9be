//! Checks shared by the fuzz targets: whatever a decoder accepted, the encoders that the
//! gateway would run on it must produce valid JSON (and SSE events whose data is JSON).

#![allow(dead_code)]

use llmux_types::chat::{ChatRequest, ChatResponse, StreamEvent};
use llmux_wire::openai::upstream::{ReasoningField, RequestOptions};
use llmux_wire::responses::decode::ResponsesRequest;
use llmux_wire::responses::encode::{Echo, ResponsesStreamEncoder};
use llmux_wire::{anthropic, openai, responses, sse};

/// The upstream model spliced in by encoders: needs escaping, and is not ASCII.
pub const UPSTREAM_MODEL: &str = "up/\"m\"\\\u{e9}\u{1F600}\n";

/// Parses `bytes` as JSON or panics naming `what` and showing the bytes.
pub fn json(bytes: &[u8], what: &str) -> serde_json::Value {
    match serde_json::from_slice(bytes) {
        Ok(value) => value,
        Err(error) => panic!("{what} produced invalid JSON ({error}): {}", String::from_utf8_lossy(bytes)),
    }
}

/// `body` must be a JSON object whose `model` is `model`.
pub fn json_with_model(body: &[u8], model: &str, what: &str) -> serde_json::Value {
    let value = json(body, what);
    assert_eq!(
        value.get("model").and_then(serde_json::Value::as_str),
        Some(model),
        "{what}: `model` is not the upstream model in {}",
        String::from_utf8_lossy(body)
    );
    value
}

/// Every event of an SSE stream must carry JSON data (`[DONE]` excepted).
pub fn sse_json(stream: &[u8], what: &str) {
    let mut framer = sse::Framer::new();
    framer.push(stream);
    let check = |raw: &[u8]| {
        if let Some(data) = sse::parse_event(raw).data
            && &*data != b"[DONE]"
        {
            json(&data, what);
        }
    };
    while let Some(event) = framer.next_event() {
        check(&event);
    }
    if let Some(rest) = framer.finish() {
        check(&rest);
    }
}

/// A decoded request through every request encoder (OpenAI-dialect, Responses API and
/// Anthropic upstreams).
pub fn encode_request(request: &ChatRequest) {
    let body = openai::upstream::chat_request(request, UPSTREAM_MODEL);
    json_with_model(&body, UPSTREAM_MODEL, "openai::upstream::chat_request");
    for field in [ReasoningField::ReasoningContent, ReasoningField::Reasoning] {
        // A reasoning model's body too (`reasoning_effort` read from the extensions).
        let options = RequestOptions { reasoning_field: Some(field), reasoning_effort: true };
        let body = openai::upstream::chat_request_with(request, UPSTREAM_MODEL, &options);
        json_with_model(&body, UPSTREAM_MODEL, "openai::upstream::chat_request_with");
        let _dropped = openai::upstream::dropped_with(request, &options);
    }
    let body = responses::upstream::request_body(request, UPSTREAM_MODEL);
    json_with_model(&body, UPSTREAM_MODEL, "responses::upstream::request_body");
    let _dropped = responses::upstream::dropped(request);
    let (body, _dropped) = anthropic::upstream::messages_request(request, UPSTREAM_MODEL, 1024);
    json_with_model(&body, UPSTREAM_MODEL, "anthropic::upstream::messages_request");
}

/// A decoded response through every client-side response encoder.
pub fn encode_response(response: &ChatResponse) {
    json(&openai::encode::chat_response(response), "openai::encode::chat_response");
    json(&anthropic::encode::messages_response(response), "anthropic::encode::messages_response");
    let echo = Echo::of(&ResponsesRequest::default());
    json(&responses::encode::response("resp_f", 1, &echo, response), "responses::encode::response");
}

/// Canonical stream events through both client-side stream encoders, as the gateway's
/// translating relay does (an upstream decode error becomes an `Error` event).
pub fn encode_stream(events: &[StreamEvent<'_>]) {
    for include_usage in [false, true] {
        let mut encoder = openai::encode::ChatStreamEncoder::new(include_usage);
        let mut out = Vec::new();
        for event in events {
            encoder.encode(event, &mut out);
        }
        encoder.finish(&mut out);
        sse_json(&out, "openai::encode::ChatStreamEncoder");
    }
    let mut encoder = anthropic::MessagesStreamEncoder::new(UPSTREAM_MODEL);
    let mut out = Vec::new();
    for event in events {
        encoder.encode(event, &mut out);
    }
    encoder.finish(&mut out);
    sse_json(&out, "anthropic::MessagesStreamEncoder");
    let mut encoder = ResponsesStreamEncoder::new("resp_f", 1, Echo::of(&ResponsesRequest::default()));
    let mut out = Vec::new();
    for event in events {
        encoder.encode(event, &mut out);
    }
    encoder.finish(&mut out);
    sse_json(&out, "responses::encode::ResponsesStreamEncoder");
}

/// The `data` payloads of an SSE stream, in order.
pub fn sse_data(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut framer = sse::Framer::new();
    framer.push(stream);
    let mut payloads = Vec::new();
    while let Some(event) = framer.next_event() {
        if let Some(data) = sse::parse_event(&event).data {
            payloads.push(data.into_owned());
        }
    }
    if let Some(rest) = framer.finish()
        && let Some(data) = sse::parse_event(&rest).data
    {
        payloads.push(data.into_owned());
    }
    payloads
}

/// Runs `decode` over the payloads like the relay: events until the first error, which
/// ends the stream with an `Error` event.
pub fn decode_stream(
    payloads: &[Vec<u8>],
    mut decode: impl FnMut(&[u8]) -> Result<Vec<StreamEvent<'static>>, llmux_wire::DecodeError>,
) -> Vec<StreamEvent<'static>> {
    let mut events = Vec::new();
    for data in payloads {
        match decode(data) {
            Ok(more) => events.extend(more),
            Err(error) => {
                events.push(StreamEvent::Error { message: error.message.into() });
                break;
            }
        }
    }
    events
}

/// An upstream answer as the gateway reads it: as an SSE stream whose `data` payloads go
/// through `decoder` (then both client stream encoders, as the translating relay does),
/// and whole as a complete body through `response` (then both response encoders).
pub fn upstream_answer(
    data: &[u8],
    decoder: &mut dyn llmux_wire::UpstreamDecoder,
    response: fn(&[u8]) -> Result<ChatResponse, llmux_wire::DecodeError>,
) {
    let payloads = sse_data(data);
    let events = decode_stream(&payloads, |payload| {
        let mut events = Vec::new();
        decoder.decode_with(payload, &mut |event| events.push(event.into_owned()))?;
        Ok(events)
    });
    encode_stream(&events);
    if let Ok(response) = response(data) {
        encode_response(&response);
    }
}
