//! Micro-benchmarks of the request path's pure pieces: peeking a chat body, splicing
//! the upstream model into it, and classifying one relayed stream chunk.

use criterion::{Criterion, criterion_group, criterion_main};
use llmux_wire::openai::peek::{Endpoint, peek, rewrite};
use llmux_wire::openai::usage::classify_chunk;
use llmux_wire::sse::{Framer, parse_event};

fn chat_body(messages: usize) -> Vec<u8> {
    let mut body = String::from(r#"{"model":"chat-default","messages":["#);
    for index in 0..messages {
        if index > 0 {
            body.push(',');
        }
        body.push_str(r#"{"role":"user","content":"Summarise the following paragraph in one sentence, please: the quick brown fox jumps over the lazy dog.\nThanks!"}"#);
    }
    body.push_str(r#"],"temperature":0.2,"stream":true}"#);
    body.into_bytes()
}

fn benches(c: &mut Criterion) {
    let small = chat_body(4);
    let large = chat_body(256);
    c.bench_function("peek+rewrite 0.5KB chat body", |b| {
        b.iter(|| {
            let peeked = peek(&small, Endpoint::ChatCompletions).unwrap();
            rewrite(&small, &peeked, "deepseek-chat", true)
        })
    });
    c.bench_function("peek+rewrite 32KB chat body", |b| {
        b.iter(|| {
            let peeked = peek(&large, Endpoint::ChatCompletions).unwrap();
            rewrite(&large, &peeked, "deepseek-chat", true)
        })
    });
    let chunk = br#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"hello"},"logprobs":null,"finish_reason":null}]}

"#;
    c.bench_function("relay one stream chunk (frame + classify)", |b| {
        let mut framer = Framer::new();
        b.iter(|| {
            framer.push(chunk);
            let event = framer.next_event().unwrap();
            let data = parse_event(&event).data.unwrap();
            classify_chunk(&data)
        })
    });
}

criterion_group!(request_path, benches);
criterion_main!(request_path);
