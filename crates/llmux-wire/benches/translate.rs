//! Stream translation speed: upstream SSE bytes -> canonical events -> the client's
//! frames, in each direction the gateway translates. Reported per event, so the
//! events/s figure in BENCHMARKS.md is 1e9 / (ns per event).

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use llmux_types::chat::StreamEvent;
use llmux_wire::UpstreamDecoder;
use llmux_wire::anthropic::encode::MessagesStreamEncoder;
use llmux_wire::anthropic::upstream::EventDecoder;
use llmux_wire::gemini::upstream::StreamDecoder;
use llmux_wire::openai::encode::ChatStreamEncoder;
use llmux_wire::openai::upstream::ChunkDecoder;
use llmux_wire::responses::encode::{Echo, ResponsesStreamEncoder};
use llmux_wire::sse::{Framer, parse_event};

const TEXT_EVENTS: usize = 200;

/// An OpenAI stream: 200 text deltas, a finish chunk, a usage chunk, `[DONE]`.
fn openai_stream() -> (Vec<u8>, usize) {
    let mut body = String::new();
    let chunk = |delta: &str, finish: &str| {
        format!(
            "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"logprobs\":null,\"finish_reason\":{finish}}}]}}\n\n"
        )
    };
    body.push_str(&chunk(r#"{"role":"assistant","content":""}"#, "null"));
    for index in 0..TEXT_EVENTS {
        body.push_str(&chunk(&format!(r#"{{"content":"token{index} "}}"#), "null"));
    }
    body.push_str(&chunk("{}", r#""stop""#));
    body.push_str("data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":200,\"total_tokens\":212}}\n\n");
    body.push_str("data: [DONE]\n\n");
    (body.into_bytes(), TEXT_EVENTS + 4)
}

/// An Anthropic stream with the same content.
fn anthropic_stream() -> (Vec<u8>, usize) {
    let mut body = String::new();
    let mut event = |name: &str, data: String| body.push_str(&format!("event: {name}\ndata: {data}\n\n"));
    event("message_start", r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":1}}}"#.to_owned());
    event(
        "content_block_start",
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#.to_owned(),
    );
    for index in 0..TEXT_EVENTS {
        event(
            "content_block_delta",
            format!(
                r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"token{index} "}}}}"#
            ),
        );
    }
    event("content_block_stop", r#"{"type":"content_block_stop","index":0}"#.to_owned());
    event("message_delta", r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":200}}"#.to_owned());
    event("message_stop", r#"{"type":"message_stop"}"#.to_owned());
    (body.into_bytes(), TEXT_EVENTS + 5)
}

/// A Gemini `alt=sse` stream with the same content: one candidate chunk per token (usage
/// on each, as Gemini sends it), the last with `finishReason`.
fn gemini_stream() -> (Vec<u8>, usize) {
    let mut body = String::new();
    for index in 0..TEXT_EVENTS {
        let finish = if index + 1 == TEXT_EVENTS { r#","finishReason":"STOP""# } else { "" };
        body.push_str(&format!(
            "data: {{\"candidates\":[{{\"content\":{{\"role\":\"model\",\"parts\":[{{\"text\":\"token{index} \"}}]}}{finish},\"index\":0}}],\"usageMetadata\":{{\"promptTokenCount\":12,\"candidatesTokenCount\":{},\"totalTokenCount\":{}}},\"modelVersion\":\"m\",\"responseId\":\"r1\"}}\r\n\r\n",
            index + 1,
            index + 13
        ));
    }
    // Start, then per chunk a text and a usage event, and the finish.
    (body.into_bytes(), 1 + 2 * TEXT_EVENTS + 1)
}

/// A Responses API stream with the same content, as OpenAI sends it: created, in
/// progress, the message item and its part, 200 text deltas, the done events, completed
/// with the usage.
fn responses_stream() -> (Vec<u8>, usize) {
    let mut body = String::new();
    let mut sequence = 0;
    let mut event = |name: &str, rest: String| {
        body.push_str(&format!(
            "event: {name}\ndata: {{\"type\":\"{name}\",\"sequence_number\":{sequence}{rest}}}\n\n"
        ));
        sequence += 1;
    };
    let response = |status: &str, output: &str, usage: &str| {
        format!(
            r#","response":{{"id":"resp_1","object":"response","created_at":1,"status":"{status}","model":"m","output":[{output}],"usage":{usage}}}"#
        )
    };
    event("response.created", response("in_progress", "", "null"));
    event("response.in_progress", response("in_progress", "", "null"));
    let item = r#"{"id":"msg_1","type":"message","status":"in_progress","role":"assistant","content":[]}"#;
    event("response.output_item.added", format!(r#","output_index":0,"item":{item}"#));
    let part = r#"{"type":"output_text","annotations":[],"text":""}"#;
    event(
        "response.content_part.added",
        format!(r#","item_id":"msg_1","output_index":0,"content_index":0,"part":{part}"#),
    );
    let mut text = String::new();
    for index in 0..TEXT_EVENTS {
        let delta = format!("token{index} ");
        event(
            "response.output_text.delta",
            format!(r#","item_id":"msg_1","output_index":0,"content_index":0,"delta":"{delta}","logprobs":[]"#),
        );
        text.push_str(&delta);
    }
    event(
        "response.output_text.done",
        format!(r#","item_id":"msg_1","output_index":0,"content_index":0,"text":"{text}""#),
    );
    let done = format!(
        r#"{{"id":"msg_1","type":"message","status":"completed","role":"assistant","content":[{{"type":"output_text","annotations":[],"text":"{text}"}}]}}"#
    );
    event("response.output_item.done", format!(r#","output_index":0,"item":{done}"#));
    let usage = r#"{"input_tokens":12,"input_tokens_details":{"cached_tokens":0},"output_tokens":200,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":212}"#;
    event("response.completed", response("completed", &done, usage));
    (body.into_bytes(), TEXT_EVENTS + 8)
}

/// Frames `stream` as it would arrive (in 1 KiB reads) and hands each event's data to
/// `translate`, which appends the client's bytes to `out`.
fn relay(stream: &[u8], out: &mut Vec<u8>, mut translate: impl FnMut(&[u8], &mut Vec<u8>)) {
    let mut framer = Framer::new();
    for read in stream.chunks(1024) {
        framer.push(read);
        while let Some(event) = framer.next_event() {
            if let Some(data) = parse_event(&event).data {
                translate(&data, out);
            }
        }
    }
}

/// A client's stream encoder (OpenAI's, Anthropic's or the Responses API's).
trait ClientEncoder {
    fn encode(&mut self, event: &StreamEvent<'_>, out: &mut Vec<u8>);
    fn finish(&mut self, out: &mut Vec<u8>);
}

impl ClientEncoder for ChatStreamEncoder {
    fn encode(&mut self, event: &StreamEvent<'_>, out: &mut Vec<u8>) {
        ChatStreamEncoder::encode(self, event, out);
    }
    fn finish(&mut self, out: &mut Vec<u8>) {
        ChatStreamEncoder::finish(self, out);
    }
}

impl ClientEncoder for ResponsesStreamEncoder {
    fn encode(&mut self, event: &StreamEvent<'_>, out: &mut Vec<u8>) {
        ResponsesStreamEncoder::encode(self, event, out);
    }
    fn finish(&mut self, out: &mut Vec<u8>) {
        ResponsesStreamEncoder::finish(self, out);
    }
}

impl ClientEncoder for MessagesStreamEncoder {
    fn encode(&mut self, event: &StreamEvent<'_>, out: &mut Vec<u8>) {
        MessagesStreamEncoder::encode(self, event, out);
    }
    fn finish(&mut self, out: &mut Vec<u8>) {
        MessagesStreamEncoder::finish(self, out);
    }
}

/// Benchmarks translating `stream` (of `events` events) from the upstream dialect of
/// `decoder` for the client of `encoder`, both made anew per iteration.
fn bench_translation<D: UpstreamDecoder, E: ClientEncoder>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    (stream, events): &(Vec<u8>, usize),
    decoder: fn() -> D,
    encoder: fn() -> E,
) {
    group.throughput(Throughput::Elements(*events as u64));
    group.bench_function(name, |b| {
        let mut out = Vec::with_capacity(64 * 1024);
        b.iter(|| {
            out.clear();
            let (mut decoder, mut encoder) = (decoder(), encoder());
            relay(stream, &mut out, |data, out| {
                decoder.decode_with(data, &mut |event| encoder.encode(&event, out)).unwrap();
            });
            encoder.finish(&mut out);
            out.len()
        })
    });
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("stream translation");
    let anthropic = || MessagesStreamEncoder::new("m");
    let openai = || ChatStreamEncoder::new(true);
    let name = "OpenAI upstream -> Anthropic client (per stream of 204 events)";
    bench_translation(&mut group, name, &openai_stream(), ChunkDecoder::new, anthropic);
    let name = "Anthropic upstream -> OpenAI client (per stream of 205 events)";
    bench_translation(&mut group, name, &anthropic_stream(), EventDecoder::new, openai);
    let gemini = gemini_stream();
    let name = "Gemini upstream -> OpenAI client (per stream of 402 events)";
    bench_translation(&mut group, name, &gemini, StreamDecoder::new, openai);
    let name = "Gemini upstream -> Anthropic client (per stream of 402 events)";
    bench_translation(&mut group, name, &gemini, StreamDecoder::new, anthropic);
    let responses = || ResponsesStreamEncoder::new("resp_0123456789abcdefghijklmn", 1, Echo::default());
    let name = "OpenAI upstream -> Responses client (per stream of 204 events)";
    bench_translation(&mut group, name, &openai_stream(), ChunkDecoder::new, responses);
    let name = "Anthropic upstream -> Responses client (per stream of 205 events)";
    bench_translation(&mut group, name, &anthropic_stream(), EventDecoder::new, responses);
    let from_responses = responses_stream();
    let decoder = llmux_wire::responses::upstream::EventDecoder::new;
    let name = "Responses upstream -> OpenAI client (per stream of 208 events)";
    bench_translation(&mut group, name, &from_responses, decoder, openai);
    let name = "Responses upstream -> Anthropic client (per stream of 208 events)";
    bench_translation(&mut group, name, &from_responses, decoder, anthropic);
    group.finish();
}

criterion_group!(translate, benches);
criterion_main!(translate);
