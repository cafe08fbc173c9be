use llmux_types::Usage;
use llmux_types::chat::FinishReason;
use serde_json::Value;

use super::choice0;
use crate::gemini::upstream::generate_content_response;
use crate::test_support::{call, fixture};

#[test]
fn text_response() {
    let response = generate_content_response(fixture!("gemini-upstream/response_text.json")).unwrap();
    assert_eq!(response.id, "u6VpaL-ZCpnUz7IPkb6Q6Ak");
    assert_eq!(response.model, "gemini-2.0-flash");
    assert_eq!(response.created, 0);
    assert_eq!(response.choices.len(), 1);
    let choice = &response.choices[0];
    // No `index` on the candidate: its position.
    assert_eq!(choice.index, 0);
    assert_eq!(choice.content.as_deref(), Some("Hello! How can I help you today?"));
    assert_eq!(choice.reasoning, None);
    assert_eq!(choice.reasoning_signature, None);
    assert!(choice.redacted_reasoning.is_empty());
    assert!(choice.tool_calls.is_empty());
    assert_eq!(choice.finish_reason, FinishReason::Stop);
    assert_eq!(response.usage, Usage { input_tokens: 5, output_tokens: 9, ..Usage::default() });
}

#[test]
fn function_call_response() {
    let response = generate_content_response(fixture!("gemini-upstream/response_function_call.json")).unwrap();
    assert_eq!(response.model, "gemini-3-pro-preview");
    let choice = &response.choices[0];
    assert_eq!(choice.content.as_deref(), Some("I'll check both cities."));
    assert_eq!(
        choice.tool_calls,
        vec![
            // Gemini's id kept; arguments compact, key order and number spelling kept.
            call("8f2b1c0d", "get_weather", r#"{"city":"Paris","units":{"z":1,"a":2.50}}"#),
            // No id from Gemini: generated from the call's position.
            call("call_kz5LaNm3H6qGz7IP2bqJ8Qs_1", "now", "{}"),
        ]
    );
    assert_eq!(choice.reasoning_signature.as_deref(), Some("gemini:CpwCAdHtim9Ssn0QeV6V7ZKpqQ7yZPMl0p1sCw=="));
    assert_eq!(choice.reasoning, None);
    // STOP with function calls.
    assert_eq!(choice.finish_reason, FinishReason::ToolCalls);
    // Thinking is output even though candidatesTokenCount leaves it out.
    assert_eq!(
        response.usage,
        Usage { input_tokens: 384, output_tokens: 41 + 105, reasoning_tokens: 105, ..Usage::default() }
    );
}

#[test]
fn thinking_response() {
    let response = generate_content_response(fixture!("gemini-upstream/response_thinking.json")).unwrap();
    let choice = &response.choices[0];
    assert_eq!(
        choice.reasoning.as_deref(),
        Some("**Multiplying the numbers**\n\n17 * 20 = 340 and 17 * 3 = 51, so the total is 391.")
    );
    assert_eq!(choice.content.as_deref(), Some("391"));
    assert_eq!(choice.reasoning_signature.as_deref(), Some("gemini:EtQDCtEDAdHtim8zUPn4GlKwFn0Rg8d2Gf8s0R1q"));
    assert_eq!(choice.finish_reason, FinishReason::Stop);
    assert_eq!(
        response.usage,
        Usage { input_tokens: 12, output_tokens: 1 + 210, reasoning_tokens: 210, ..Usage::default() }
    );
    // And back to an OpenAI client: thinking billed as completion tokens.
    let encoded: Value = serde_json::from_slice(&crate::openai::encode::chat_response(&response)).unwrap();
    assert_eq!(encoded["usage"]["completion_tokens"], 211);
    assert_eq!(encoded["usage"]["prompt_tokens"], 12);
}

#[test]
fn prompt_blocked_response() {
    let response = generate_content_response(fixture!("gemini-upstream/response_prompt_blocked.json")).unwrap();
    assert_eq!(response.id, "2L5LaL_0Ls2Gz7IPqu2y8Ak");
    let choice = &response.choices[0];
    assert_eq!(choice.index, 0);
    assert_eq!(choice.content, None);
    assert!(choice.tool_calls.is_empty());
    assert_eq!(choice.finish_reason, FinishReason::ContentFilter);
    // The prompt was read: it is billed.
    assert_eq!(response.usage, Usage { input_tokens: 7, ..Usage::default() });
}

#[test]
fn max_tokens_response_with_cache_and_tool_use_prompt() {
    let choice = choice0(fixture!("gemini-upstream/response_max_tokens.json"));
    assert_eq!(choice.finish_reason, FinishReason::Length);
    assert_eq!(choice.content.as_deref(), Some("The first chapter opens with"));
    let response = generate_content_response(fixture!("gemini-upstream/response_max_tokens.json")).unwrap();
    // promptTokenCount already includes the cached tokens (canonical semantics); the
    // tool-use prompt is counted apart by Gemini and added.
    assert_eq!(
        response.usage,
        Usage {
            input_tokens: 3100 + 12,
            output_tokens: 16 + 48,
            cached_tokens: 2048,
            reasoning_tokens: 48,
            cache_write_tokens: 0
        }
    );
    assert_eq!(response.usage.uncached_input(), 3112 - 2048);
}

fn candidate_body(parts: &str, finish: &str) -> String {
    format!(r#"{{"candidates":[{{"content":{{"role":"model","parts":{parts}}},"finishReason":{finish}}}]}}"#)
}

#[test]
fn response_finish_reasons() {
    let text = r#"[{"text":"x"}]"#;
    let with_call = r#"[{"functionCall":{"name":"f","args":{}}}]"#;
    for (finish, parts, expected) in [
        (r#""STOP""#, text, FinishReason::Stop),
        (r#""STOP""#, with_call, FinishReason::ToolCalls),
        ("null", text, FinishReason::Stop),
        ("null", with_call, FinishReason::ToolCalls),
        (r#""FINISH_REASON_UNSPECIFIED""#, with_call, FinishReason::ToolCalls),
        (r#""MAX_TOKENS""#, text, FinishReason::Length),
        // Cut short: the client must know, even though a call came whole.
        (r#""MAX_TOKENS""#, with_call, FinishReason::Length),
        (r#""SAFETY""#, text, FinishReason::ContentFilter),
        (r#""RECITATION""#, text, FinishReason::ContentFilter),
        (r#""BLOCKLIST""#, text, FinishReason::ContentFilter),
        (r#""PROHIBITED_CONTENT""#, text, FinishReason::ContentFilter),
        (r#""SPII""#, text, FinishReason::ContentFilter),
        (r#""IMAGE_SAFETY""#, text, FinishReason::ContentFilter),
        (r#""LANGUAGE""#, text, FinishReason::ContentFilter),
        (r#""MALFORMED_FUNCTION_CALL""#, text, FinishReason::Other("malformed_function_call".into())),
        (r#""OTHER""#, text, FinishReason::Other("other".into())),
        (r#""TOO_MANY_TOOL_CALLS""#, with_call, FinishReason::Other("too_many_tool_calls".into())),
    ] {
        let choice = choice0(candidate_body(parts, finish).as_bytes());
        assert_eq!(choice.finish_reason, expected, "{finish} {parts}");
    }
}

#[test]
fn response_variants() {
    // Several candidates, each with its index; a filtered one has no content at all.
    let body = r#"{"candidates":[
        {"content":{"role":"model","parts":[{"text":"one"}]},"finishReason":"STOP","index":0},
        {"finishReason":"SAFETY","index":1,"safetyRatings":[{"category":"HARM_CATEGORY_HARASSMENT","probability":"HIGH","blocked":true}]},
        {"content":{"role":"model"},"finishReason":"STOP","index":2}
    ],"responseId":"r","modelVersion":"m"}"#;
    let response = generate_content_response(body.as_bytes()).unwrap();
    let summary: Vec<(u32, Option<&str>, &FinishReason)> =
        response.choices.iter().map(|c| (c.index, c.content.as_deref(), &c.finish_reason)).collect();
    assert_eq!(
        summary,
        [
            (0, Some("one"), &FinishReason::Stop),
            (1, Some(""), &FinishReason::ContentFilter),
            (2, Some(""), &FinishReason::Stop)
        ]
    );
    assert_eq!(response.usage, Usage::default());

    // Calls without text: no content. Absent or null args are `{}`. The signature on a
    // call wins over one seen earlier on a text part; later ones change nothing.
    let parts = r#"[
        {"text":"","thoughtSignature":"on-text"},
        {"functionCall":{"name":"a"}},
        {"functionCall":{"id":"","name":"b","args":null},"thoughtSignature":"on-call"},
        {"functionCall":{"name":"c","args":{"k":[1, 2]}},"thoughtSignature":"later"},
        {"inlineData":{"mimeType":"image/png","data":"AAAA"}},
        {"executableCode":{"language":"PYTHON","code":"print(1)"}},
        {"text":"","thought":true,"thoughtSignature":"later-still"}
    ]"#;
    let choice = choice0(candidate_body(parts, r#""STOP""#).as_bytes());
    assert_eq!(choice.content, None);
    assert_eq!(choice.reasoning, None);
    assert_eq!(choice.reasoning_signature.as_deref(), Some("gemini:on-call"));
    assert_eq!(
        choice.tool_calls,
        vec![call("call_0", "a", "{}"), call("call_1", "b", "{}"), call("call_2", "c", r#"{"k":[1,2]}"#)]
    );

    // Only text-part signatures: the first one.
    let parts = r#"[{"text":"x","thoughtSignature":"first"},{"text":"y","thoughtSignature":"second"}]"#;
    assert_eq!(
        choice0(candidate_body(parts, r#""STOP""#).as_bytes()).reasoning_signature.as_deref(),
        Some("gemini:first")
    );
    // A signature on a call is kept over a text part's that comes after it.
    let parts = r#"[{"functionCall":{"name":"f"},"thoughtSignature":"call"},{"text":"y","thoughtSignature":"text"}]"#;
    assert_eq!(
        choice0(candidate_body(parts, r#""STOP""#).as_bytes()).reasoning_signature.as_deref(),
        Some("gemini:call")
    );

    // Escaped strings decode; leading whitespace is fine.
    let body = format!("\n {}", candidate_body(r#"[{"text":"caf\u00e9 \"q\"\n"}]"#, "null"));
    assert_eq!(choice0(body.as_bytes()).content.as_deref(), Some("café \"q\"\n"));
}

#[test]
fn response_errors() {
    let error = generate_content_response(
        br#"{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED"}}"#,
    )
    .unwrap_err();
    assert_eq!(error.message, "upstream error: RESOURCE_EXHAUSTED: Resource has been exhausted (e.g. check quota).");
    assert_eq!(error.param, None);
    let error = generate_content_response(br#"{"error":{"code":500}}"#).unwrap_err();
    assert_eq!(error.message, "upstream error: upstream error 500");
    for body in [
        &b"{\"candidates\":"[..],
        b"not json",
        b"[1]",
        b"{}",
        br#"{"candidates":[]}"#,
        br#"{"candidates":[],"promptFeedback":{"safetyRatings":[]}}"#,
        br#"{"candidates":"text"}"#,
        br#"{"candidates":[{"content":{"parts":[{"functionCall":{"args":{}}}]}}]}"#,
        br#"{"candidates":[{"content":{"parts":[{"text":7}]}}]}"#,
        br#"{"candidates":[{"index":-1}]}"#,
        br#"{"candidates":[{}],"usageMetadata":{"promptTokenCount":"many"}}"#,
        br#"{"error":"flat string"}"#,
    ] {
        assert!(generate_content_response(body).is_err(), "{}", String::from_utf8_lossy(body));
    }
}
