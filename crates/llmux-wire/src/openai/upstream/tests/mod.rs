//! Tests of the OpenAI upstream side, one file per part.

mod request;
mod response;
mod stream;

fn fixture(name: &str) -> &'static [u8] {
    match name {
        "plain" => include_bytes!("../../../../tests/fixtures/openai/response_plain.json"),
        "tools" => include_bytes!("../../../../tests/fixtures/openai/response_tool_calls.json"),
        "deepseek" => include_bytes!("../../../../tests/fixtures/openai/response_deepseek.json"),
        "deepseek_hit" => include_bytes!("../../../../tests/fixtures/openai/response_deepseek_hit_only.json"),
        "think" => include_bytes!("../../../../tests/fixtures/openai/response_think_inline.json"),
        "stream" => include_bytes!("../../../../tests/fixtures/openai/stream_tool_call.sse"),
        other => panic!("no fixture {other}"),
    }
}
