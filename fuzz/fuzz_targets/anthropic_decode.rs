//! Anthropic Messages (and count_tokens) bodies decoded to the canonical model, then
//! encoded for OpenAI-dialect and Anthropic upstreams.
//! Property: never panics; encoders produce JSON with the upstream model.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use llmux_wire::anthropic::decode;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = decode::messages_request(data) {
        assert!(request.max_tokens.is_some(), "messages_request accepted a body without max_tokens");
        common::encode_request(&request);
    }
    if let Ok(request) = decode::count_tokens_request(data) {
        common::encode_request(&request);
    }
});
