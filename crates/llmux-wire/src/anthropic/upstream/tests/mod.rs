//! Tests of the Anthropic upstream side, one file per part.

use llmux_types::chat::{ChatRequest, ContentPart, Message, Role, ToolCall};
use serde_json::Value;

use crate::anthropic::upstream::messages_request;
use crate::test_support::message;

mod request;
mod response;
mod stream;

fn fixture(name: &str) -> &'static [u8] {
    match name {
        "request_expected" => include_bytes!("../../../../tests/fixtures/anthropic-upstream/request_expected.json"),
        "text" => include_bytes!("../../../../tests/fixtures/anthropic-upstream/response_text.json"),
        "tool_use" => include_bytes!("../../../../tests/fixtures/anthropic-upstream/response_tool_use.json"),
        "thinking" => include_bytes!("../../../../tests/fixtures/anthropic-upstream/response_thinking.json"),
        "cache" => include_bytes!("../../../../tests/fixtures/anthropic-upstream/response_max_tokens_cache.json"),
        "stream" => include_bytes!("../../../../tests/fixtures/anthropic-upstream/stream_thinking_tool.sse"),
        other => panic!("no fixture {other}"),
    }
}

fn image(url: &str) -> ContentPart {
    ContentPart::Image { url: url.to_owned(), detail: None }
}

fn call(id: &str, name: &str, arguments: &str) -> ToolCall {
    ToolCall { id: id.into(), name: name.into(), arguments: arguments.into() }
}

fn tool_message(id: &str, content: Vec<ContentPart>, error: bool) -> Message {
    let mut message = message(Role::Tool, content);
    message.tool_call_id = Some(id.into());
    message.tool_error = error;
    message
}

fn encode(request: &ChatRequest) -> (Value, Vec<&'static str>) {
    let (body, dropped) = messages_request(request, "claude-sonnet-4-5", 4096);
    (serde_json::from_slice(&body).unwrap(), dropped)
}
