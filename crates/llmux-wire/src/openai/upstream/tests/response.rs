use llmux_types::Usage;
use llmux_types::chat::{FinishReason, ToolCall};

use crate::openai::upstream::{chat_response, split_think};
use crate::test_support::fixture;

#[test]
fn plain_response_keeps_all_choices() {
    let response = chat_response(fixture!("openai/response_plain.json")).unwrap();
    assert_eq!(response.id, "chatcmpl-plain");
    assert_eq!(response.created, 1767225600);
    assert_eq!(response.model, "gpt-4o-mini-2024-07-18");
    assert_eq!(response.choices.len(), 2);
    assert_eq!(response.choices[0].content.as_deref(), Some("Hello! How can I help?"));
    assert_eq!(response.choices[0].finish_reason, FinishReason::Stop);
    assert_eq!(response.choices[0].reasoning, None);
    assert_eq!(response.choices[1].index, 1);
    assert_eq!(response.choices[1].content.as_deref(), Some("Hi."));
    assert_eq!(response.choices[1].finish_reason, FinishReason::Length);
    assert_eq!(response.usage, Usage { input_tokens: 12, output_tokens: 9, ..Usage::default() });
}

#[test]
fn tool_call_response() {
    let response = chat_response(fixture!("openai/response_tool_calls.json")).unwrap();
    let choice = &response.choices[0];
    assert_eq!(choice.content, None);
    assert_eq!(choice.finish_reason, FinishReason::ToolCalls);
    assert_eq!(
        choice.tool_calls,
        vec![
            ToolCall { id: "call_a".into(), name: "get_weather".into(), arguments: r#"{"city":"Paris"}"#.into() },
            ToolCall { id: "call_b".into(), name: "now".into(), arguments: String::new() },
        ]
    );
    assert_eq!(
        response.usage,
        Usage { input_tokens: 100, output_tokens: 20, cached_tokens: 64, cache_write_tokens: 16, reasoning_tokens: 0 }
    );
}

#[test]
fn deepseek_reasoning_and_cache_hits() {
    let response = chat_response(fixture!("openai/response_deepseek.json")).unwrap();
    let choice = &response.choices[0];
    assert_eq!(choice.content.as_deref(), Some("391"));
    assert_eq!(choice.reasoning.as_deref(), Some("17 * 23: 17 * 20 = 340, 17 * 3 = 51, total 391."));
    assert_eq!(
        response.usage,
        Usage { input_tokens: 200, output_tokens: 80, cached_tokens: 128, reasoning_tokens: 60, cache_write_tokens: 0 }
    );
    // Only DeepSeek's own field: still counted as cached.
    let response = chat_response(fixture!("openai/response_deepseek_hit_only.json")).unwrap();
    assert_eq!(response.usage.cached_tokens, 64);
    assert_eq!(response.usage.input_tokens, 90);
}

#[test]
fn inline_think_is_split_into_reasoning() {
    let response = chat_response(fixture!("openai/response_think_inline.json")).unwrap();
    let choice = &response.choices[0];
    assert_eq!(choice.reasoning.as_deref(), Some("The user greets me; reply briefly."));
    assert_eq!(choice.content.as_deref(), Some("Hello!"));
}

#[test]
fn split_think_rules() {
    assert_eq!(split_think("<think>a</think>b"), Some(("a".into(), "b".into())));
    assert_eq!(split_think("  \n<think> a </think>\n b "), Some(("a".into(), "b ".into())));
    assert_eq!(split_think("<think>unfinished"), Some(("unfinished".into(), String::new())));
    assert_eq!(split_think("Hi <think>x</think>"), None);
    assert_eq!(split_think("<thinking>x</thinking>"), None);
}

#[test]
fn response_variants() {
    // A reasoning field wins over an inline tag, which then stays content.
    let body =
        br#"{"id":"x","choices":[{"message":{"content":"<think>a</think>b","reasoning":"r"},"finish_reason":"stop"}]}"#;
    let response = chat_response(body).unwrap();
    assert_eq!(response.choices[0].reasoning.as_deref(), Some("r"));
    assert_eq!(response.choices[0].content.as_deref(), Some("<think>a</think>b"));
    assert_eq!(response.usage, Usage::default());

    // Content as parts, arguments as an object, unknown finish reason, `stop` with calls.
    let body = br#"{"id":"y","choices":[{"index":0,"message":{"content":[{"type":"text","text":"a"},{"type":"text","text":"b"}],"tool_calls":[{"id":"c","function":{"name":"f","arguments":{"k": [1, 2]}}}]},"finish_reason":"stop"},{"index":1,"message":{"content":"z"},"finish_reason":"insufficient_system_resource"}]}"#;
    let response = chat_response(body).unwrap();
    assert_eq!(response.choices[0].content.as_deref(), Some("ab"));
    assert_eq!(response.choices[0].tool_calls[0].arguments, r#"{"k":[1,2]}"#);
    assert_eq!(response.choices[0].finish_reason, FinishReason::ToolCalls);
    assert_eq!(response.choices[1].finish_reason, FinishReason::Other("insufficient_system_resource".into()));

    // Errors.
    let error = chat_response(br#"{"error":{"message":"model overloaded","type":"server_error"}}"#).unwrap_err();
    assert!(error.message.contains("model overloaded"), "{}", error.message);
    assert!(chat_response(b"{\"id\":").is_err());
    assert!(chat_response(br#"{"id":"x"}"#).is_err());
    // Leading blank lines (DeepSeek keep-alive while queued) are fine.
    assert!(chat_response(b"\n\n{\"choices\":[]}").is_ok());
}
