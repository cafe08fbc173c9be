//! The same-dialect fast path: `peek` for every endpoint, and `rewrite` whenever the peek
//! succeeds. Properties: never panics; when the body is a JSON object, the rewritten body
//! is a JSON object whose `model` is the new one, with `stream_options.include_usage`
//! true when forced, and it peeks again.
//!
//! Bounds: an accepted request asks for at most `MAX_CHOICES` choices and, for
//! embeddings and legacy completions, at most `MAX_INPUTS` inputs; its message and tool
//! counts are those of the body.
//!
//! `peek` must also reject every body that is not a JSON object: this target found two it
//! accepted (a top-level array in serde's sequence form, and invalid UTF-8 inside a value
//! it skips; both kept as seeds `regression_*`), since fixed. `LLMUX_FUZZ_STRICT=0`
//! turns that assertion off.

#![no_main]

mod common;

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use llmux_wire::openai::peek::{Endpoint, MAX_CHOICES, MAX_INPUTS, peek, rewrite};

fn strict() -> bool {
    static STRICT: OnceLock<bool> = OnceLock::new();
    *STRICT.get_or_init(|| std::env::var_os("LLMUX_FUZZ_STRICT").is_none_or(|value| value != "0"))
}

/// A JSON object by the grammar (UTF-8, lone surrogate escapes allowed), which is what a
/// strict `peek` should require.
fn is_object_syntax(data: &[u8]) -> bool {
    std::str::from_utf8(data).is_ok()
        && serde_json::from_slice::<&serde_json::value::RawValue>(data).is_ok()
        && data.trim_ascii_start().first() == Some(&b'{')
}

fuzz_target!(|data: &[u8]| {
    let mut is_object = None;
    for endpoint in [Endpoint::ChatCompletions, Endpoint::Completions, Endpoint::Embeddings] {
        let Ok(peeked) = peek(data, endpoint) else {
            continue;
        };
        assert!(!peeked.model.is_empty());
        assert!((1..=MAX_CHOICES).contains(&peeked.n));
        let is_object = *is_object.get_or_insert_with(|| {
            serde_json::from_slice::<serde_json::Value>(data).is_ok_and(|value| value.is_object())
        });
        if is_object {
            let value: serde_json::Value = serde_json::from_slice(data).unwrap_or_default();
            let count = |field: &str| value.get(field).and_then(serde_json::Value::as_array).map_or(0, Vec::len);
            assert_eq!((peeked.messages, peeked.tools), (count("messages"), count("tools")));
            let field = if endpoint == Endpoint::Completions { "prompt" } else { "input" };
            if endpoint != Endpoint::ChatCompletions
                && let Some(items) = value.get(field).and_then(serde_json::Value::as_array)
                && !items.iter().all(serde_json::Value::is_number)
            {
                assert!(items.len() <= MAX_INPUTS, "{endpoint:?} accepted {} inputs", items.len());
            }
        }
        if !is_object {
            assert!(
                !strict() || is_object_syntax(data),
                "peek accepted a body that is not a JSON object for {endpoint:?}: {}",
                String::from_utf8_lossy(data)
            );
            // Whatever it is, rewriting it must not panic.
            let _ = rewrite(data, &peeked, common::UPSTREAM_MODEL, true);
            continue;
        }
        for force_include_usage in [false, true] {
            let body = rewrite(data, &peeked, common::UPSTREAM_MODEL, force_include_usage);
            let value = common::json_with_model(&body, common::UPSTREAM_MODEL, "peek::rewrite");
            if force_include_usage {
                let include_usage = value.pointer("/stream_options/include_usage").and_then(serde_json::Value::as_bool);
                assert_eq!(
                    include_usage,
                    Some(true),
                    "peek::rewrite: include_usage not forced in {}",
                    String::from_utf8_lossy(&body)
                );
            }
            // A rewritten body is still a valid request for the same endpoint.
            let again = peek(&body, endpoint).unwrap_or_else(|error| {
                panic!("peek rejects its own rewrite ({error:?}): {}", String::from_utf8_lossy(&body))
            });
            assert_eq!(again.model, common::UPSTREAM_MODEL);
            assert_eq!((again.stream, again.max_tokens, again.n), (peeked.stream, peeked.max_tokens, peeked.n));
            assert!(again.include_usage || !force_include_usage);
        }
    }
});
