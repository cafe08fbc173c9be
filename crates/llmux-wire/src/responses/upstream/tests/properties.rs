//! What the client side writes (`responses::encode`, `responses::decode`), the upstream
//! side reads back: canonical events -> the Responses event sequence -> canonical events;
//! canonical answers -> response objects -> canonical answers; and canonical requests ->
//! Responses API bodies -> canonical requests.

use llmux_types::Usage;
use llmux_types::chat::{
    ChatRequest, ChatResponse, Choice, ContentPart, FinishReason, Message, Role, StreamEvent, Tool, ToolCall,
};
use proptest::prelude::*;
use serde_json::Value;

use crate::UpstreamDecoder;
use crate::responses::decode::{ResponsesRequest, responses_request};
use crate::responses::encode::{Echo, ResponsesStreamEncoder, response};
use crate::responses::upstream::{EventDecoder, MIN_OUTPUT_TOKENS, decode_response, request_body};
use crate::test_support::{arb_arguments, arb_part, arb_text, arb_tool, arb_tool_choice, cut_at, decode_sse, message};

fn arb_nonempty_text() -> impl Strategy<Value = String> + Clone {
    arb_text().prop_filter("not empty", |text| !text.is_empty())
}

fn arb_usage() -> impl Strategy<Value = Usage> {
    (0u64..5000, 0u64..5000, 0u64..100, 0u64..100).prop_map(|(input, output, cached, reasoning)| Usage {
        input_tokens: input,
        output_tokens: output,
        cached_tokens: cached,
        reasoning_tokens: reasoning,
        cache_write_tokens: 0,
    })
}

/// A call: id, name, argument fragments.
fn arb_stream_call() -> impl Strategy<Value = (String, String, Vec<String>)> {
    ("call_[a-z0-9]{1,6}", "[a-z_]{1,8}", proptest::collection::vec(arb_nonempty_text(), 0..3))
}

/// How a stream ends: a finish reason, or an upstream error (message).
#[derive(Debug, Clone)]
enum End {
    Finish(FinishReason),
    Error(String),
}

/// A canonical stream as an upstream decoder would produce it: a start, runs of
/// reasoning or text, then tool calls, the end and the usage.
fn arb_stream() -> impl Strategy<Value = (Vec<StreamEvent<'static>>, Vec<StreamEvent<'static>>)> {
    (
        "[a-z0-9.-]{0,10}",
        proptest::collection::vec((any::<bool>(), proptest::collection::vec(arb_nonempty_text(), 1..4)), 0..5),
        proptest::collection::vec(arb_stream_call(), 0..3),
        prop_oneof![
            Just(FinishReason::Stop),
            Just(FinishReason::Length),
            Just(FinishReason::ContentFilter),
            Just(FinishReason::ToolCalls)
        ],
        proptest::option::of(arb_nonempty_text()),
        arb_usage(),
    )
        .prop_map(|(model, runs, calls, reason, error, usage)| {
            let mut events =
                vec![StreamEvent::Start { id: "chatcmpl-1".into(), model: model.clone().into(), created: 9 }];
            for (reasoning, texts) in runs {
                for text in texts {
                    events.push(if reasoning {
                        StreamEvent::Reasoning { choice: 0, text: text.into() }
                    } else {
                        StreamEvent::Text { choice: 0, text: text.into() }
                    });
                }
            }
            for (index, (id, name, fragments)) in calls.iter().enumerate() {
                let index = index as u32;
                events.push(crate::test_support::call_start(0, index, id, name, ""));
                for fragment in fragments {
                    events.push(crate::test_support::call_more(0, index, fragment));
                }
            }
            // Calls end with `tool_calls` (or a limit); without calls there is no such end.
            let reason = match (calls.is_empty(), reason) {
                (false, FinishReason::Length) => FinishReason::Length,
                (false, _) => FinishReason::ToolCalls,
                (true, FinishReason::ToolCalls) => FinishReason::Stop,
                (true, reason) => reason,
            };
            let end = match error {
                Some(message) => End::Error(message),
                None => End::Finish(reason),
            };
            let mut expected = events.clone();
            expected[0] = StreamEvent::Start { id: "resp_p".into(), model: model.into(), created: 1700 };
            match end {
                End::Finish(reason) => {
                    events.push(StreamEvent::Finish { choice: 0, reason: reason.clone() });
                    events.push(StreamEvent::Usage(usage));
                    expected.push(StreamEvent::Finish { choice: 0, reason });
                    expected.push(StreamEvent::Usage(usage));
                }
                End::Error(message) => {
                    events.push(StreamEvent::Usage(usage));
                    events.push(StreamEvent::Error { message: message.clone().into() });
                    expected.push(StreamEvent::Usage(usage));
                    expected.push(StreamEvent::Error { message: format!("upstream_error: {message}").into() });
                }
            }
            (events, expected)
        })
}

fn arb_answer() -> impl Strategy<Value = ChatResponse> {
    (
        "[a-z0-9.-]{0,10}",
        proptest::option::of(arb_nonempty_text()),
        proptest::option::of(arb_nonempty_text()),
        proptest::collection::vec(crate::test_support::arb_call("call_[a-z0-9]{1,6}", arb_arguments()), 0..3),
        prop_oneof![Just(FinishReason::Stop), Just(FinishReason::Length), Just(FinishReason::ContentFilter)],
        arb_usage(),
    )
        .prop_map(|(model, content, reasoning, tool_calls, finish, usage)| {
            let finish_reason = match finish {
                FinishReason::Stop if !tool_calls.is_empty() => FinishReason::ToolCalls,
                other => other,
            };
            ChatResponse {
                id: "chatcmpl-1".into(),
                created: 9,
                model,
                choices: vec![Choice {
                    index: 0,
                    content,
                    reasoning,
                    reasoning_signature: None,
                    redacted_reasoning: Vec::new(),
                    tool_calls,
                    finish_reason,
                }],
                usage,
            }
        })
}

/// A conversation that round-trips: system or developer notes, user turns, assistant
/// turns (text, calls or both) each followed by their tool results.
fn arb_conversation() -> impl Strategy<Value = Vec<Message>> {
    let note = (prop_oneof![Just(Role::System), Just(Role::Developer)], arb_text())
        .prop_map(|(role, text)| message(role, vec![ContentPart::Text(text)]));
    let user = proptest::collection::vec(arb_part("https://[a-z]{1,5}\\.example/[a-z]{1,4}\\.png"), 0..3)
        .prop_map(|parts| message(Role::User, parts));
    let assistant = (
        proptest::option::of(arb_nonempty_text()),
        proptest::collection::vec(crate::test_support::arb_call("call_[a-z0-9]{1,6}", arb_arguments()), 0..3),
        proptest::collection::vec(arb_text(), 3),
    )
        .prop_filter("says or calls something", |(text, calls, _)| text.is_some() || !calls.is_empty())
        .prop_map(|(text, calls, results)| {
            let mut turn = vec![message(Role::Assistant, text.into_iter().map(ContentPart::Text).collect())];
            turn[0].tool_calls = calls.clone();
            for (call, result) in calls.iter().zip(results) {
                turn.push(crate::test_support::tool_message(&call.id, vec![ContentPart::Text(result)], false));
            }
            turn
        });
    let turn =
        (proptest::option::of(note), user, proptest::option::of(assistant)).prop_map(|(note, user, assistant)| {
            let mut messages: Vec<Message> = note.into_iter().collect();
            messages.push(user);
            messages.extend(assistant.into_iter().flatten());
            messages
        });
    proptest::collection::vec(turn, 1..4).prop_map(|turns| turns.into_iter().flatten().collect())
}

/// A message as the round trip keeps it: role, joined text, images, calls, the call answered.
type Kept = (Role, String, Vec<(String, Option<String>)>, Vec<ToolCall>, Option<String>);

fn kept(messages: &[Message]) -> Vec<Kept> {
    messages
        .iter()
        .map(|message| {
            let texts: Vec<&str> = crate::upstream::texts(&message.content).collect();
            let images = message
                .content
                .iter()
                .filter_map(|part| match part {
                    ContentPart::Image { url, detail } => Some((url.clone(), detail.clone())),
                    ContentPart::Text(_) => None,
                })
                .collect();
            (message.role, texts.join("\n"), images, message.tool_calls.clone(), message.tool_call_id.clone())
        })
        .collect()
}

fn schema_of(tool: &Tool) -> Value {
    tool.parameters.as_ref().map_or_else(
        || serde_json::json!({"type": "object", "properties": {}}),
        |raw| serde_json::from_str(raw.get()).unwrap(),
    )
}

proptest! {
    #[test]
    fn the_event_sequence_reads_back_as_the_canonical_events(
        (events, expected) in arb_stream(),
        cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..6),
    ) {
        let mut encoder = ResponsesStreamEncoder::new("resp_p", 1700, Echo::of(&ResponsesRequest::default()));
        let mut sse = Vec::new();
        for event in &events {
            encoder.encode(event, &mut sse);
        }
        encoder.finish(&mut sse);
        let mut decoder = EventDecoder::new();
        let decoded = decode_sse(&cut_at(&sse, &cuts), |data| decoder.decode(data));
        prop_assert_eq!(decoded, expected);
    }

    #[test]
    fn a_response_object_reads_back_as_the_canonical_answer(answer in arb_answer()) {
        let body = response("resp_p", 1700, &Echo::of(&ResponsesRequest::default()), &answer);
        let decoded = decode_response(&body).unwrap();
        let (sent, got) = (&answer.choices[0], &decoded.choices[0]);
        prop_assert_eq!((decoded.id.as_str(), decoded.created, &decoded.model), ("resp_p", 1700, &answer.model));
        let content = sent.content.clone().or_else(|| sent.tool_calls.is_empty().then(String::new));
        prop_assert_eq!(&got.content, &content);
        prop_assert_eq!(&got.reasoning, &sent.reasoning);
        prop_assert_eq!(&got.tool_calls, &sent.tool_calls);
        prop_assert_eq!(&got.finish_reason, &sent.finish_reason);
        prop_assert_eq!(decoded.usage, answer.usage);
    }

    #[test]
    fn a_request_body_reads_back_as_the_canonical_request(
        instructions in proptest::option::of(arb_text()),
        conversation in arb_conversation(),
        tools in proptest::collection::vec(arb_tool(r#"{"type":"object","properties":{"x":{"type":"integer"}}}"#), 0..3),
        tool_choice in arb_tool_choice(),
        max_tokens in proptest::option::of(0u64..100_000),
        temperature in proptest::option::of(0u8..20),
        stream in any::<bool>(),
    ) {
        let mut messages: Vec<Message> =
            instructions.map(|text| message(Role::System, vec![ContentPart::Text(text)])).into_iter().collect();
        messages.extend(conversation);
        let request = ChatRequest {
            model: "public".into(),
            messages,
            stream,
            max_tokens,
            temperature: temperature.map(|tenths| f64::from(tenths) / 10.0),
            tools,
            tool_choice,
            ..ChatRequest::default()
        };
        let body = request_body(&request, "upstream");
        let decoded = responses_request(&body).unwrap();
        prop_assert!(!decoded.store && decoded.previous_response_id.is_none());
        let chat = decoded.chat;
        prop_assert_eq!(chat.model.as_str(), "upstream");
        prop_assert_eq!(kept(&chat.messages), kept(&request.messages));
        prop_assert_eq!(chat.stream, request.stream);
        prop_assert_eq!(chat.max_tokens, request.max_tokens.map(|max| max.max(MIN_OUTPUT_TOKENS)));
        prop_assert_eq!(chat.temperature, request.temperature);
        prop_assert_eq!(&chat.tool_choice, &request.tool_choice);
        prop_assert_eq!(chat.tools.len(), request.tools.len());
        for (got, sent) in chat.tools.iter().zip(&request.tools) {
            prop_assert_eq!((&got.name, &got.description), (&sent.name, &sent.description));
            prop_assert_eq!(schema_of(got), schema_of(sent));
        }
    }
}
