//! Responses API upstream answers: the input is read as an SSE stream whose `data`
//! payloads go through `EventDecoder` (then the client stream encoders, as the
//! translating relay does) and through the same-dialect relay's `classify_event`, and
//! whole as a `decode_response` body (then the response encoders) and as a request body
//! whose `model` the same-dialect path rewrites.
//! Property: never panics; encoders produce JSON; a rewritten body is JSON with the
//! upstream model.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use llmux_wire::responses::passthrough::{classify_event, rewrite_model};
use llmux_wire::responses::upstream::{EventDecoder, decode_response};

fuzz_target!(|data: &[u8]| {
    common::upstream_answer(data, &mut EventDecoder::new(), decode_response);
    for payload in common::sse_data(data) {
        let _ = classify_event(&payload);
    }
    let _ = classify_event(data);
    if serde_json::from_slice::<serde_json::Value>(data).is_ok()
        && let Ok(body) = rewrite_model(data, common::UPSTREAM_MODEL)
    {
        common::json_with_model(&body, common::UPSTREAM_MODEL, "responses::passthrough::rewrite_model");
    }
});
