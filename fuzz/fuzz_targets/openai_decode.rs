//! OpenAI request bodies decoded to the canonical model: Chat Completions (then encoded
//! again for OpenAI-dialect and Anthropic upstreams), Embeddings, legacy Completions.
//! Property: never panics; encoders produce JSON with the upstream model.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use llmux_wire::openai::decode;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = decode::chat_request(data) {
        common::encode_request(&request);
    }
    if let Ok(request) = decode::embeddings_request(data) {
        let _ = request;
    }
    let _ = decode::completion_prompts(data);
});
