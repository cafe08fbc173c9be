use llmux_types::Usage;
use llmux_types::chat::{ChatResponse, Choice, ContentPart, FinishReason, Role, StreamEvent, ToolCall, ToolChoice};
use serde_json::{Value, json};

use super::decode::responses_request;
use super::encode::{Echo, ResponsesStreamEncoder, response};
use crate::test_support::{call_more, call_start};

fn text(value: &str) -> ContentPart {
    ContentPart::Text(value.to_owned())
}

fn said(text: &str) -> StreamEvent<'_> {
    StreamEvent::Text { choice: 0, text: text.into() }
}

fn thought(text: &str) -> StreamEvent<'_> {
    StreamEvent::Reasoning { choice: 0, text: text.into() }
}

/// The shape of Codex CLI's request (trimmed): developer messages, a user turn, then a
/// tool round trip with reasoning, function tools beside hosted and namespaced ones.
const CODEX_TURN: &str = r#"{
  "model": "gpt-test", "stream": true, "store": false, "parallel_tool_calls": true,
  "include": ["reasoning.encrypted_content"], "reasoning": {"effort": "high", "summary": "auto"},
  "tool_choice": "auto", "prompt_cache_key": "session-1", "client_metadata": {"x": 1},
  "instructions": "You are Codex.",
  "input": [
    {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "sandbox: none"}]},
    {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "List the files"}]},
    {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "I should run ls."}], "encrypted_content": "gAAA"},
    {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "exec_command", "arguments": "{\"cmd\":\"ls\"}"},
    {"type": "function_call_output", "call_id": "call_1", "output": "a.txt\nb.txt"},
    {"role": "assistant", "content": [{"type": "output_text", "text": "Two files."}]},
    {"role": "user", "content": "Thanks"}
  ],
  "tools": [
    {"type": "function", "name": "exec_command", "description": "Run a command", "parameters": {"type": "object"}, "strict": false},
    {"type": "namespace", "name": "multi_agent_v1", "tools": []},
    {"type": "web_search"}
  ]
}"#;

#[test]
fn a_codex_turn_decodes_to_the_canonical_conversation() {
    let request = responses_request(CODEX_TURN.as_bytes()).unwrap();
    assert!(!request.store);
    assert_eq!(request.include, ["reasoning.encrypted_content"]);
    let echoed: Vec<&str> = request.echoed.keys().copied().collect();
    assert_eq!(echoed, ["instructions", "parallel_tool_calls", "reasoning", "tool_choice", "tools"]);
    assert_eq!(request.echoed["reasoning"].get(), r#"{"effort": "high", "summary": "auto"}"#);
    // What the answer echoes stays on one line (an SSE `data:` line), valid JSON.
    let mut encoder = ResponsesStreamEncoder::new("resp_c", 1, Echo::of(&request));
    let mut out = Vec::new();
    encoder.finish(&mut out);
    let events = events(&out);
    assert_eq!(events[0].1["response"]["tools"][1]["type"], "namespace");
    assert_eq!(events[0].1["response"]["reasoning"], json!({"effort": "high", "summary": "auto"}));
    let chat = &request.chat;
    assert_eq!(chat.model, "gpt-test");
    assert!(chat.stream && chat.stream_include_usage);
    let roles: Vec<Role> = chat.messages.iter().map(|message| message.role).collect();
    assert_eq!(
        roles,
        [Role::System, Role::Developer, Role::User, Role::Assistant, Role::Tool, Role::Assistant, Role::User]
    );
    assert_eq!(chat.messages[0].content, [text("You are Codex.")]);
    let call_turn = &chat.messages[3];
    assert_eq!(call_turn.reasoning.as_deref(), Some("I should run ls."));
    assert!(call_turn.content.is_empty());
    assert_eq!(
        call_turn.tool_calls,
        [ToolCall { id: "call_1".into(), name: "exec_command".into(), arguments: r#"{"cmd":"ls"}"#.into() }]
    );
    assert_eq!(chat.messages[4].tool_call_id.as_deref(), Some("call_1"));
    assert_eq!(chat.messages[4].content, [text("a.txt\nb.txt")]);
    assert_eq!(chat.messages[5].content, [text("Two files.")]);
    assert_eq!(chat.messages[6].content, [text("Thanks")]);
    // Function tools map; the hosted and namespaced ones are kept aside (dropped, named).
    assert_eq!(chat.tools.len(), 1);
    assert_eq!(chat.tools[0].name, "exec_command");
    assert_eq!(chat.tool_choice, Some(ToolChoice::Auto));
    let tools: Value = serde_json::from_str(chat.extensions["tools"].get()).unwrap();
    assert_eq!(tools.as_array().map(Vec::len), Some(2));
    assert_eq!(chat.extensions["reasoning_effort"].get(), r#""high""#);
    assert_eq!(chat.extensions["prompt_cache_key"].get(), r#""session-1""#);
    assert!(!chat.extensions.contains_key("client_metadata"));
    assert!(!chat.extensions.contains_key("include"));
}

#[test]
fn string_input_structured_output_and_limits() {
    let body = br#"{"model":"m","input":"hi","max_output_tokens":50,"temperature":0.2,"top_p":0.9,
        "text":{"format":{"type":"json_schema","name":"answer","schema":{"type":"object"},"strict":true},"verbosity":"low"},
        "tool_choice":{"type":"function","name":"f"},"user":"u1"}"#;
    let request = responses_request(body).unwrap();
    let chat = &request.chat;
    assert_eq!(chat.messages.len(), 1);
    assert_eq!((chat.messages[0].role, chat.messages[0].content.clone()), (Role::User, vec![text("hi")]));
    assert_eq!((chat.max_tokens, chat.temperature, chat.top_p), (Some(50), Some(0.2), Some(0.9)));
    let format: Value = serde_json::from_str(chat.response_format.as_ref().unwrap().get()).unwrap();
    assert_eq!(
        format,
        json!({"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": true}})
    );
    assert_eq!(chat.tool_choice, Some(ToolChoice::Function("f".into())));
    assert_eq!(chat.extensions["verbosity"].get(), r#""low""#);
    assert_eq!(chat.extensions["user"].get(), r#""u1""#);
    assert!(request.store, "the API stores by default");
    assert!(!chat.stream);
}

#[test]
fn decode_errors_name_the_offending_path() {
    let cases: &[(&str, Option<&str>)] = &[
        (r#"[]"#, None),
        (r#"{"input":"x"}"#, Some("model")),
        (r#"{"model":"m"}"#, Some("input")),
        (r#"{"model":"m","input":[{"role":"robot","content":"x"}]}"#, Some("input.0.role")),
        (r#"{"model":"m","input":[{"type":"message","role":"user"}]}"#, Some("input.0.content")),
        (r#"{"model":"m","input":[{"type":"function_call","name":"f"}]}"#, Some("input.0.call_id")),
        (r#"{"model":"m","input":[{"type":"function_call_output","call_id":"c"}]}"#, Some("input.0.output")),
        (r#"{"model":"m","input":[{"type":"web_search_call","id":"w"}]}"#, Some("input.0.type")),
        (
            r#"{"model":"m","input":[{"role":"user","content":[{"type":"input_file","file_id":"f"}]}]}"#,
            Some("input.0.content.0"),
        ),
        (
            r#"{"model":"m","input":[{"role":"user","content":[{"type":"input_image","file_id":"f"}]}]}"#,
            Some("input.0.content.0"),
        ),
        (r#"{"model":"m","input":"x","tool_choice":"sometimes"}"#, Some("tool_choice")),
        (r#"{"model":"m","input":"x","text":{"format":{"type":"xml"}}}"#, Some("text.format.type")),
        (r#"{"model":"m","input":"x","max_output_tokens":-3}"#, Some("max_output_tokens")),
    ];
    for (body, param) in cases {
        let error = responses_request(body.as_bytes()).expect_err(body);
        assert_eq!(error.param.as_deref(), *param, "{body}: {}", error.message);
    }
}

fn echo() -> Echo {
    Echo::of(&responses_request(br#"{"model":"m","input":"x","max_output_tokens":64,"store":false}"#).unwrap())
}

fn answer(content: Option<&str>, reasoning: Option<&str>, calls: Vec<ToolCall>, finish: FinishReason) -> ChatResponse {
    ChatResponse {
        id: "chatcmpl-1".into(),
        created: 1,
        model: "up-model".into(),
        choices: vec![Choice {
            index: 0,
            content: content.map(str::to_owned),
            reasoning: reasoning.map(str::to_owned),
            reasoning_signature: Some("sig".into()),
            redacted_reasoning: Vec::new(),
            tool_calls: calls,
            finish_reason: finish,
        }],
        usage: Usage {
            input_tokens: 20,
            output_tokens: 7,
            cached_tokens: 5,
            reasoning_tokens: 2,
            cache_write_tokens: 0,
        },
    }
}

#[test]
fn a_complete_answer_is_a_response_object() {
    let calls = vec![ToolCall { id: "call_9".into(), name: "f".into(), arguments: "{\"a\":1}".into() }];
    let body =
        response("resp_abc", 1700, &echo(), &answer(Some("Hello"), Some("think"), calls, FinishReason::ToolCalls));
    let value: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        value,
        json!({
            "id": "resp_abc", "object": "response", "created_at": 1700, "status": "completed",
            "error": null, "incomplete_details": null, "model": "up-model",
            "output": [
                {"id": "rs_abc0", "type": "reasoning", "summary": [{"type": "summary_text", "text": "think"}],
                 "encrypted_content": "llmux:sig"},
                {"id": "msg_abc1", "type": "message", "status": "completed", "role": "assistant",
                 "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": "Hello"}]},
                {"id": "fc_abc2", "type": "function_call", "status": "completed", "call_id": "call_9", "name": "f",
                 "arguments": "{\"a\":1}"}
            ],
            "usage": {"input_tokens": 20, "input_tokens_details": {"cached_tokens": 5}, "output_tokens": 7,
                      "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 27},
            "instructions": null, "max_output_tokens": 64, "metadata": {}, "parallel_tool_calls": true,
            "previous_response_id": null,
            "reasoning": {"effort": null, "summary": null}, "store": false, "temperature": null,
            "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [], "top_p": null,
            "truncation": "disabled"
        })
    );
    let cut = response("resp_abc", 1700, &echo(), &answer(Some("Hel"), None, Vec::new(), FinishReason::Length));
    let value: Value = serde_json::from_slice(&cut).unwrap();
    assert_eq!(
        (value["status"].clone(), value["incomplete_details"].clone()),
        (json!("incomplete"), json!({"reason": "max_output_tokens"}))
    );
}

/// `(event name, data)` of a Responses SSE body; checks that each event's data names its
/// event and that the sequence numbers count from 0.
fn events(body: &[u8]) -> Vec<(String, Value)> {
    let text = std::str::from_utf8(body).unwrap();
    let mut out = Vec::new();
    for frame in text.split("\n\n").filter(|frame| !frame.is_empty()) {
        let name = frame.lines().find_map(|line| line.strip_prefix("event: ")).unwrap().to_owned();
        let data: Value =
            serde_json::from_str(frame.lines().find_map(|line| line.strip_prefix("data: ")).unwrap()).unwrap();
        assert_eq!(data["type"], name.as_str());
        assert_eq!(data["sequence_number"], out.len());
        out.push((name, data));
    }
    out
}

fn stream(
    events_in: &[StreamEvent<'_>],
    end: impl FnOnce(&mut ResponsesStreamEncoder, &mut Vec<u8>),
) -> Vec<(String, Value)> {
    let mut encoder = ResponsesStreamEncoder::new("resp_s", 1700, echo());
    let mut out = Vec::new();
    for event in events_in {
        encoder.encode(event, &mut out);
    }
    end(&mut encoder, &mut out);
    events(&out)
}

#[test]
fn a_streamed_answer_is_the_exact_event_sequence() {
    let input = [
        StreamEvent::Start { id: "c".into(), model: "up-model".into(), created: 1 },
        thought("Let me "),
        thought("think."),
        StreamEvent::ReasoningSignature { choice: 0, signature: "sig".into() },
        said("Hel"),
        said("lo"),
        call_start(0, 0, "call_1", "f", ""),
        call_more(0, 0, "{\"a\":"),
        call_more(0, 0, "1}"),
        StreamEvent::Finish { choice: 0, reason: FinishReason::ToolCalls },
        StreamEvent::Usage(Usage { input_tokens: 10, output_tokens: 4, ..Usage::default() }),
    ];
    let events = stream(&input, |encoder, out| encoder.finish(out));
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let created = &events[0].1["response"];
    assert_eq!((created["status"].clone(), created["output"].clone()), (json!("in_progress"), json!([])));
    assert_eq!(created["model"], "up-model");
    assert_eq!(events[2].1["item"], json!({"id": "rs_s0", "type": "reasoning", "summary": []}));
    assert_eq!(events[4].1["delta"], "Let me ");
    assert_eq!((events[4].1["item_id"].clone(), events[4].1["summary_index"].clone()), (json!("rs_s0"), json!(0)));
    assert_eq!(events[6].1["text"], "Let me think.");
    assert_eq!(
        events[9].1["item"],
        json!({"id": "msg_s1", "type": "message", "status": "in_progress", "role": "assistant", "content": []})
    );
    assert_eq!(events[10].1["part"], json!({"type": "output_text", "annotations": [], "logprobs": [], "text": ""}));
    assert_eq!(
        (events[11].1["delta"].clone(), events[11].1["output_index"].clone(), events[11].1["content_index"].clone()),
        (json!("Hel"), json!(1), json!(0))
    );
    assert_eq!(events[13].1["text"], "Hello");
    assert_eq!(
        events[16].1["item"],
        json!({"id": "fc_s2", "type": "function_call", "status": "in_progress", "call_id": "call_1", "name": "f", "arguments": ""})
    );
    assert_eq!(events[19].1["arguments"], "{\"a\":1}");
    assert_eq!(events[20].1["item"]["status"], "completed");
    let done = &events[21].1["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"].as_array().map(Vec::len), Some(3));
    assert_eq!(done["output"][1]["content"][0]["text"], "Hello");
    assert_eq!(done["output"][2]["arguments"], "{\"a\":1}");
    assert_eq!(done["usage"]["total_tokens"], 14);
    // The signature rides on the reasoning item once done, sealed as llmux's.
    assert_eq!(events[8].1["item"]["encrypted_content"], "llmux:sig");
    assert_eq!(done["output"][0]["encrypted_content"], "llmux:sig");
}

#[test]
fn signatures_go_to_the_client_sealed_and_come_back_to_their_provider() {
    // A Gemini signature arriving after the reasoning item closed: an item of its own.
    let input = [
        StreamEvent::Start { id: "c".into(), model: "m".into(), created: 1 },
        said("Hi"),
        StreamEvent::ReasoningSignature { choice: 0, signature: "gemini:g1".into() },
        call_start(0, 0, "call_1", "f", "{}"),
        StreamEvent::Finish { choice: 0, reason: FinishReason::ToolCalls },
    ];
    let events = stream(&input, |encoder, out| encoder.finish(out));
    let output = events.last().unwrap().1["response"]["output"].clone();
    assert_eq!(
        output[1],
        json!({"id": "rs_s1", "type": "reasoning", "summary": [], "encrypted_content": "llmux:gemini:g1"})
    );

    // OpenAI's own (with the id of its item) is sealed the same way.
    let mut openai = answer(None, None, Vec::new(), FinishReason::Stop);
    openai.choices[0].reasoning_signature = Some("openai:rs_9:gAAAAB".into());
    let body: Value = serde_json::from_slice(&response("resp_o", 1, &echo(), &openai)).unwrap();
    assert_eq!(
        body["output"][0],
        json!({"id": "rs_o0", "type": "reasoning", "summary": [], "encrypted_content": "llmux:openai:rs_9:gAAAAB"})
    );

    // Sent back as input items: each signature is the canonical one again, on the
    // assistant turn it belongs to.
    let body = br#"{"model":"m","input":[
        {"role":"user","content":"q"},
        {"type":"reasoning","summary":[],"encrypted_content":"llmux:gemini:g1"},
        {"type":"function_call","call_id":"call_1","name":"f","arguments":"{}"},
        {"type":"function_call_output","call_id":"call_1","output":"r"},
        {"type":"reasoning","summary":[{"type":"summary_text","text":"hm"}],"encrypted_content":"llmux:EqQB"},
        {"type":"message","role":"assistant","content":[{"type":"output_text","text":"a"}]},
        {"type":"reasoning","id":"rs_9","summary":[],"encrypted_content":"gAAAAB"},
        {"type":"message","role":"assistant","content":"b"}]}"#;
    let messages = responses_request(body).unwrap().chat.messages;
    let signatures: Vec<Option<&str>> =
        messages.iter().filter(|m| m.role == Role::Assistant).map(|m| m.reasoning_signature.as_deref()).collect();
    assert_eq!(signatures, [Some("gemini:g1"), Some("EqQB"), Some("openai:rs_9:gAAAAB")]);
    assert_eq!(messages[3].reasoning.as_deref(), Some("hm"));
}

#[test]
fn a_cut_answer_is_incomplete_and_an_upstream_failure_is_failed() {
    let start = StreamEvent::Start { id: "c".into(), model: "m".into(), created: 1 };
    let text = said("Hel");
    let cut = stream(
        &[start.clone(), text.clone(), StreamEvent::Finish { choice: 0, reason: FinishReason::Length }],
        |e, out| e.finish(out),
    );
    let (name, last) = cut.last().unwrap();
    assert_eq!(name, "response.incomplete");
    assert_eq!(last["response"]["incomplete_details"], json!({"reason": "max_output_tokens"}));

    let failed = stream(&[start.clone(), text.clone()], |e, out| {
        e.error("upstream_timeout", "The upstream stopped sending.", out);
        e.finish(out);
    });
    let names: Vec<&str> = failed.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names[names.len() - 4..],
        ["response.output_text.done", "response.content_part.done", "response.output_item.done", "response.failed"]
    );
    let (_, last) = failed.last().unwrap();
    assert_eq!(last["response"]["status"], "failed");
    assert_eq!(
        last["response"]["error"],
        json!({"code": "upstream_timeout", "message": "The upstream stopped sending."})
    );

    // An error event from the upstream ends the stream the same way; nothing follows it.
    let errored = stream(&[start, text, StreamEvent::Error { message: "overloaded".into() }], |e, out| e.finish(out));
    assert_eq!(errored.last().unwrap().0, "response.failed");
    assert_eq!(errored.iter().filter(|(name, _)| name.starts_with("response.failed")).count(), 1);
}

#[test]
fn the_input_is_kept_as_sent_only_for_a_response_to_store() {
    let kept = responses_request(br#"{"model":"m","input":[{"role":"user","content":"hi"}]}"#).unwrap();
    assert_eq!(kept.input.unwrap().get(), r#"[{"role":"user","content":"hi"}]"#);
    let unkept = responses_request(br#"{"model":"m","input":"hi","store":false}"#).unwrap();
    assert!(unkept.input.is_none());
}

#[test]
fn the_final_response_object_is_taken_once_after_completion_and_never_after_failure() {
    let start = StreamEvent::Start { id: "c".into(), model: "m".into(), created: 1 };
    let mut encoder = ResponsesStreamEncoder::new("resp_s", 1700, echo());
    let mut out = Vec::new();
    encoder.encode(&start, &mut out);
    encoder.encode(&said("Hello"), &mut out);
    assert!(encoder.take_final().is_none(), "not before the end");
    encoder.finish(&mut out);
    let taken: Value = serde_json::from_slice(&encoder.take_final().unwrap()).unwrap();
    let (_, completed) = events(&out).pop().unwrap();
    assert_eq!(taken, completed["response"]);
    assert!(encoder.take_final().is_none(), "taken once");

    let mut failing = ResponsesStreamEncoder::new("resp_f", 1700, echo());
    failing.encode(&start, &mut out);
    failing.error("upstream_error", "gone", &mut out);
    failing.finish(&mut out);
    assert!(failing.take_final().is_none());
}
