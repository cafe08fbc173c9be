//! Tests of the Anthropic upstream side, one file per part.

use llmux_types::chat::ChatRequest;
use serde_json::Value;

use crate::anthropic::upstream::messages_request;

mod request;
mod response;
mod stream;

fn encode(request: &ChatRequest) -> (Value, Vec<&'static str>) {
    let (body, dropped) = messages_request(request, "claude-sonnet-4-5", 4096);
    (serde_json::from_slice(&body).unwrap(), dropped)
}
