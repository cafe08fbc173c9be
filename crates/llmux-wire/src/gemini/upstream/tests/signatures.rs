//! Signatures across dialects: Gemini's reach OpenAI clients on the call they sign and
//! come back; no provider ever gets another's.

use llmux_types::chat::{ChatRequest, FinishReason, Message, Role, StreamEvent};
use serde_json::{Value, json};

use crate::gemini::upstream::{generate_content_request, generate_content_response};
use crate::openai::encode::ChatStreamEncoder;
use crate::test_support::{call, call_start, fixture, message, text, tool_message};

fn signed_turn(signature: &str) -> Message {
    let mut turn = message(Role::Assistant, vec![text("Checking.")]);
    turn.tool_calls = vec![call("fc_1", "get_weather", r#"{"city":"Paris"}"#), call("fc_2", "now", "{}")];
    turn.reasoning = Some("thought".into());
    turn.reasoning_signature = Some(signature.into());
    turn
}

fn request_with(turn: Message) -> ChatRequest {
    ChatRequest {
        messages: vec![message(Role::User, vec![text("q")]), turn, tool_message("fc_1", vec![text("sunny")], false)],
        ..ChatRequest::default()
    }
}

#[test]
fn another_providers_signature_is_never_sent_to_gemini_nor_gemini_s_to_anthropic() {
    let (body, _) = generate_content_request(&request_with(signed_turn("EqQBCkgIBRABGAIiQL==")));
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert!(body["contents"][1]["parts"].as_array().unwrap().iter().all(|part| part.get("thoughtSignature").is_none()));

    let (body, _) =
        crate::anthropic::upstream::messages_request(&request_with(signed_turn("gemini:c2ln")), "claude", 1024);
    let body: Value = serde_json::from_slice(&body).unwrap();
    let blocks = body["messages"][1]["content"].as_array().unwrap();
    assert!(blocks.iter().all(|block| block["type"] != "thinking"), "{blocks:?}");
    assert_eq!(blocks.iter().filter(|block| block["type"] == "tool_use").count(), 2);
}

#[test]
fn gemini_signatures_ride_on_the_first_openai_tool_call_and_come_back() {
    let answer = generate_content_response(fixture!("gemini-upstream/response_function_call.json")).unwrap();
    let signature = answer.choices[0].reasoning_signature.clone().unwrap();
    let raw = signature.strip_prefix("gemini:").unwrap().to_owned();
    let body: Value = serde_json::from_slice(&crate::openai::encode::chat_response(&answer)).unwrap();
    let calls = body["choices"][0]["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls[0]["extra_content"], json!({"google": {"thought_signature": raw}}));
    assert!(calls[1..].iter().all(|call| call.get("extra_content").is_none()));

    // The client sends the message back as it got it; the signature is Gemini's again.
    let next = json!({"model": "m", "messages": [
        {"role": "user", "content": "q"},
        body["choices"][0]["message"].clone(),
        {"role": "tool", "tool_call_id": calls[0]["id"], "content": "sunny"},
    ]});
    let request = crate::openai::decode::chat_request(next.to_string().as_bytes()).unwrap();
    assert_eq!(request.messages[1].reasoning_signature.as_deref(), Some(signature.as_str()));
    let (sent, _) = generate_content_request(&request);
    let sent: Value = serde_json::from_slice(&sent).unwrap();
    let first_call =
        sent["contents"][1]["parts"].as_array().unwrap().iter().find(|part| part.get("functionCall").is_some());
    assert_eq!(first_call.unwrap()["thoughtSignature"], json!(raw));

    // Anthropic's signatures have no place in OpenAI's answer.
    let mut anthropic = answer.clone();
    anthropic.choices[0].reasoning_signature = Some("EqQBCkgIBRABGAIiQL==".into());
    let body: Value = serde_json::from_slice(&crate::openai::encode::chat_response(&anthropic)).unwrap();
    assert!(body["choices"][0]["message"]["tool_calls"][0].get("extra_content").is_none());
}

#[test]
fn streamed_gemini_signatures_ride_on_the_first_fragment_of_the_call() {
    let mut encoder = ChatStreamEncoder::new(false);
    let mut out = Vec::new();
    for event in [
        StreamEvent::Start { id: "r".into(), model: "g".into(), created: 0 },
        StreamEvent::Text { choice: 0, text: "hi".into() },
        // A text part's signature, no call after it on this choice yet: held.
        StreamEvent::ReasoningSignature { choice: 0, signature: "gemini:c2ln".into() },
        call_start(0, 0, "fc_1", "f", "{}"),
        call_start(0, 1, "fc_2", "g", "{}"),
        StreamEvent::ReasoningSignature { choice: 0, signature: "EqQBCkgIBRABGAIiQL==".into() },
        StreamEvent::Finish { choice: 0, reason: FinishReason::ToolCalls },
    ] {
        encoder.encode(&event, &mut out);
    }
    encoder.finish(&mut out);
    let text = String::from_utf8(out).unwrap();
    let calls: Vec<Value> = text
        .split("\n\n")
        .filter_map(|frame| frame.strip_prefix("data: "))
        .filter(|data| *data != "[DONE]")
        .filter_map(|data| {
            serde_json::from_str::<Value>(data).unwrap()["choices"][0]["delta"]["tool_calls"].get(0).cloned()
        })
        .collect();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["extra_content"], json!({"google": {"thought_signature": "c2ln"}}));
    assert!(calls[1].get("extra_content").is_none());
}

#[test]
fn gemini_signatures_ride_in_anthropic_tool_use_ids_and_come_back() {
    let answer = generate_content_response(fixture!("gemini-upstream/response_function_call.json")).unwrap();
    let signature = answer.choices[0].reasoning_signature.clone().unwrap();
    let raw = signature.strip_prefix("gemini:").unwrap().to_owned();
    let first_id = answer.choices[0].tool_calls[0].id.clone();

    // Complete answer: no thinking block for it; the first tool_use id carries it.
    let message: Value = serde_json::from_slice(&crate::anthropic::encode::messages_response(&answer)).unwrap();
    let blocks = message["content"].as_array().unwrap();
    assert!(blocks.iter().all(|block| block["type"] != "thinking" || block["signature"] == ""), "{blocks:?}");
    let tool_uses: Vec<&Value> = blocks.iter().filter(|block| block["type"] == "tool_use").collect();
    let signed_id = tool_uses[0]["id"].as_str().unwrap().to_owned();
    assert!(signed_id.starts_with(&format!("{first_id}__gsig")), "{signed_id}");
    assert!(signed_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'), "Anthropic's id pattern");
    assert!(tool_uses[1..].iter().all(|block| !block["id"].as_str().unwrap().contains("__gsig")));

    // Streamed: the same id.
    let mut encoder = crate::anthropic::encode::MessagesStreamEncoder::new("m");
    let mut out = Vec::new();
    for event in [
        StreamEvent::Text { choice: 0, text: "Checking.".into() },
        StreamEvent::ReasoningSignature { choice: 0, signature: signature.clone().into() },
        call_start(0, 0, &first_id, "f", "{}"),
        StreamEvent::Finish { choice: 0, reason: FinishReason::ToolCalls },
    ] {
        encoder.encode(&event, &mut out);
    }
    encoder.finish(&mut out);
    let text = String::from_utf8(out).unwrap();
    assert!(!text.contains("\"thinking\""), "no thinking block after text: {text}");
    assert!(text.contains(&format!("\"id\":\"{signed_id}\"")), "{text}");

    // The client sends the turn and its tool result back; Gemini gets its signature and
    // the plain ids.
    let next = json!({"model": "m", "max_tokens": 100, "messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": signed_id, "name": "get_weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": signed_id, "content": "sunny"}]},
    ]});
    let request = crate::anthropic::decode::messages_request(next.to_string().as_bytes()).unwrap();
    assert_eq!(request.messages[1].tool_calls[0].id, first_id);
    assert_eq!(request.messages[1].reasoning_signature.as_deref(), Some(signature.as_str()));
    assert_eq!(request.messages[2].tool_call_id.as_deref(), Some(first_id.as_str()));
    let (sent, _) = generate_content_request(&request);
    let sent: Value = serde_json::from_slice(&sent).unwrap();
    assert_eq!(sent["contents"][1]["parts"][0]["thoughtSignature"], json!(raw));
    assert_eq!(sent["contents"][1]["parts"][0]["functionCall"]["id"], json!(first_id));
    assert_eq!(sent["contents"][2]["parts"][0]["functionResponse"]["id"], json!(first_id));
}
