//! A provider's prompt cache, simulated: a fake answering with
//! [`Reply::chat_with_prompt_cache`](crate::Reply::chat_with_prompt_cache) (or the
//! Anthropic [`Reply::message_with_prompt_cache`](crate::Reply::message_with_prompt_cache))
//! remembers the prompts it answered and reports as cached the longest prefix of a new
//! prompt that an earlier one had, as providers' prefix caches do.
//!
//! A prompt is a sequence of parts: the tool definitions and the top-level `system`
//! (Anthropic) as one leading part when present, then each message. A prefix counts only
//! whole parts; each part costs a quarter of its JSON length in tokens (rounded up).
//! Nothing is ever evicted.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hasher};

use serde_json::{Value, json};

/// The prompts one fake has answered, as hashes of every prefix of them.
#[derive(Debug, Default)]
pub struct PromptCache {
    prefixes: HashSet<u64>,
}

/// What a request's prompt costs: all its tokens, and those an earlier prompt had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromptTokens {
    pub prompt: u64,
    pub cached: u64,
}

impl PromptCache {
    /// The tokens of `request`'s prompt and the cached part; remembers its prefixes.
    pub fn serve(&mut self, request: &Value) -> PromptTokens {
        let mut parts = Vec::new();
        let preamble: serde_json::Map<String, Value> = ["tools", "system"]
            .iter()
            .filter_map(|name| request.get(*name).map(|value| ((*name).to_owned(), value.clone())))
            .collect();
        if !preamble.is_empty() {
            parts.push(Value::Object(preamble).to_string());
        }
        if let Some(messages) = request.get("messages").and_then(Value::as_array) {
            parts.extend(messages.iter().map(Value::to_string));
        }
        let mut hasher = DefaultHasher::new();
        let mut tokens = PromptTokens { prompt: 0, cached: 0 };
        let mut seen = Vec::with_capacity(parts.len());
        for part in &parts {
            hasher.write(part.as_bytes());
            hasher.write_u8(0xff);
            let prefix = hasher.finish();
            tokens.prompt += (part.len() as u64).div_ceil(4);
            if self.prefixes.contains(&prefix) {
                tokens.cached = tokens.prompt;
            }
            seen.push(prefix);
        }
        self.prefixes.extend(seen);
        tokens
    }
}

/// An OpenAI chat completion answering `text`, its usage with the cached part in
/// `prompt_tokens_details.cached_tokens`.
pub(crate) fn chat_body(text: &str, tokens: PromptTokens) -> String {
    let completion = (text.len() as u64).div_ceil(4).max(1);
    json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1,
        "model": "fake-upstream-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": null, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": tokens.prompt,
            "completion_tokens": completion,
            "total_tokens": tokens.prompt + completion,
            "prompt_tokens_details": {"cached_tokens": tokens.cached}
        }
    })
    .to_string()
}

/// An Anthropic message answering `text`: `input_tokens` is the uncached part, the cached
/// part is `cache_read_input_tokens` (no cache writes are reported).
pub(crate) fn message_body(text: &str, tokens: PromptTokens) -> String {
    json!({
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": "fake-upstream-model",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": null,
        "usage": {
            "input_tokens": tokens.prompt - tokens.cached,
            "cache_read_input_tokens": tokens.cached,
            "cache_creation_input_tokens": 0,
            "output_tokens": (text.len() as u64).div_ceil(4).max(1)
        }
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(messages: &[&str]) -> Value {
        let messages: Vec<Value> = messages.iter().map(|text| json!({"role": "user", "content": text})).collect();
        json!({"model": "m", "system": "be brief", "messages": messages})
    }

    #[test]
    fn the_longest_prefix_answered_before_is_cached() {
        let mut cache = PromptCache::default();
        let first = cache.serve(&request(&["one", "two"]));
        assert_eq!(first.cached, 0);
        // The same prompt grown by a message: all of the first is cached.
        let second = cache.serve(&request(&["one", "two", "three"]));
        assert_eq!(second.cached, first.prompt);
        assert!(second.prompt > first.prompt);
        // A prompt that diverges after the first message: that far.
        let diverged = cache.serve(&request(&["one", "other"]));
        let one = PromptCache::default().serve(&request(&["one"])).prompt;
        assert_eq!(diverged.cached, one);
        // Another system prompt shares nothing; another cache has seen nothing.
        let other = json!({"model": "m", "system": "be long", "messages": [{"role": "user", "content": "one"}]});
        assert_eq!(cache.serve(&other).cached, 0);
        assert_eq!(PromptCache::default().serve(&request(&["one", "two", "three"])).cached, 0);
    }
}
