//! Canonical answers -> Responses API answers: the response object, and the stream's
//! event sequence.
//!
//! The stream (`event: <type>` + `data: <json>`, every payload with its `type` and a
//! `sequence_number` from 0): `response.created`, `response.in_progress`; then per output
//! item `response.output_item.added` … `response.output_item.done`, with in between
//! - a message: `response.content_part.added`, `response.output_text.delta`*,
//!   `response.output_text.done`, `response.content_part.done`;
//! - reasoning: `response.reasoning_summary_part.added`,
//!   `response.reasoning_summary_text.delta`*, `response.reasoning_summary_text.done`,
//!   `response.reasoning_summary_part.done`;
//! - a function call: `response.function_call_arguments.delta`*,
//!   `response.function_call_arguments.done`;
//!
//! and last `response.completed`, or `response.incomplete` (the output limit or a content
//! filter ended it), or `response.failed` (the upstream failed mid-stream), each with the
//! whole response. There is no `[DONE]`.
//!
//! Item ids are the response id's suffix behind the item kind's prefix and its output
//! index (`msg_…0`, `rs_…1`, `fc_…2`); a function call's `call_id` is the upstream's call
//! id. A reasoning signature is the reasoning item's `encrypted_content`: `llmux:` + the
//! canonical signature (opaque to the client, and read back by `decode` when the item is
//! sent again). A signature without reasoning text is a reasoning item with an empty
//! summary.

use super::decode::ResponsesRequest;
use crate::json::compact_json;
use std::io::Write;

use llmux_types::Usage;
use llmux_types::chat::{ChatResponse, FinishReason, StreamEvent};

/// What an answer repeats of its request, rendered once: the members after `output` and
/// `usage` in every response object.
#[derive(Debug, Clone, Default)]
pub struct Echo(String);

impl Echo {
    /// The echo of `request`: what it sent of the echoed members, the API's defaults
    /// for the others.
    pub fn of(request: &ResponsesRequest) -> Echo {
        let chat = &request.chat;
        let float = |value: Option<f64>| value.map_or_else(|| "null".to_owned(), |value| value.to_string());
        let defaults: [(&str, String); 12] = [
            ("instructions", "null".to_owned()),
            ("max_output_tokens", chat.max_tokens.map_or_else(|| "null".to_owned(), |max| max.to_string())),
            ("metadata", "{}".to_owned()),
            ("parallel_tool_calls", "true".to_owned()),
            ("previous_response_id", serde_json::to_string(&request.previous_response_id).unwrap_or_default()),
            ("reasoning", r#"{"effort":null,"summary":null}"#.to_owned()),
            ("store", request.store.to_string()),
            ("temperature", float(chat.temperature)),
            ("text", r#"{"format":{"type":"text"}}"#.to_owned()),
            ("tool_choice", r#""auto""#.to_owned()),
            ("tools", "[]".to_owned()),
            ("top_p", float(chat.top_p)),
        ];
        let mut members = String::new();
        for (name, default) in defaults {
            if !members.is_empty() {
                members.push(',');
            }
            members.push('"');
            members.push_str(name);
            members.push_str("\":");
            match request.echoed.get(name) {
                // Compact: the echo goes on one SSE `data:` line.
                Some(raw) => members.push_str(&compact_json(raw.get())),
                None => members.push_str(&default),
            }
        }
        members.push_str(",\"truncation\":\"disabled\"");
        Echo(members)
    }
}

/// A complete answer as a response object (`status` `completed`, or `incomplete` when
/// the output limit or a content filter ended it). `id` is the response's own id
/// (`resp_…`); only the first choice is shown (the API has no `n`).
pub fn response(id: &str, created_at: u64, echo: &Echo, answer: &ChatResponse) -> Vec<u8> {
    let mut items = Vec::new();
    let mut finish = FinishReason::Stop;
    if let Some(choice) = answer.choices.first() {
        finish = choice.finish_reason.clone();
        let reasoning = choice.reasoning.as_deref().filter(|text| !text.is_empty());
        let signature = choice.reasoning_signature.as_deref().filter(|signature| !signature.is_empty());
        if reasoning.is_some() || signature.is_some() {
            items.push(Item {
                kind: Kind::Reasoning(reasoning.unwrap_or_default().to_owned()),
                open: false,
                signature: signature.map(str::to_owned),
            });
        }
        if let Some(content) = choice.content.as_deref().filter(|text| !text.is_empty()) {
            items.push(Item { kind: Kind::Message(content.to_owned()), open: false, signature: None });
        }
        for call in &choice.tool_calls {
            items.push(Item {
                kind: Kind::Call {
                    call_id: call.id.clone(),
                    name: call.name.clone(),
                    arguments: call.arguments.clone(),
                },
                open: false,
                signature: None,
            });
        }
    }
    let mut out = Vec::new();
    write_response(
        &mut out,
        &Head { id, created_at, model: &answer.model, echo },
        &Final { items: &items, usage: Some(&answer.usage), status: status_of(&finish), error: None },
    );
    out
}

/// The response object's identity and what it echoes.
struct Head<'a> {
    id: &'a str,
    created_at: u64,
    model: &'a str,
    echo: &'a Echo,
}

/// The parts of a response object that change while it is produced.
struct Final<'a> {
    items: &'a [Item],
    usage: Option<&'a Usage>,
    status: Status,
    error: Option<(&'a str, &'a str)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    InProgress,
    Completed,
    /// Ended early: `max_output_tokens` or `content_filter`.
    Incomplete(&'static str),
    Failed,
}

fn status_of(reason: &FinishReason) -> Status {
    match reason {
        FinishReason::Length => Status::Incomplete("max_output_tokens"),
        FinishReason::ContentFilter => Status::Incomplete("content_filter"),
        _ => Status::Completed,
    }
}

/// One output item, as far as it has been produced.
#[derive(Debug)]
struct Item {
    kind: Kind,
    /// Still receiving deltas (its `done` events not sent yet).
    open: bool,
    /// A reasoning item's canonical signature.
    signature: Option<String>,
}

#[derive(Debug)]
enum Kind {
    Message(String),
    Reasoning(String),
    Call { call_id: String, name: String, arguments: String },
}

impl Kind {
    fn prefix(&self) -> &'static str {
        match self {
            Kind::Message(_) => "msg",
            Kind::Reasoning(_) => "rs",
            Kind::Call { .. } => "fc",
        }
    }
}

/// The id of output item `index` of response `id` (`resp_X` -> `msg_X0`).
fn item_id(out: &mut Vec<u8>, response_id: &str, kind: &Kind, index: usize) {
    let suffix = response_id.strip_prefix("resp_").unwrap_or(response_id);
    out.extend_from_slice(kind.prefix().as_bytes());
    out.push(b'_');
    out.extend_from_slice(suffix.as_bytes());
    number(out, index);
}

/// A number, written without an intermediate string.
fn number(out: &mut Vec<u8>, value: impl std::fmt::Display) {
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{value}");
}

fn string(out: &mut Vec<u8>, text: &str) {
    // Writing to a Vec cannot fail, and a str always serializes.
    let _ = serde_json::to_writer(&mut *out, text);
}

fn write_response(out: &mut Vec<u8>, head: &Head<'_>, now: &Final<'_>) {
    out.extend_from_slice(b"{\"id\":");
    string(out, head.id);
    out.extend_from_slice(b",\"object\":\"response\",\"created_at\":");
    number(out, head.created_at);
    out.extend_from_slice(b",\"status\":");
    let (status, incomplete) = match now.status {
        Status::InProgress => ("in_progress", None),
        Status::Completed => ("completed", None),
        Status::Incomplete(reason) => ("incomplete", Some(reason)),
        Status::Failed => ("failed", None),
    };
    string(out, status);
    out.extend_from_slice(b",\"error\":");
    match now.error {
        None => out.extend_from_slice(b"null"),
        Some((code, message)) => {
            out.extend_from_slice(b"{\"code\":");
            string(out, code);
            out.extend_from_slice(b",\"message\":");
            string(out, message);
            out.push(b'}');
        }
    }
    out.extend_from_slice(b",\"incomplete_details\":");
    match incomplete {
        None => out.extend_from_slice(b"null"),
        Some(reason) => {
            out.extend_from_slice(b"{\"reason\":");
            string(out, reason);
            out.push(b'}');
        }
    }
    out.extend_from_slice(b",\"model\":");
    string(out, head.model);
    out.extend_from_slice(b",\"output\":[");
    for (index, item) in now.items.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_item(out, head.id, item, index);
    }
    out.extend_from_slice(b"],\"usage\":");
    match now.usage {
        None => out.extend_from_slice(b"null"),
        Some(usage) => write_usage(out, usage),
    }
    if !head.echo.0.is_empty() {
        out.push(b',');
        out.extend_from_slice(head.echo.0.as_bytes());
    }
    out.push(b'}');
}

fn write_usage(out: &mut Vec<u8>, usage: &Usage) {
    let text = format!(
        "{{\"input_tokens\":{},\"input_tokens_details\":{{\"cached_tokens\":{}}},\"output_tokens\":{},\
         \"output_tokens_details\":{{\"reasoning_tokens\":{}}},\"total_tokens\":{}}}",
        usage.input_tokens,
        usage.cached_tokens,
        usage.output_tokens,
        usage.reasoning_tokens,
        usage.total()
    );
    out.extend_from_slice(text.as_bytes());
}

fn write_item(out: &mut Vec<u8>, response_id: &str, item: &Item, index: usize) {
    let status = if item.open { "in_progress" } else { "completed" };
    out.extend_from_slice(b"{\"id\":\"");
    item_id(out, response_id, &item.kind, index);
    out.push(b'"');
    match &item.kind {
        Kind::Message(text) => {
            out.extend_from_slice(b",\"type\":\"message\",\"status\":");
            string(out, status);
            out.extend_from_slice(b",\"role\":\"assistant\",\"content\":[");
            if !item.open {
                write_text_part(out, text);
            }
            out.push(b']');
        }
        Kind::Reasoning(text) => {
            out.extend_from_slice(b",\"type\":\"reasoning\",\"summary\":[");
            if !item.open && !text.is_empty() {
                write_summary_part(out, text);
            }
            out.push(b']');
            if let Some(signature) = &item.signature {
                out.extend_from_slice(b",\"encrypted_content\":\"");
                out.extend_from_slice(super::decode::SEALED_PREFIX.as_bytes());
                string_inner(out, signature);
                out.push(b'"');
            }
        }
        Kind::Call { call_id, name, arguments } => {
            out.extend_from_slice(b",\"type\":\"function_call\",\"status\":");
            string(out, status);
            out.extend_from_slice(b",\"call_id\":");
            string(out, call_id);
            out.extend_from_slice(b",\"name\":");
            string(out, name);
            out.extend_from_slice(b",\"arguments\":");
            string(out, if item.open { "" } else { arguments });
        }
    }
    out.push(b'}');
}

/// `text` as the inside of a JSON string (without its quotes).
fn string_inner(out: &mut Vec<u8>, text: &str) {
    let start = out.len();
    string(out, text);
    // Drop the quotes `string` wrote around it.
    out.pop();
    out.remove(start);
}

fn write_text_part(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(b"{\"type\":\"output_text\",\"annotations\":[],\"logprobs\":[],\"text\":");
    string(out, text);
    out.push(b'}');
}

fn write_summary_part(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(b"{\"type\":\"summary_text\",\"text\":");
    string(out, text);
    out.push(b'}');
}

/// Canonical stream events -> the Responses API event sequence.
#[derive(Debug, Default)]
pub struct ResponsesStreamEncoder {
    id: String,
    created_at: u64,
    echo: Echo,
    model: String,
    sequence: u64,
    items: Vec<Item>,
    /// The open message or reasoning item, if any.
    open_text: Option<usize>,
    /// Open function calls: (the canonical call index, the item index).
    open_calls: Vec<(u32, usize)>,
    /// How the answer ended (`None`: not said; taken as a normal stop).
    finish: Option<FinishReason>,
    usage: Option<Usage>,
    started: bool,
    /// A terminal event was sent (`response.failed`).
    ended: bool,
    /// The response object of `response.completed` or `response.incomplete`, once sent.
    last: Option<Vec<u8>>,
}

impl ResponsesStreamEncoder {
    /// An encoder for response `id` (`resp_…`), created at `created_at` (Unix seconds).
    pub fn new(id: impl Into<String>, created_at: u64, echo: Echo) -> ResponsesStreamEncoder {
        ResponsesStreamEncoder { id: id.into(), created_at, echo, ..ResponsesStreamEncoder::default() }
    }

    /// Appends the events for `event` to `out`.
    pub fn encode(&mut self, event: &StreamEvent<'_>, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        match event {
            StreamEvent::Start { model, .. } => {
                if !model.is_empty() {
                    self.model.clear();
                    self.model.push_str(model);
                }
                self.start(out);
            }
            StreamEvent::Text { choice: 0, text } if !text.is_empty() => {
                self.start(out);
                let index = self.open_text_item(out, false);
                self.delta(out, "response.output_text.delta", index, Some(0), text);
                if let Kind::Message(all) = &mut self.items[index].kind {
                    all.push_str(text);
                }
            }
            StreamEvent::Reasoning { choice: 0, text } if !text.is_empty() => {
                self.start(out);
                let index = self.open_text_item(out, true);
                self.delta(out, "response.reasoning_summary_text.delta", index, None, text);
                if let Kind::Reasoning(all) = &mut self.items[index].kind {
                    all.push_str(text);
                }
            }
            StreamEvent::ToolCall { choice: 0, index, id, name, arguments } => {
                self.start(out);
                let item = match self.open_calls.iter().find(|(call, _)| call == index) {
                    Some(&(_, item)) => item,
                    None => {
                        self.close_text(out);
                        let kind = Kind::Call {
                            call_id: id.as_deref().unwrap_or_default().to_owned(),
                            name: name.as_deref().unwrap_or_default().to_owned(),
                            arguments: String::new(),
                        };
                        let item = self.add_item(out, kind);
                        self.open_calls.push((*index, item));
                        item
                    }
                };
                if !arguments.is_empty() {
                    self.delta(out, "response.function_call_arguments.delta", item, None, arguments);
                    if let Kind::Call { arguments: all, .. } = &mut self.items[item].kind {
                        all.push_str(arguments);
                    }
                }
            }
            StreamEvent::ReasoningSignature { choice: 0, signature } if !signature.is_empty() => {
                self.start(out);
                self.signed(out, signature);
            }
            StreamEvent::Finish { choice: 0, reason } => self.finish = Some(reason.clone()),
            StreamEvent::Usage(usage) => self.usage = Some(*usage),
            StreamEvent::Error { message } => self.fail("upstream_error", message, out),
            _ => {}
        }
    }

    /// Closes the stream: every open item done, then `response.completed` (or
    /// `response.incomplete`).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.start(out);
        self.close_all(out);
        let status = self.finish.as_ref().map_or(Status::Completed, status_of);
        let kind = if status == Status::Completed { "response.completed" } else { "response.incomplete" };
        self.terminal(out, kind, status, None);
    }

    /// The whole response object the stream ended with, when it completed (or ended
    /// incomplete), to keep it; `None` before the end and after a failure.
    pub fn take_final(&mut self) -> Option<Vec<u8>> {
        self.last.take()
    }

    /// An error raised mid-stream (`code` is the gateway's error code): `response.failed`.
    pub fn error(&mut self, code: &str, message: &str, out: &mut Vec<u8>) {
        if !self.ended {
            self.fail(code, message, out);
        }
    }

    fn fail(&mut self, code: &str, message: &str, out: &mut Vec<u8>) {
        self.start(out);
        self.close_all(out);
        self.terminal(out, "response.failed", Status::Failed, Some((code, message)));
    }

    fn terminal(&mut self, out: &mut Vec<u8>, kind: &str, status: Status, error: Option<(&str, &str)>) {
        let mut body = Vec::new();
        let head = Head { id: &self.id, created_at: self.created_at, model: &self.model, echo: &self.echo };
        write_response(&mut body, &head, &Final { items: &self.items, usage: self.usage.as_ref(), status, error });
        emit(&mut self.sequence, out, kind, |out| {
            out.extend_from_slice(b",\"response\":");
            out.extend_from_slice(&body);
        });
        if status != Status::Failed {
            self.last = Some(body);
        }
        self.ended = true;
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let mut body = Vec::new();
        let head = Head { id: &self.id, created_at: self.created_at, model: &self.model, echo: &self.echo };
        write_response(&mut body, &head, &Final { items: &[], usage: None, status: Status::InProgress, error: None });
        for kind in ["response.created", "response.in_progress"] {
            emit(&mut self.sequence, out, kind, |out| {
                out.extend_from_slice(b",\"response\":");
                out.extend_from_slice(&body);
            });
        }
    }

    /// The open message (`reasoning` false) or reasoning item, opened if needed.
    fn open_text_item(&mut self, out: &mut Vec<u8>, reasoning: bool) -> usize {
        if let Some(index) = self.open_text
            && matches!(self.items[index].kind, Kind::Reasoning(_)) == reasoning
        {
            return index;
        }
        self.close_text(out);
        self.close_calls(out);
        let kind = if reasoning { Kind::Reasoning(String::new()) } else { Kind::Message(String::new()) };
        let index = self.add_item(out, kind);
        let (event, part): (&str, fn(&mut Vec<u8>, &str)) = if reasoning {
            ("response.reasoning_summary_part.added", write_summary_part)
        } else {
            ("response.content_part.added", write_text_part)
        };
        let (response_id, item) = (&self.id, &self.items[index]);
        emit(&mut self.sequence, out, event, |out| {
            write_item_ref(out, response_id, item, index, if reasoning { None } else { Some(0) });
            out.extend_from_slice(b",\"part\":");
            part(out, "");
        });
        self.open_text = Some(index);
        index
    }

    /// A reasoning signature: the open reasoning item's, else an item of its own
    /// (added and done at once).
    fn signed(&mut self, out: &mut Vec<u8>, signature: &str) {
        if let Some(index) = self.open_text
            && matches!(self.items[index].kind, Kind::Reasoning(_))
        {
            self.items[index].signature = Some(signature.to_owned());
            return;
        }
        let index = self.add_item(out, Kind::Reasoning(String::new()));
        self.items[index].signature = Some(signature.to_owned());
        self.item_done(out, index);
    }

    fn add_item(&mut self, out: &mut Vec<u8>, kind: Kind) -> usize {
        let index = self.items.len();
        self.items.push(Item { kind, open: true, signature: None });
        self.item_event(out, "response.output_item.added", index);
        index
    }

    /// `response.output_item.added` or `.done`: the item as it stands.
    fn item_event(&mut self, out: &mut Vec<u8>, kind: &str, index: usize) {
        let (response_id, item) = (&self.id, &self.items[index]);
        emit(&mut self.sequence, out, kind, |out| {
            out.extend_from_slice(b",\"output_index\":");
            number(out, index);
            out.extend_from_slice(b",\"item\":");
            write_item(out, response_id, item, index);
        });
    }

    fn delta(&mut self, out: &mut Vec<u8>, kind: &str, index: usize, content_index: Option<u32>, delta: &str) {
        let (response_id, item) = (&self.id, &self.items[index]);
        emit(&mut self.sequence, out, kind, |out| {
            write_item_ref(out, response_id, item, index, content_index);
            out.extend_from_slice(b",\"delta\":");
            string(out, delta);
            if content_index.is_some() {
                out.extend_from_slice(b",\"logprobs\":[]");
            }
        });
    }

    fn close_text(&mut self, out: &mut Vec<u8>) {
        let Some(index) = self.open_text.take() else { return };
        let (response_id, item) = (&self.id, &self.items[index]);
        let (text, reasoning) = match &item.kind {
            Kind::Message(text) => (text, false),
            Kind::Reasoning(text) => (text, true),
            Kind::Call { .. } => return,
        };
        let content_index = if reasoning { None } else { Some(0) };
        let (text_done, part_done): (&str, &str) = if reasoning {
            ("response.reasoning_summary_text.done", "response.reasoning_summary_part.done")
        } else {
            ("response.output_text.done", "response.content_part.done")
        };
        emit(&mut self.sequence, out, text_done, |out| {
            write_item_ref(out, response_id, item, index, content_index);
            out.extend_from_slice(b",\"text\":");
            string(out, text);
            if !reasoning {
                out.extend_from_slice(b",\"logprobs\":[]");
            }
        });
        emit(&mut self.sequence, out, part_done, |out| {
            write_item_ref(out, response_id, item, index, content_index);
            out.extend_from_slice(b",\"part\":");
            if reasoning { write_summary_part(out, text) } else { write_text_part(out, text) }
        });
        self.item_done(out, index);
    }

    fn close_calls(&mut self, out: &mut Vec<u8>) {
        for (_, index) in std::mem::take(&mut self.open_calls) {
            let (response_id, item) = (&self.id, &self.items[index]);
            let Kind::Call { name, arguments, .. } = &item.kind else { continue };
            emit(&mut self.sequence, out, "response.function_call_arguments.done", |out| {
                write_item_ref(out, response_id, item, index, None);
                out.extend_from_slice(b",\"name\":");
                string(out, name);
                out.extend_from_slice(b",\"arguments\":");
                string(out, arguments);
            });
            self.item_done(out, index);
        }
    }

    fn close_all(&mut self, out: &mut Vec<u8>) {
        self.close_text(out);
        self.close_calls(out);
    }

    fn item_done(&mut self, out: &mut Vec<u8>, index: usize) {
        self.items[index].open = false;
        self.item_event(out, "response.output_item.done", index);
    }
}

/// One SSE event: `event: kind`, and its data `{"type":kind,"sequence_number":n` + what
/// `body` writes (members, each after a comma) + `}`; counts `sequence` on.
fn emit(sequence: &mut u64, out: &mut Vec<u8>, kind: &str, body: impl FnOnce(&mut Vec<u8>)) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\ndata: {\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"sequence_number\":");
    number(out, *sequence);
    body(out);
    out.extend_from_slice(b"}\n\n");
    *sequence += 1;
}

/// `"item_id":…,"output_index":…` and, for message content, `"content_index":…`; for
/// reasoning, `"summary_index":0`.
fn write_item_ref(out: &mut Vec<u8>, response_id: &str, item: &Item, index: usize, content_index: Option<u32>) {
    out.extend_from_slice(b",\"item_id\":\"");
    item_id(out, response_id, &item.kind, index);
    out.extend_from_slice(b"\",\"output_index\":");
    number(out, index);
    if let Some(content_index) = content_index {
        out.extend_from_slice(b",\"content_index\":");
        number(out, content_index);
    }
    let summary = matches!(item.kind, Kind::Reasoning(_));
    if summary {
        out.extend_from_slice(b",\"summary_index\":0");
    }
}
