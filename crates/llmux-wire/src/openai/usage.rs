//! Reading token usage (and errors) out of OpenAI-dialect upstream bodies and stream
//! chunks, including the vendor variants (DeepSeek's `prompt_cache_hit_tokens`).

use llmux_types::Usage;
use serde::Deserialize;
use serde::de::IgnoredAny;

#[derive(Deserialize, Default)]
pub(crate) struct UsageWire {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    prompt_tokens_details: Option<PromptDetails>,
    completion_tokens_details: Option<CompletionDetails>,
    /// DeepSeek and SiliconFlow.
    prompt_cache_hit_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct PromptDetails {
    cached_tokens: Option<u64>,
    /// 2026 spec field: prompt tokens written to the cache.
    cache_write_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct CompletionDetails {
    reasoning_tokens: Option<u64>,
}

impl From<UsageWire> for Usage {
    fn from(wire: UsageWire) -> Usage {
        let cached = wire
            .prompt_tokens_details
            .as_ref()
            .and_then(|details| details.cached_tokens)
            .or(wire.prompt_cache_hit_tokens)
            .unwrap_or(0);
        let cache_write = wire.prompt_tokens_details.and_then(|details| details.cache_write_tokens).unwrap_or(0);
        Usage {
            input_tokens: wire.prompt_tokens.unwrap_or(0),
            output_tokens: wire.completion_tokens.unwrap_or(0),
            cached_tokens: cached,
            reasoning_tokens: wire.completion_tokens_details.and_then(|details| details.reasoning_tokens).unwrap_or(0),
            cache_write_tokens: cache_write,
        }
    }
}

#[derive(Deserialize)]
struct BodyWire {
    usage: Option<UsageWire>,
    choices: Option<Vec<IgnoredAny>>,
}

/// Usage from a complete (non-streamed) response body; `None` if it has none.
///
/// Providers put `usage` last, so the object is looked for from the end and parsed
/// alone; only if that fails is the whole body parsed.
pub fn from_response(body: &[u8]) -> Option<Usage> {
    if let Some(usage) = usage_near_end(body) {
        return Some(usage);
    }
    let body: BodyWire = serde_json::from_slice(body).ok()?;
    body.usage.map(Usage::from)
}

/// Parses the last top-level-looking `"usage": {...}` member, if it closes the body.
fn usage_near_end(body: &[u8]) -> Option<Usage> {
    let at = memchr::memmem::rfind(body, b"\"usage\"")?;
    let rest = body[at + 7..].trim_ascii_start().strip_prefix(b":")?.trim_ascii_start();
    if !rest.starts_with(b"{") {
        return None;
    }
    // The object must be followed only by the body's closing brace.
    let mut stream = serde_json::Deserializer::from_slice(rest).into_iter::<UsageWire>();
    let usage = stream.next()?.ok()?;
    let tail = rest[stream.byte_offset()..].trim_ascii();
    (tail == b"}").then(|| Usage::from(usage))
}

/// What one stream chunk's `data` means to the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    /// The `[DONE]` terminator.
    Done,
    /// An in-band error object (`{"error": {...}}`).
    Error,
    /// A regular chunk. `usage_only` marks the extra chunk that `include_usage`
    /// adds (`choices: []` with usage), which is stripped if the client did not ask.
    Data { usage: Option<Usage>, usage_only: bool },
}

/// Classifies one chunk. Parses JSON only when the chunk carries usage or an error,
/// which happens once per stream; other chunks cost a couple of byte searches.
pub fn classify_chunk(data: &[u8]) -> Chunk {
    let trimmed = data.trim_ascii();
    if trimmed == b"[DONE]" {
        return Chunk::Done;
    }
    if first_key_is(trimmed, b"\"error\"") {
        return Chunk::Error;
    }
    if !has_non_null_usage(trimmed) {
        return Chunk::Data { usage: None, usage_only: false };
    }
    match serde_json::from_slice::<BodyWire>(trimmed) {
        Ok(body) => Chunk::Data {
            usage_only: body.choices.as_ref().is_some_and(Vec::is_empty),
            usage: body.usage.map(Usage::from),
        },
        Err(_) => Chunk::Data { usage: None, usage_only: false },
    }
}

/// Whether an object's first key is `key` (quoted).
fn first_key_is(object: &[u8], key: &[u8]) -> bool {
    let Some(rest) = object.strip_prefix(b"{") else { return false };
    rest.trim_ascii_start().starts_with(key)
}

/// Whether `"usage"` appears as a key with a non-null value.
fn has_non_null_usage(data: &[u8]) -> bool {
    let finder = memchr::memmem::Finder::new(b"\"usage\"");
    let mut from = 0;
    while let Some(found) = finder.find(&data[from..]) {
        let after = &data[from + found + 7..];
        let after = after.trim_ascii_start();
        if let Some(value) = after.strip_prefix(b":") {
            return !value.trim_ascii_start().starts_with(b"null");
        }
        from += found + 7;
    }
    false
}
