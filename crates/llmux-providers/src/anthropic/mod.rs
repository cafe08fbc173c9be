//! Anthropic: the Messages API (`POST {base_url}/v1/messages`; `base_url` is the bare
//! host). Auth is `x-api-key` plus the required `anthropic-version` header. Requests
//! and answers are translated through the canonical model
//! (`llmux_wire::anthropic::upstream`).

use llmux_types::Currency;

use llmux_types::chat::{ChatRequest, ChatResponse};
use llmux_wire::openai::peek::Endpoint;
use llmux_wire::{DecodeError, Dialect, UpstreamDecoder};

use crate::{Adapter, AuthStyle, Preset, ProviderSpec, Quirks};

/// The API version every current client sends.
pub const API_VERSION: &str = "2023-06-01";

/// `max_tokens` when the client gave none (Anthropic requires one).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

pub static PRESET: Preset = Preset {
    kind: "anthropic",
    adapter: &AnthropicAdapter,
    base_url: Some("https://api.anthropic.com"),
    auth: AuthStyle::XApiKey,
    key_required: true,
    // Anthropic's supported-regions page; operators can override per provider entry.
    regions: &["!CN", "!HK", "!MO", "!RU", "!BY", "!IR", "!KP", "!SY", "!CU"],
    currency: Currency::USD,
    // Per million tokens: input, output, cache read. Cache writes cost 1.25× input for
    // the default five-minute cache (`cache_write_percent`); one-hour writes cost 2× and
    // are priced as five-minute ones unless a route overrides `cache_write_input`.
    prices: &[
        ("claude-opus-4-6", "5", "25", "0.5"),
        ("claude-sonnet-4-6", "3", "15", "0.3"),
        ("claude-haiku-4-5", "1", "5", "0.1"),
    ],
    quirks: Quirks { stream_usage: false, responses_api: false },
    env_key: Some("ANTHROPIC_API_KEY"),
    cache_write_percent: 125,
};

/// The Messages URL of a provider entry.
pub fn messages_url(base_url: &str) -> String {
    format!("{}/v1/messages", base_url.trim_end_matches('/'))
}

/// The Messages API: every call goes to `/v1/messages`.
#[derive(Debug)]
pub struct AnthropicAdapter;

impl Adapter for AnthropicAdapter {
    fn native(&self) -> Option<Dialect> {
        Some(Dialect::Anthropic)
    }

    fn speaks_responses(&self) -> bool {
        false
    }

    fn url(&self, spec: &ProviderSpec, _endpoint: Endpoint, _upstream_model: &str, _stream: bool) -> String {
        messages_url(&spec.base_url)
    }

    fn headers(&self, headers: &mut http::HeaderMap) {
        headers.insert("anthropic-version", http::HeaderValue::from_static(API_VERSION));
    }

    fn chat_request(&self, request: &ChatRequest, upstream_model: &str) -> (Vec<u8>, Vec<&'static str>) {
        llmux_wire::anthropic::upstream::messages_request(request, upstream_model, DEFAULT_MAX_TOKENS)
    }

    fn chat_response(&self, body: &[u8]) -> Result<ChatResponse, DecodeError> {
        llmux_wire::anthropic::upstream::messages_response(body)
    }

    fn stream_decoder(&self) -> Box<dyn UpstreamDecoder> {
        Box::new(llmux_wire::anthropic::upstream::EventDecoder::new())
    }

    fn probe_path(&self) -> Option<&'static str> {
        Some("/v1/models")
    }
}
