//! The provider adapter: everything the gateway needs of a provider kind, behind one
//! trait. A kind's preset names its adapter (`Preset::adapter`); the gateway calls the
//! adapter and never asks which kind it is.
//!
//! An adapter is pure: it builds URLs and bodies, decodes answers and classifies
//! errors, and does no I/O (the gateway sends through [`crate::client`]).

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use llmux_types::Usage;
use llmux_types::chat::{ChatRequest, ChatResponse, StreamEvent};
use llmux_wire::openai::peek::Endpoint;
use llmux_wire::{DecodeError, Dialect, UpstreamDecoder};

use crate::{ProviderSpec, UpstreamError};

/// The upstream API a route's model is reached through by the canonical path: Chat
/// Completions (or the kind's own chat API), or OpenAI's Responses API (for models that
/// exist only there, such as o3-pro and the codex models).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Api {
    #[default]
    Chat,
    Responses,
}

impl Api {
    /// The config spelling (`api = "responses"` on a route).
    pub fn as_str(&self) -> &'static str {
        match self {
            Api::Chat => "chat",
            Api::Responses => "responses",
        }
    }
}

/// What a provider kind does. The defaults are the OpenAI dialect's, which most
/// providers speak: `{base_url}{endpoint path}`, Chat Completions bodies and chunks,
/// OpenAI-shaped errors, and the Responses API where an entry serves it.
pub trait Adapter: Send + Sync + fmt::Debug {
    /// The client dialect this provider speaks itself, if any: such a client's body
    /// is forwarded with only `model` rewritten, and the answer's bytes come back as
    /// they are (the same-dialect fast path).
    fn native(&self) -> Option<Dialect> {
        Some(Dialect::OpenAi)
    }

    /// The URL of a call at `endpoint` (a native body) or of a chat made through the
    /// canonical model (`endpoint` is then `ChatCompletions`); `stream` is whether the
    /// answer streams.
    fn url(&self, spec: &ProviderSpec, endpoint: Endpoint, _upstream_model: &str, _stream: bool) -> String {
        format!("{}{}", spec.base_url.trim_end_matches('/'), endpoint.path())
    }

    /// Whether [`url`](Self::url) depends on the endpoint alone, so it can be
    /// computed once per configuration.
    fn fixed_urls(&self) -> bool {
        true
    }

    /// Whether a provider entry of this kind may set `api_version`.
    fn takes_api_version(&self) -> bool {
        false
    }

    /// Headers every request carries besides the key and the entry's own.
    fn headers(&self, _headers: &mut http::HeaderMap) {}

    /// A canonical chat request as this provider's body, with the request parameters
    /// its dialect cannot hold (dropped, and reported to the client).
    fn chat_request(&self, request: &ChatRequest, upstream_model: &str) -> (Vec<u8>, Vec<&'static str>) {
        use llmux_wire::openai::upstream::{chat_request, dropped};
        (chat_request(request, upstream_model), dropped(request))
    }

    /// [`chat_request`](Self::chat_request) for a route whose model takes reasoning
    /// controls (`reasoning = true`, allowed only on OpenAI-dialect providers): the body
    /// carries `reasoning_effort`.
    fn reasoning_chat_request(&self, request: &ChatRequest, upstream_model: &str) -> (Vec<u8>, Vec<&'static str>) {
        use llmux_wire::openai::upstream::{RequestOptions, chat_request_with, dropped_with};
        let options = RequestOptions { reasoning_effort: true, ..RequestOptions::default() };
        (chat_request_with(request, upstream_model, &options), dropped_with(request, &options))
    }

    /// A complete (non-streamed) chat answer, decoded.
    fn chat_response(&self, body: &[u8]) -> Result<ChatResponse, DecodeError> {
        llmux_wire::openai::upstream::chat_response(body)
    }

    /// The decoder of a streamed chat answer (SSE `data` payloads).
    fn stream_decoder(&self) -> Box<dyn UpstreamDecoder> {
        Box::new(llmux_wire::openai::upstream::ChunkDecoder::new())
    }

    /// Whether provider entries of this kind can serve OpenAI's Responses API at
    /// `Endpoint::Responses` (an entry says whether it does: `responses_api`, defaulting
    /// to the preset's `quirks.responses_api`).
    fn speaks_responses(&self) -> bool {
        true
    }

    /// Whether this provider entry takes Responses API bodies as they are: a Responses
    /// client's body (one llmux keeps no state for) is forwarded with only `model`
    /// rewritten, and a route declared `api = "responses"` is reached there.
    fn responses_native(&self, spec: &ProviderSpec) -> bool {
        self.speaks_responses() && spec.responses_api
    }

    /// A canonical chat request as a Responses API body, with the request parameters
    /// that body cannot hold (dropped, and reported to the client).
    fn responses_request(&self, request: &ChatRequest, upstream_model: &str) -> (Vec<u8>, Vec<&'static str>) {
        use llmux_wire::responses::upstream::{dropped, request_body};
        (request_body(request, upstream_model), dropped(request))
    }

    /// A complete (non-streamed) Responses API answer, decoded.
    fn responses_response(&self, body: &[u8]) -> Result<ChatResponse, DecodeError> {
        llmux_wire::responses::upstream::decode_response(body)
    }

    /// The decoder of a streamed Responses API answer (SSE `data` payloads).
    fn responses_decoder(&self) -> Box<dyn UpstreamDecoder> {
        Box::new(llmux_wire::responses::upstream::EventDecoder::new())
    }

    /// What an error answer (non-2xx `status`, the start of its body) means.
    fn classify(&self, status: u16, retry_after: Option<Duration>, body: &[u8]) -> UpstreamError {
        UpstreamError::from_openai_response(status, retry_after, body)
    }

    /// The path below `base_url` of a cheap GET that shows whether the provider
    /// answers (its model list), if it has one.
    fn probe_path(&self) -> Option<&'static str> {
        None
    }

    /// For a provider that answers inside llmux (the mock): how it answers.
    fn local(&self) -> Option<&dyn Local> {
        None
    }
}

impl dyn Adapter {
    /// A canonical chat request as the body of `api` ([`Adapter::chat_request`] or
    /// [`Adapter::responses_request`]).
    pub fn request_for(
        &self,
        api: Api,
        reasoning: bool,
        request: &ChatRequest,
        upstream_model: &str,
    ) -> (Vec<u8>, Vec<&'static str>) {
        match api {
            Api::Chat if reasoning => self.reasoning_chat_request(request, upstream_model),
            Api::Chat => self.chat_request(request, upstream_model),
            Api::Responses => self.responses_request(request, upstream_model),
        }
    }

    /// A complete answer of `api`, decoded.
    pub fn response_for(&self, api: Api, body: &[u8]) -> Result<ChatResponse, DecodeError> {
        match api {
            Api::Chat => self.chat_response(body),
            Api::Responses => self.responses_response(body),
        }
    }

    /// The stream decoder of `api`.
    pub fn decoder_for(&self, api: Api) -> Box<dyn UpstreamDecoder> {
        match api {
            Api::Chat => self.stream_decoder(),
            Api::Responses => self.responses_decoder(),
        }
    }
}

/// A provider answered inside llmux, without network: computes answers (pure).
pub trait Local: Send + Sync {
    /// How long to wait before answering.
    fn latency(&self, spec: &ProviderSpec) -> Duration;

    /// A chat answer in the canonical model with id `id`, and its stream events when
    /// `request` streams (with the pause between text chunks).
    fn chat(&self, call: LocalCall<'_>, request: &ChatRequest, id: &str) -> LocalChat;

    /// An answer in the provider's native dialect to a body for `endpoint` (for the
    /// endpoints other than chat).
    fn native(&self, call: LocalCall<'_>, endpoint: Endpoint, body: &[u8]) -> Result<LocalAnswer, DecodeError>;
}

/// What every local answer needs: the provider entry, the route's model, the time.
#[derive(Clone, Copy)]
pub struct LocalCall<'a> {
    pub spec: &'a ProviderSpec,
    pub upstream_model: &'a str,
    /// Unix milliseconds (wall clock), for ids and creation times.
    pub now_ms: i64,
}

/// A local chat answer.
pub struct LocalChat {
    pub response: ChatResponse,
    /// The events of a streamed answer and the pause between text chunks.
    pub stream: Option<(Vec<StreamEvent<'static>>, Duration)>,
}

/// A local answer already in the provider's native dialect.
pub struct LocalAnswer {
    pub body: Bytes,
    pub usage: Usage,
    /// Whether `body` is an SSE stream (sent as one piece).
    pub streamed: bool,
}
