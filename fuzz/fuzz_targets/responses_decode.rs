//! Responses API bodies decoded to the canonical model, then encoded for OpenAI-dialect
//! and Anthropic upstreams, and what the answer echoes of them rendered.
//! Property: never panics; encoders produce JSON with the upstream model.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use llmux_types::chat::ChatResponse;
use llmux_wire::responses::{decode, encode};

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = decode::responses_request(data) {
        common::encode_request(&request.chat);
        let answer = ChatResponse {
            id: "c".into(),
            created: 1,
            model: common::UPSTREAM_MODEL.into(),
            choices: Vec::new(),
            usage: Default::default(),
        };
        let echo = encode::Echo::of(&request);
        common::json(&encode::response("resp_f", 1, &echo, &answer), "responses::encode::response with an echo");
    }
});
