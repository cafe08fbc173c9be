use llmux_types::Usage;
use llmux_types::chat::{FinishReason, ToolCall};
use serde_json::json;

use crate::responses::upstream::{decode_response, usage};
use crate::test_support::fixture;

#[test]
fn a_response_object_with_reasoning_text_and_a_call() {
    let response = decode_response(fixture!("responses-upstream/response_reasoning_tool.json")).unwrap();
    assert_eq!(
        (response.id.as_str(), response.created, response.model.as_str()),
        ("resp_68a1f0", 1756000000, "gpt-5-2025-08-07")
    );
    let [choice] = response.choices.as_slice() else { panic!("one choice") };
    assert_eq!(choice.content.as_deref(), Some("Let me check."));
    assert_eq!(choice.reasoning.as_deref(), Some("**Checking weather**\n\nCall the tool."));
    assert_eq!(
        choice.tool_calls,
        [ToolCall { id: "call_A".into(), name: "get_weather".into(), arguments: r#"{"city":"Paris"}"#.into() }]
    );
    assert_eq!(choice.finish_reason, FinishReason::ToolCalls);
    assert_eq!(choice.reasoning_signature, None, "OpenAI's reasoning goes to no other provider");
    assert_eq!(
        response.usage,
        Usage { input_tokens: 120, output_tokens: 90, cached_tokens: 64, reasoning_tokens: 40, cache_write_tokens: 0 }
    );
    assert_eq!(usage(fixture!("responses-upstream/response_reasoning_tool.json")), Some(response.usage));
}

#[test]
fn statuses_refusals_and_open_weight_reasoning() {
    let body = json!({
        "id": "resp_1", "created_at": 1.5e9, "model": "gpt-oss-120b", "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"},
        "output": [
            {"type": "reasoning", "summary": [], "content": [{"type": "reasoning_text", "text": "Thinking"}]},
            {"type": "message", "content": [{"type": "output_text", "text": "Par"}, {"type": "refusal", "refusal": "tial"}]},
            {"type": "web_search_call", "id": "ws_1", "status": "completed"}
        ],
        "usage": {"input_tokens": 5, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 3}, "output_tokens": 9}
    });
    let response = decode_response(body.to_string().as_bytes()).unwrap();
    let choice = &response.choices[0];
    assert_eq!(response.created, 1_500_000_000);
    assert_eq!((choice.content.as_deref(), choice.reasoning.as_deref()), (Some("Partial"), Some("Thinking")));
    assert_eq!(choice.finish_reason, FinishReason::Length);
    assert_eq!((response.usage.cache_write_tokens, response.usage.reasoning_tokens), (3, 0));

    let filtered = json!({"status": "incomplete", "incomplete_details": {"reason": "content_filter"}, "output": []});
    let response = decode_response(filtered.to_string().as_bytes()).unwrap();
    assert_eq!(response.choices[0].finish_reason, FinishReason::ContentFilter);
    assert_eq!(response.choices[0].content.as_deref(), Some(""));
    assert_eq!(response.usage, Usage::default());
}

#[test]
fn failures_and_malformed_bodies_are_errors() {
    let failed =
        json!({"status": "failed", "error": {"code": "server_error", "message": "The model crashed."}, "output": []});
    let error = decode_response(failed.to_string().as_bytes()).unwrap_err();
    assert_eq!(error.message, "upstream error: server_error: The model crashed.");
    let error = decode_response(br#"{"error":{"message":"quota","type":"insufficient_quota"}}"#).unwrap_err();
    assert_eq!(error.message, "upstream error: quota");
    assert!(decode_response(br#"{"status":"failed","output":[]}"#).is_err());
    assert!(decode_response(br#"{"id":"resp_1","status":"completed"}"#).unwrap_err().message.contains("no `output`"));
    let error = decode_response(b"<html>").unwrap_err();
    assert!(error.message.starts_with("invalid upstream response"), "{}", error.message);
    assert!(decode_response(br#"{"output":[{"type":"message","content":"text"}]}"#).is_err());
    assert_eq!(usage(b"not json"), None);
    assert_eq!(usage(br#"{"usage":null}"#), None);
}

#[test]
fn openai_encrypted_reasoning_becomes_its_signature_with_the_item_id() {
    let body = br#"{"id":"resp_1","object":"response","created_at":1,"status":"completed","model":"o3",
        "output":[{"id":"rs_42","type":"reasoning","summary":[],"encrypted_content":"gAAAAB"},
                  {"id":"msg_1","type":"message","role":"assistant","content":[{"type":"output_text","text":"Hi"}]}],
        "usage":{"input_tokens":1,"output_tokens":1}}"#;
    let response = decode_response(body).unwrap();
    assert_eq!(response.choices[0].reasoning_signature.as_deref(), Some("openai:rs_42:gAAAAB"));
}
