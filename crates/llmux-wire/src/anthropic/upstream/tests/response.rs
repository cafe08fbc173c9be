use llmux_types::Usage;
use llmux_types::chat::FinishReason;
use serde_json::{Value, json};

use crate::anthropic::upstream::messages_response;
use crate::test_support::{call, fixture};

#[test]
fn text_response() {
    let response = messages_response(fixture!("anthropic-upstream/response_text.json")).unwrap();
    assert_eq!(response.id, "msg_01XFDUDYJgAACzvnptvVoYEL");
    assert_eq!(response.model, "claude-sonnet-4-5-20250929");
    assert_eq!(response.created, 0);
    assert_eq!(response.choices.len(), 1);
    let choice = &response.choices[0];
    assert_eq!(choice.index, 0);
    assert_eq!(choice.content.as_deref(), Some("Hello! How can I help?"));
    assert_eq!(choice.reasoning, None);
    assert_eq!(choice.reasoning_signature, None);
    assert!(choice.redacted_reasoning.is_empty());
    assert!(choice.tool_calls.is_empty());
    assert_eq!(choice.finish_reason, FinishReason::Stop);
    assert_eq!(response.usage, Usage { input_tokens: 12, output_tokens: 9, ..Usage::default() });
}

#[test]
fn tool_use_response() {
    let response = messages_response(fixture!("anthropic-upstream/response_tool_use.json")).unwrap();
    let choice = &response.choices[0];
    assert_eq!(choice.content.as_deref(), Some("I'll check both cities."));
    assert_eq!(
        choice.tool_calls,
        vec![
            call("toolu_01A09q90qw90lq917835lq9", "get_weather", r#"{"city":"Paris","units":{"z":1,"a":2.50}}"#),
            call("toolu_01B", "now", "{}"),
        ]
    );
    assert_eq!(choice.finish_reason, FinishReason::ToolCalls);
    assert_eq!(response.usage, Usage { input_tokens: 384, output_tokens: 76, ..Usage::default() });
}

#[test]
fn thinking_response() {
    let response = messages_response(fixture!("anthropic-upstream/response_thinking.json")).unwrap();
    let choice = &response.choices[0];
    assert_eq!(choice.reasoning.as_deref(), Some("17 * 23: 17 * 20 = 340, 17 * 3 = 51, total 391."));
    assert_eq!(choice.reasoning_signature.as_deref(), Some("EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds=="));
    assert_eq!(choice.redacted_reasoning, vec!["EmwKAhgBEgy3va3pzix/LafPsn4aDFIT"]);
    assert_eq!(choice.content.as_deref(), Some("391"));
    assert_eq!(choice.finish_reason, FinishReason::Stop);
    assert_eq!(
        response.usage,
        Usage { input_tokens: 50, output_tokens: 120, reasoning_tokens: 80, ..Usage::default() }
    );
}

#[test]
fn cache_usage_and_max_tokens() {
    let response = messages_response(fixture!("anthropic-upstream/response_max_tokens_cache.json")).unwrap();
    assert_eq!(response.choices[0].finish_reason, FinishReason::Length);
    assert_eq!(response.choices[0].content.as_deref(), Some("The first chapter opens with"));
    // Anthropic's input is exclusive of the cache; the canonical one is inclusive.
    assert_eq!(
        response.usage,
        Usage {
            input_tokens: 21 + 2048 + 1024,
            output_tokens: 64,
            cached_tokens: 2048,
            reasoning_tokens: 0,
            cache_write_tokens: 1024,
        }
    );
    // And back to an Anthropic client: the same exclusive numbers.
    let encoded: Value = serde_json::from_slice(&crate::anthropic::encode::messages_response(&response)).unwrap();
    assert_eq!(
        encoded["usage"],
        json!({"input_tokens": 21, "cache_creation_input_tokens": 1024, "cache_read_input_tokens": 2048, "output_tokens": 64})
    );
    assert_eq!(encoded["stop_reason"], "max_tokens");
}

#[test]
fn response_stop_reasons_and_variants() {
    let body = |content: &str, stop: &str| {
        format!(
            r#"{{"id":"msg_x","type":"message","role":"assistant","model":"c","content":{content},"stop_reason":{stop},"usage":{{"input_tokens":1,"output_tokens":1}}}}"#
        )
    };
    let text = r#"[{"type":"text","text":"x"}]"#;
    for (stop, expected) in [
        (r#""end_turn""#, FinishReason::Stop),
        (r#""stop_sequence""#, FinishReason::Stop),
        (r#""max_tokens""#, FinishReason::Length),
        (r#""tool_use""#, FinishReason::ToolCalls),
        (r#""refusal""#, FinishReason::ContentFilter),
        (r#""pause_turn""#, FinishReason::Other("pause_turn".into())),
        (r#""model_context_window_exceeded""#, FinishReason::Other("model_context_window_exceeded".into())),
        ("null", FinishReason::Stop),
    ] {
        let response = messages_response(body(text, stop).as_bytes()).unwrap();
        assert_eq!(response.choices[0].finish_reason, expected, "{stop}");
    }

    // Server tool blocks and unknown block types are skipped; tool calls without text give
    // `content: None`; a thinking block with no text keeps only its signature.
    let content = r#"[
        {"type":"thinking","thinking":"","signature":"sig-only"},
        {"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{"query":"x"}},
        {"type":"web_search_tool_result","tool_use_id":"srvtoolu_1","content":[]},
        {"type":"hologram","data":7},
        {"type":"tool_use","id":"toolu_9","name":"f","input":null}
    ]"#;
    let response = messages_response(body(content, "null").as_bytes()).unwrap();
    let choice = &response.choices[0];
    assert_eq!(choice.content, None);
    assert_eq!(choice.reasoning, None);
    assert_eq!(choice.reasoning_signature.as_deref(), Some("sig-only"));
    assert_eq!(choice.tool_calls, vec![call("toolu_9", "f", "{}")]);
    assert_eq!(choice.finish_reason, FinishReason::ToolCalls);

    // No text and no calls: empty content, not absent.
    let response = messages_response(body("[]", r#""end_turn""#).as_bytes()).unwrap();
    assert_eq!(response.choices[0].content.as_deref(), Some(""));
    // Leading whitespace is fine; a missing usage is zero.
    let response = messages_response(b"\n {\"content\":[]}").unwrap();
    assert_eq!(response.usage, Usage::default());
}

#[test]
fn response_errors() {
    let error = messages_response(
        br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}"#,
    )
    .unwrap_err();
    assert_eq!(error.message, "upstream error: overloaded_error: Overloaded");
    assert_eq!(error.param, None);
    let error = messages_response(br#"{"error":{"message":"bad key"}}"#).unwrap_err();
    assert_eq!(error.message, "upstream error: bad key");
    for body in [
        &b"{\"id\":"[..],
        b"not json",
        b"[1]",
        br#"{"id":"msg","type":"message"}"#,
        br#"{"content":"text"}"#,
        br#"{"content":[7]}"#,
        br#"{"content":[{"text":"no type"}]}"#,
        br#"{"content":[{"type":"text"}]}"#,
        br#"{"content":[{"type":"tool_use","name":"f","input":{}}]}"#,
        br#"{"content":[{"type":"thinking","signature":"s"}]}"#,
        br#"{"content":[],"usage":{"input_tokens":"many"}}"#,
    ] {
        assert!(messages_response(body).is_err(), "{}", String::from_utf8_lossy(body));
    }
}
