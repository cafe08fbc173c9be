//! OpenAI-dialect upstream answers: the input is read as an SSE stream whose `data`
//! payloads go through `ChunkDecoder` (then both client stream encoders, as the
//! translating relay does), and whole as a `chat_response` body (then both response
//! encoders). Property: never panics; encoders produce JSON.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use llmux_wire::openai::upstream::{ChunkDecoder, chat_response};

fuzz_target!(|data: &[u8]| {
    common::upstream_answer(data, &mut ChunkDecoder::new(), chat_response);
});
