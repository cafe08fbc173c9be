//! Tests of the Gemini upstream side: one file per part, the properties of requests and
//! answers, and signatures across dialects.

use llmux_types::chat::{ChatRequest, Role};
use serde_json::Value;

use crate::gemini::upstream::{generate_content_request, generate_content_response};
use crate::test_support::{message, text};

mod error;
mod properties;
mod request;
mod response;
mod signatures;
mod stream;

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
