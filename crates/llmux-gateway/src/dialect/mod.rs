//! Client dialects: everything a wire format clients speak needs, one module each
//! (`openai`, `anthropic`, `responses` with its same-dialect path in `responses_native`).
//! A dialect reads its requests (what admission needs: the model and a size estimate;
//! what names the conversation), tries a route (its own fast path where the provider
//! speaks it, else the canonical path of `attempt`), encodes canonical answers and
//! streams, and renders errors, model lists and headers. The lifecycle
//! ([`Gateway::serve`](crate::Gateway)) is the same for all of them.

mod anthropic;
mod openai;
mod responses;
mod responses_native;

use std::borrow::Cow;
use std::future::Future;

use bytes::Bytes;
use llmux_types::chat::{ChatRequest, ChatResponse, ContentPart};
use llmux_wire::DecodeError;
pub use llmux_wire::Dialect;
use llmux_wire::responses::decode::ResponsesRequest;
use llmux_wire::responses::encode::Echo;
use serde_json::value::RawValue;

pub(crate) use self::anthropic::Anthropic;
pub(crate) use self::openai::OpenAi;
pub(crate) use self::responses::Responses;
pub(crate) use crate::affinity::ConversationName;
use crate::attempt::Tried;
use crate::auth::Caller;
use crate::error::{ErrorRow, GatewayError};
use crate::failover::Attempts;
use crate::outcome::RequestMeta;
use crate::relay::EventEncoder;
use crate::route::Candidate;
use crate::router::TokenEstimate;
use crate::runtime::{Runtime, Upstream};
use crate::stored::Keep;

/// How a client dialect's requests go through the lifecycle.
pub(crate) trait ClientDialect: Sync {
    /// A request as read from its body (it may borrow from it).
    type Request<'b>: Sync;

    /// Reads a request body.
    fn parse<'b>(&self, body: &'b Bytes) -> Result<Self::Request<'b>, DecodeError>;

    /// Completes a parsed request with what the store holds for it, once the caller
    /// is known (the Responses API's `previous_response_id`); `None`: nothing to do.
    fn resolve<'a, 'b: 'a>(
        &'a self,
        _request: &'a mut Self::Request<'b>,
        _caller: &'a Caller,
    ) -> Option<Resolving<'a>> {
        None
    }

    /// The public model name the request asks for.
    fn model<'r>(request: &'r Self::Request<'_>) -> &'r str;

    /// How many messages and tools the request holds (checked against the server's
    /// limits, `bounds`).
    fn shape(request: &Self::Request<'_>) -> crate::bounds::Shape;

    /// The request's size, for budget reservations and the `cost` strategy.
    fn estimate(request: &Self::Request<'_>, body: &Bytes) -> TokenEstimate;

    /// What names the request's conversation, from what its clients already send (for
    /// route affinity, `affinity`).
    fn conversation<'r>(&self, request: &'r Self::Request<'_>, meta: &'r RequestMeta) -> ConversationName<'r>;

    /// One attempt at the route `upstream` leads to.
    fn attempt<'a, 'b: 'a>(
        &'a self,
        request: &'a Self::Request<'b>,
        body: &'a Bytes,
        upstream: Upstream<'a>,
    ) -> impl Future<Output = Tried> + Send + 'a;
}

/// A request being completed from the store (see [`ClientDialect::resolve`]).
pub(crate) type Resolving<'a> = std::pin::Pin<Box<dyn Future<Output = Result<(), GatewayError>> + Send + 'a>>;

/// The attempts of one request in dialect `D`: what failover calls per route.
pub(crate) struct DialectAttempts<'r, 'b, D: ClientDialect> {
    pub dialect: &'r D,
    pub request: &'r D::Request<'b>,
    pub body: &'b Bytes,
    pub runtime: &'r Runtime,
}

impl<D: ClientDialect> Attempts for DialectAttempts<'_, '_, D> {
    fn run(&self, candidate: Candidate) -> impl Future<Output = Tried> + Send {
        self.dialect.attempt(self.request, self.body, self.runtime.upstream(candidate))
    }
}

/// A Responses API request's conversation: `prompt_cache_key` (Codex CLI sends its
/// session id there), else `previous_response_id` (pinned by the previous turn under its
/// response id), else a session header, else `user`. A response that is stored names the
/// next turn too (its `id`, which the next turn sends as `previous_response_id`).
pub(crate) fn responses_conversation<'r>(
    request: &'r ResponsesRequest,
    id: &'r str,
    meta: &'r RequestMeta,
) -> ConversationName<'r> {
    let extension = |name| request.chat.extensions.get(name).and_then(|raw| json_string(raw));
    let this = extension("prompt_cache_key")
        .or_else(|| request.previous_response_id.as_deref().map(Cow::Borrowed))
        .or_else(|| meta.session.as_deref().map(Cow::Borrowed))
        .or_else(|| extension("user"));
    ConversationName { this, next: request.store.then_some(id) }
}

/// A JSON string's text (borrowed where it has no escapes); `None` for other values.
pub(crate) fn json_string(raw: &RawValue) -> Option<Cow<'_, str>> {
    match serde_json::from_str::<&str>(raw.get()) {
        Ok(text) => Some(Cow::Borrowed(text)),
        Err(_) => serde_json::from_str::<String>(raw.get()).ok().map(Cow::Owned),
    }
}

/// How canonical answers are encoded for a client.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Encoding<'a> {
    /// An OpenAI chat client; `include_usage` is whether it asked for the final usage
    /// chunk of a stream.
    OpenAi {
        include_usage: bool,
    },
    Anthropic,
    /// A Responses API client: the response's own id and time, what it echoes, and
    /// where it is kept (`store: true`).
    Responses {
        id: &'a str,
        created_at: u64,
        echo: &'a Echo,
        keep: Option<&'a Keep>,
    },
}

impl Encoding<'_> {
    pub(crate) fn stream_encoder(self, model: &str) -> Box<dyn EventEncoder> {
        match self {
            Encoding::OpenAi { include_usage } => {
                Box::new(llmux_wire::openai::encode::ChatStreamEncoder::new(include_usage))
            }
            Encoding::Anthropic => Box::new(llmux_wire::anthropic::encode::MessagesStreamEncoder::new(model)),
            Encoding::Responses { id, created_at, echo, keep } => {
                let encoder = llmux_wire::responses::encode::ResponsesStreamEncoder::new(id, created_at, echo.clone());
                match keep {
                    Some(keep) => Box::new(crate::relay::Keeping::new(encoder, keep.clone())),
                    None => Box::new(encoder),
                }
            }
        }
    }

    pub(crate) fn response(self, response: &ChatResponse) -> Vec<u8> {
        match self {
            Encoding::OpenAi { .. } => llmux_wire::openai::encode::chat_response(response),
            Encoding::Anthropic => llmux_wire::anthropic::encode::messages_response(response),
            Encoding::Responses { id, created_at, echo, .. } => {
                llmux_wire::responses::encode::response(id, created_at, echo, response)
            }
        }
    }

    /// The id prefix of answers made inside llmux (the mock), as the dialect's own ids look.
    pub(crate) fn mock_id_prefix(self) -> &'static str {
        match self {
            Encoding::OpenAi { .. } | Encoding::Responses { .. } => "chatcmpl-mock",
            Encoding::Anthropic => "msg_mock",
        }
    }
}

/// An error body in `dialect`'s shape, from a row of the error table.
pub fn error_body(dialect: Dialect, row: &ErrorRow, message: &str, param: Option<&str>) -> Vec<u8> {
    match dialect {
        Dialect::OpenAi => llmux_wire::openai::error::body(message, row.openai_type, Some(row.code), param),
        Dialect::Anthropic => llmux_wire::anthropic::error::error_body(row.anthropic_type, message),
    }
}

/// The response headers that carry the request id in `dialect` (the Anthropic SDKs
/// read `request-id`; every response also has `x-request-id`).
pub fn request_id_headers(dialect: Dialect) -> &'static [&'static str] {
    match dialect {
        Dialect::OpenAi => &["x-request-id"],
        Dialect::Anthropic => &["request-id", "x-request-id"],
    }
}

/// The model list `GET /v1/models` answers in `dialect`.
pub fn model_list<'a>(dialect: Dialect, names: impl IntoIterator<Item = &'a str>) -> Vec<u8> {
    match dialect {
        Dialect::OpenAi => llmux_wire::openai::encode::model_list(names),
        Dialect::Anthropic => llmux_wire::anthropic::encode::model_list(names),
    }
}

/// One model as `GET /v1/models/{id}` answers in `dialect`.
pub fn model(dialect: Dialect, id: &str) -> Vec<u8> {
    match dialect {
        Dialect::OpenAi => {
            serde_json::json!({"id": id, "object": "model", "created": 0, "owned_by": "llmux"}).to_string().into_bytes()
        }
        Dialect::Anthropic => llmux_wire::anthropic::encode::model(id),
    }
}

/// A rough input-token count of a canonical request: about four characters per token
/// of message text and tool definitions, plus a few tokens of framing per message.
pub(crate) fn estimate_input_tokens(request: &ChatRequest) -> u64 {
    let mut chars = 0usize;
    for message in &request.messages {
        chars += 12;
        for part in &message.content {
            if let ContentPart::Text(text) = part {
                chars += text.chars().count();
            }
        }
        for call in &message.tool_calls {
            chars += call.name.len() + call.arguments.len();
        }
    }
    for tool in &request.tools {
        chars += tool.name.len() + tool.description.as_deref().map_or(0, str::len);
        chars += tool.parameters.as_ref().map_or(0, |schema| schema.get().len());
    }
    (chars as u64).div_ceil(4).max(1)
}
