//! Stream translation allocates nothing per upstream chunk beyond the client's output
//! frame: a global allocator counts allocations while streams of N and 2N text chunks
//! are translated (SSE framing, decoding to canonical events, encoding for the client)
//! into an output buffer with room reserved, and the count must not grow with N.

use std::alloc::System;

use llmux_types::chat::StreamEvent;
use llmux_wire::UpstreamDecoder;
use llmux_wire::anthropic::encode::MessagesStreamEncoder;
use llmux_wire::anthropic::upstream::EventDecoder;
use llmux_wire::gemini::upstream::StreamDecoder;
use llmux_wire::openai::encode::ChatStreamEncoder;
use llmux_wire::openai::upstream::ChunkDecoder;
use llmux_wire::responses::decode::ResponsesRequest;
use llmux_wire::responses::encode::{Echo, ResponsesStreamEncoder};
use llmux_wire::responses::upstream::EventDecoder as ResponsesDecoder;
use llmux_wire::sse::{Framer, parse_event};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn openai_stream(chunks: usize) -> Vec<u8> {
    let mut body = String::new();
    for index in 0..chunks {
        body.push_str(&format!(
            "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"token{index} \"}},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n"
        ));
    }
    body.push_str("data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":9,\"total_tokens\":12}}\n\ndata: [DONE]\n\n");
    body.into_bytes()
}

fn anthropic_stream(chunks: usize) -> Vec<u8> {
    let mut body = String::from(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    );
    for index in 0..chunks {
        body.push_str(&format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"token{index} \"}}}}\n\n"
        ));
    }
    body.push_str("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":9}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    body.into_bytes()
}

fn gemini_stream(chunks: usize) -> Vec<u8> {
    let mut body = String::new();
    for index in 0..chunks {
        let finish = if index + 1 == chunks { ",\"finishReason\":\"STOP\"" } else { "" };
        body.push_str(&format!(
            "data: {{\"candidates\":[{{\"content\":{{\"role\":\"model\",\"parts\":[{{\"text\":\"token{index} \"}}]}}{finish},\"index\":0}}],\"usageMetadata\":{{\"promptTokenCount\":3,\"candidatesTokenCount\":{index},\"totalTokenCount\":{index}}},\"modelVersion\":\"m\",\"responseId\":\"r1\"}}\r\n\r\n"
        ));
    }
    body.into_bytes()
}

/// A Responses API stream as OpenAI sends it: text deltas, then a function call's
/// argument deltas, then `response.completed` with the whole response.
fn responses_stream(chunks: usize) -> Vec<u8> {
    let response = |status: &str, usage: &str| {
        format!(
            "{{\"id\":\"resp_1\",\"object\":\"response\",\"created_at\":1,\"status\":\"{status}\",\"error\":null,\"incomplete_details\":null,\"model\":\"m\",\"output\":[],\"usage\":{usage},\"store\":false}}"
        )
    };
    let mut body = format!(
        "event: response.created\ndata: {{\"type\":\"response.created\",\"sequence_number\":0,\"response\":{}}}\n\n\
         event: response.output_item.added\ndata: {{\"type\":\"response.output_item.added\",\"sequence_number\":1,\"output_index\":0,\"item\":{{\"id\":\"msg_1\",\"type\":\"message\",\"status\":\"in_progress\",\"content\":[],\"role\":\"assistant\"}}}}\n\n",
        response("in_progress", "null")
    );
    for index in 0..chunks {
        body.push_str(&format!(
            "event: response.output_text.delta\ndata: {{\"type\":\"response.output_text.delta\",\"sequence_number\":{},\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"token{index} \",\"logprobs\":[],\"obfuscation\":\"a1\"}}\n\n",
            index + 2
        ));
    }
    body.push_str("event: response.output_item.added\ndata: {\"type\":\"response.output_item.added\",\"sequence_number\":0,\"output_index\":1,\"item\":{\"id\":\"fc_1\",\"type\":\"function_call\",\"status\":\"in_progress\",\"arguments\":\"\",\"call_id\":\"call_1\",\"name\":\"f\"}}\n\n");
    for index in 0..chunks {
        body.push_str(&format!(
            "event: response.function_call_arguments.delta\ndata: {{\"type\":\"response.function_call_arguments.delta\",\"sequence_number\":0,\"item_id\":\"fc_1\",\"output_index\":1,\"delta\":\"a{index}\"}}\n\n"
        ));
    }
    body.push_str(&format!(
        "event: response.completed\ndata: {{\"type\":\"response.completed\",\"sequence_number\":0,\"response\":{}}}\n\n",
        response("completed", "{\"input_tokens\":3,\"input_tokens_details\":{\"cached_tokens\":0},\"output_tokens\":9,\"output_tokens_details\":{\"reasoning_tokens\":0},\"total_tokens\":12}")
    ));
    body.into_bytes()
}

/// Allocations made translating `stream` (read in 512-byte pieces, as a socket would
/// deliver it) through `translate` into an output buffer with room reserved.
fn allocations(stream: &[u8], mut translate: impl FnMut(&[u8], &mut Vec<u8>)) -> usize {
    let mut out = Vec::with_capacity(stream.len() * 4);
    let mut framer = Framer::new();
    framer.push(b"");
    let region = Region::new(GLOBAL);
    for read in stream.chunks(512) {
        framer.push(read);
        while let Some(event) = framer.next_event() {
            if let Some(data) = parse_event(&event).data {
                translate(&data, &mut out);
            }
        }
    }
    let change = region.change();
    assert!(!out.is_empty());
    change.allocations + change.reallocations
}

/// Allocations per extra upstream chunk, from streams of 200 and 400 chunks.
fn per_chunk(stream: fn(usize) -> Vec<u8>, translate: &dyn Fn(&[u8]) -> usize) -> f64 {
    let small = translate(&stream(200));
    let large = translate(&stream(400));
    (large as f64 - small as f64) / 200.0
}

/// A client's stream encoder (OpenAI's, Anthropic's or the Responses API's).
trait ClientEncoder {
    fn encode(&mut self, event: &StreamEvent<'_>, out: &mut Vec<u8>);
}

impl ClientEncoder for ChatStreamEncoder {
    fn encode(&mut self, event: &StreamEvent<'_>, out: &mut Vec<u8>) {
        ChatStreamEncoder::encode(self, event, out);
    }
}

impl ClientEncoder for ResponsesStreamEncoder {
    fn encode(&mut self, event: &StreamEvent<'_>, out: &mut Vec<u8>) {
        ResponsesStreamEncoder::encode(self, event, out);
    }
}

impl ClientEncoder for MessagesStreamEncoder {
    fn encode(&mut self, event: &StreamEvent<'_>, out: &mut Vec<u8>) {
        MessagesStreamEncoder::encode(self, event, out);
    }
}

/// Allocations per extra upstream chunk translating streams of `stream` from the
/// upstream dialect of `decoder` for the client of `encoder` (each made anew per stream).
fn per_chunk_translating<D: UpstreamDecoder, E: ClientEncoder>(
    stream: fn(usize) -> Vec<u8>,
    decoder: fn() -> D,
    encoder: fn() -> E,
) -> f64 {
    per_chunk(stream, &|stream| {
        let (mut decoder, mut encoder) = (decoder(), encoder());
        allocations(stream, |data, out| {
            decoder.decode_with(data, &mut |event| encoder.encode(&event, out)).unwrap();
        })
    })
}

#[test]
fn translating_a_stream_allocates_nothing_per_chunk() {
    let anthropic = || MessagesStreamEncoder::new("m");
    let openai = || ChatStreamEncoder::new(true);
    let responses = || ResponsesStreamEncoder::new("resp_1", 1, Echo::of(&ResponsesRequest::default()));
    let all = [
        per_chunk_translating(openai_stream, ChunkDecoder::new, responses),
        per_chunk_translating(anthropic_stream, EventDecoder::new, responses),
        per_chunk_translating(openai_stream, ChunkDecoder::new, anthropic),
        per_chunk_translating(anthropic_stream, EventDecoder::new, openai),
        per_chunk_translating(gemini_stream, StreamDecoder::new, openai),
        per_chunk_translating(gemini_stream, StreamDecoder::new, anthropic),
        per_chunk_translating(responses_stream, ResponsesDecoder::new, openai),
        per_chunk_translating(responses_stream, ResponsesDecoder::new, anthropic),
    ];
    assert!(all.iter().all(|per_chunk| *per_chunk < 0.05), "allocations per upstream chunk: {all:?}");
}
