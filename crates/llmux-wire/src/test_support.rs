//! Helpers shared by this crate's tests.

use llmux_types::Usage;
use llmux_types::chat::{ContentPart, FinishReason, Message, Role, StreamEvent, Tool, ToolCall, ToolChoice};
use proptest::prelude::*;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::openai::encode::ChatStreamEncoder;
use crate::sse::{Framer, parse_event};
use crate::{DecodeError, UpstreamDecoder};

/// The bytes of `tests/fixtures/<path>`.
macro_rules! fixture {
    ($path:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/", $path)).as_slice()
    };
}
pub(crate) use fixture;

// ---------------------------------------------------------------------------------
// Canonical requests.

pub fn message(role: Role, content: Vec<ContentPart>) -> Message {
    Message::new(role, content)
}

pub fn text(value: &str) -> ContentPart {
    ContentPart::Text(value.to_owned())
}

pub fn raw(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_owned()).unwrap()
}

pub fn image(url: &str) -> ContentPart {
    ContentPart::Image { url: url.to_owned(), detail: None }
}

pub fn call(id: &str, name: &str, arguments: &str) -> ToolCall {
    ToolCall { id: id.into(), name: name.into(), arguments: arguments.into() }
}

/// The result of tool call `id`.
pub fn tool_message(id: &str, content: Vec<ContentPart>, error: bool) -> Message {
    let mut message = message(Role::Tool, content);
    message.tool_call_id = Some(id.into());
    message.tool_error = error;
    message
}

// ---------------------------------------------------------------------------------
// Canonical stream events.

/// The first fragment of tool call `index` of `choice`: the one with its id and name.
pub fn call_start(choice: u32, index: u32, id: &str, name: &str, arguments: &str) -> StreamEvent<'static> {
    let (id, name, arguments) = (id.to_owned(), name.to_owned(), arguments.to_owned());
    StreamEvent::ToolCall { choice, index, id: Some(id.into()), name: Some(name.into()), arguments: arguments.into() }
}

/// A later fragment of tool call `index` of `choice`: arguments only.
pub fn call_more(choice: u32, index: u32, arguments: &str) -> StreamEvent<'static> {
    StreamEvent::ToolCall { choice, index, id: None, name: None, arguments: arguments.to_owned().into() }
}

/// The `Usage` events among `events`, in order.
pub fn usages(events: &[StreamEvent<'_>]) -> Vec<Usage> {
    events
        .iter()
        .filter_map(|event| match event {
            StreamEvent::Usage(usage) => Some(*usage),
            _ => None,
        })
        .collect()
}

/// The reasons of the `Finish` events among `events`, in order.
pub fn finishes<'a>(events: &'a [StreamEvent<'_>]) -> Vec<&'a FinishReason> {
    events
        .iter()
        .filter_map(|event| match event {
            StreamEvent::Finish { reason, .. } => Some(reason),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------
// Decoding upstream streams.

/// Each of `payloads` through `decoder`, every one decoding.
pub fn decode_all(decoder: &mut impl UpstreamDecoder, payloads: &[&str]) -> Vec<StreamEvent<'static>> {
    let mut events = Vec::new();
    for payload in payloads {
        decoder.decode_with(payload.as_bytes(), &mut |event| events.push(event.into_owned())).unwrap();
    }
    events
}

/// Feeds an SSE byte stream, cut into `chunks`, through the framer and `decode` (one
/// event's data at a time); every event must decode.
pub fn decode_sse(
    chunks: &[&[u8]],
    mut decode: impl FnMut(&[u8]) -> Result<Vec<StreamEvent<'static>>, DecodeError>,
) -> Vec<StreamEvent<'static>> {
    let mut framer = Framer::new();
    let mut events = Vec::new();
    let mut feed = |raw: &[u8], events: &mut Vec<StreamEvent<'_>>| {
        if let Some(data) = parse_event(raw).data {
            events.extend(decode(&data).unwrap());
        }
    };
    for chunk in chunks {
        framer.push(chunk);
        while let Some(raw) = framer.next_event() {
            feed(&raw, &mut events);
        }
    }
    if let Some(raw) = framer.finish() {
        feed(&raw, &mut events);
    }
    events
}

/// `bytes` cut at `cuts` (each an index into `0..=bytes.len()`, any order).
pub fn cut_at<'a>(bytes: &'a [u8], cuts: &[proptest::sample::Index]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|cut| cut.index(bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut chunks = Vec::with_capacity(points.len() + 1);
    let mut from = 0;
    for point in points {
        chunks.push(&bytes[from..point]);
        from = point;
    }
    chunks.push(&bytes[from..]);
    chunks
}

// ---------------------------------------------------------------------------------
// The OpenAI stream of canonical events.

/// The chunks (JSON) the OpenAI stream encoder, usage included, makes of `events`;
/// `[DONE]` comes last, once.
pub fn openai_chunks(events: Vec<StreamEvent<'_>>) -> Vec<Value> {
    let mut encoder = ChatStreamEncoder::new(true);
    let mut out = Vec::new();
    for event in events {
        encoder.encode(&event, &mut out);
    }
    encoder.finish(&mut out);
    let mut framer = Framer::new();
    framer.push(&out);
    let mut chunks = Vec::new();
    let mut done = false;
    while let Some(raw) = framer.next_event() {
        let data = parse_event(&raw).data.unwrap();
        assert!(!done, "nothing after [DONE]");
        if &*data == b"[DONE]" {
            done = true;
        } else {
            chunks.push(serde_json::from_slice::<Value>(&data).unwrap());
        }
    }
    assert!(done);
    chunks
}

/// The `delta` of every choice of `chunks`, in order.
pub fn openai_deltas(chunks: &[Value]) -> Vec<&Value> {
    chunks.iter().flat_map(|chunk| chunk["choices"].as_array().unwrap()).map(|choice| &choice["delta"]).collect()
}

/// The string `field` of `deltas`, joined.
pub fn joined(deltas: &[&Value], field: &str) -> String {
    deltas.iter().filter_map(|delta| delta[field].as_str()).collect()
}

/// The tool-call fragments of `deltas`, in order.
pub fn openai_calls<'a>(deltas: &[&'a Value]) -> Vec<&'a Value> {
    deltas.iter().filter_map(|delta| delta["tool_calls"].as_array()).flatten().collect()
}

/// The non-null `finish_reason`s of every choice of `chunks`, in order.
pub fn openai_finish_reasons(chunks: &[Value]) -> Vec<&Value> {
    chunks
        .iter()
        .flat_map(|chunk| chunk["choices"].as_array().unwrap())
        .map(|choice| &choice["finish_reason"])
        .filter(|reason| !reason.is_null())
        .collect()
}

// ---------------------------------------------------------------------------------
// Strategies for canonical requests.

/// Short text with quotes, backslashes, newlines and non-ASCII.
pub fn arb_text() -> impl Strategy<Value = String> + Clone {
    "[a-zA-Z0-9 \"\\\\\n\u{e9}\u{1f600}]{0,8}"
}

/// Mostly text; else an image, by a URL matching `url` or as a base64 data URL.
pub fn arb_part(url: &'static str) -> impl Strategy<Value = ContentPart> + Clone {
    prop_oneof![
        3 => arb_text().prop_map(ContentPart::Text),
        1 => url.prop_map(|url| image(&url)),
        1 => ("(png|jpeg|webp)", "[A-Za-z0-9+/]{0,8}={0,2}", proptest::option::of("(low|high)")).prop_map(
            |(kind, data, detail)| ContentPart::Image { url: format!("data:image/{kind};base64,{data}"), detail }
        ),
    ]
}

/// A system or developer message of `texts`.
pub fn arb_system_message(texts: impl Strategy<Value = Vec<String>>) -> impl Strategy<Value = Message> {
    (prop_oneof![Just(Role::System), Just(Role::Developer)], texts)
        .prop_map(|(role, texts)| message(role, texts.into_iter().map(ContentPart::Text).collect()))
}

/// An assistant message: texts, calls, maybe reasoning with a signature from
/// `signatures`, and redacted reasoning.
pub fn arb_assistant_message(
    texts: impl Strategy<Value = Vec<String>>,
    calls: impl Strategy<Value = ToolCall>,
    signatures: impl Strategy<Value = Option<String>>,
) -> impl Strategy<Value = Message> {
    (
        texts,
        proptest::collection::vec(calls, 0..3),
        proptest::option::of((arb_text(), signatures)),
        proptest::collection::vec("[A-Za-z0-9+/]{1,6}", 0..2),
    )
        .prop_map(|(texts, calls, reasoning, redacted)| {
            let mut message = message(Role::Assistant, texts.into_iter().map(ContentPart::Text).collect());
            message.tool_calls = calls;
            if let Some((reasoning, signature)) = reasoning {
                message.reasoning = Some(reasoning);
                message.reasoning_signature = signature;
            }
            message.redacted_reasoning = redacted;
            message
        })
}

/// Tool-call arguments: mostly a small JSON object, else empty, cut short, or an array.
pub fn arb_arguments() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "\\{( ?\"[a-z]{1,3}\": ?([0-9]{1,3}|\"[a-z ]{0,3}\"|\\[[0-9]?\\]),?)?\\}"
            .prop_filter("valid JSON", |json| serde_json::from_str::<Value>(json).is_ok()),
        1 => Just(String::new()),
        1 => Just("{\"a\":".to_owned()),
        1 => Just("[1, 2]".to_owned()),
    ]
}

/// A tool call with an id from `ids` and arguments from `arguments`.
pub fn arb_call(
    ids: impl Strategy<Value = String>,
    arguments: impl Strategy<Value = String>,
) -> impl Strategy<Value = ToolCall> {
    (ids, "[a-z_]{1,8}", arguments).prop_map(|(id, name, arguments)| ToolCall { id, name, arguments })
}

/// A tool whose parameters are `schema` or not given.
pub fn arb_tool(schema: &'static str) -> impl Strategy<Value = Tool> {
    ("[a-z_]{1,10}", proptest::option::of("[a-zA-Z .]{0,20}"), any::<bool>()).prop_map(
        move |(name, description, with_schema)| Tool {
            name,
            description,
            parameters: with_schema.then(|| raw(schema)),
        },
    )
}

/// Any tool choice, or none.
pub fn arb_tool_choice() -> impl Strategy<Value = Option<ToolChoice>> {
    proptest::option::of(prop_oneof![
        Just(ToolChoice::None),
        Just(ToolChoice::Auto),
        Just(ToolChoice::Required),
        "[a-z]{1,5}".prop_map(ToolChoice::Function),
    ])
}
