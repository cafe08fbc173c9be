//! OpenAI-dialect upstream answers: the input is read as an SSE stream whose `data`
//! payloads go through `ChunkDecoder` (then both client stream encoders, as the
//! translating relay does), and whole as a `chat_response` body (then both response
//! encoders). Property: never panics; encoders produce JSON.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use llmux_wire::openai::upstream::{ChunkDecoder, chat_response};

fuzz_target!(|data: &[u8]| {
    let payloads = common::sse_data(data);
    let mut decoder = ChunkDecoder::new();
    let events = common::decode_stream(&payloads, |payload| decoder.decode(payload));
    common::encode_stream(&events);

    if let Ok(response) = chat_response(data) {
        common::encode_response(&response);
    }
});
