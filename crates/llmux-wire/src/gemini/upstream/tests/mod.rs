//! Tests of the Gemini upstream side: one file per part, the properties of requests and
//! answers, and signatures across dialects.

use llmux_types::chat::{ChatRequest, ContentPart, Message, Role, ToolCall};
use serde_json::Value;

use crate::gemini::upstream::{generate_content_request, generate_content_response};
use crate::test_support::{message, text};

mod error;
mod properties;
mod request;
mod response;
mod signatures;
mod stream;

fn fixture(name: &str) -> &'static [u8] {
    match name {
        "request_expected" => include_bytes!("../../../../tests/fixtures/gemini-upstream/request_expected.json"),
        "text" => include_bytes!("../../../../tests/fixtures/gemini-upstream/response_text.json"),
        "function_call" => include_bytes!("../../../../tests/fixtures/gemini-upstream/response_function_call.json"),
        "thinking" => include_bytes!("../../../../tests/fixtures/gemini-upstream/response_thinking.json"),
        "blocked" => include_bytes!("../../../../tests/fixtures/gemini-upstream/response_prompt_blocked.json"),
        "max_tokens" => include_bytes!("../../../../tests/fixtures/gemini-upstream/response_max_tokens.json"),
        "stream" => include_bytes!("../../../../tests/fixtures/gemini-upstream/stream_thinking_tool.sse"),
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
    let (body, dropped) = generate_content_request(request);
    (serde_json::from_slice(&body).unwrap(), dropped)
}

fn user(texts: &[&str]) -> ChatRequest {
    ChatRequest {
        model: "m".into(),
        messages: vec![message(Role::User, texts.iter().map(|t| text(t)).collect())],
        ..ChatRequest::default()
    }
}

fn choice0(body: &[u8]) -> llmux_types::chat::Choice {
    let mut response = generate_content_response(body).unwrap();
    assert_eq!(response.choices.len(), 1);
    response.choices.remove(0)
}
