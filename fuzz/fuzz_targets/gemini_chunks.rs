//! Gemini upstream answers: the input is read as an `alt=sse` stream whose `data`
//! payloads go through `StreamDecoder` (then both client stream encoders, as the
//! translating relay does), and whole as a `generateContent` body (then both response
//! encoders) and as an error body.
//! Property: never panics; encoders produce JSON.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use llmux_wire::gemini::upstream::{StreamDecoder, error_message, generate_content_response, retry_delay};

fuzz_target!(|data: &[u8]| {
    common::upstream_answer(data, &mut StreamDecoder::new(), generate_content_response);
    let _ = error_message(data);
    let _ = retry_delay(data);
});
