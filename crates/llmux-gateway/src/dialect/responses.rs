//! The OpenAI Responses API (`POST /v1/responses`), as Codex CLI and agent SDKs speak
//! it: the request decodes to the canonical model and goes to any provider through the
//! canonical path; the answer is a response object, or the API's event sequence.
//!
//! With `store: true` (the API's default) the answer is kept (`stored`), and a later
//! request may continue it with `previous_response_id`: the stored conversation is put
//! before the new input, whichever provider answers. A provider that serves the
//! Responses API itself gets a request llmux keeps no state for (`store: false`, no
//! `previous_response_id`) as it is (`responses_native`), and any other request through
//! the canonical model as a Responses API body.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use llmux_providers::Api;
use llmux_store::Store;
use llmux_types::chat::Role;
use llmux_wire::DecodeError;
use llmux_wire::responses::decode::{ResponsesRequest, responses_request};
use llmux_wire::responses::encode::Echo;

use super::{ClientDialect, Encoding, Resolving, estimate_input_tokens, responses_native};
use crate::attempt::{self, Success, Tried};
use crate::auth::Caller;
use crate::error::GatewayError;
use crate::router::{DEFAULT_OUTPUT_ESTIMATE, TokenEstimate};
use crate::runtime::Upstream;
use crate::stored::{self, Keep};
use crate::{auth, clock};

/// A Responses API request, and where its responses are kept.
pub(crate) struct Responses<'g> {
    pub store: &'g Arc<dyn Store>,
    /// How long a stored response lives; zero: nothing is stored.
    pub ttl: Duration,
    /// The most a stored conversation may hold (bytes of its items and last response):
    /// what one request may carry (`server.max_body_bytes`), so that a chain of
    /// `previous_response_id` never grows past what a client could send itself.
    pub max_bytes: usize,
}

/// A decoded request with the identity of the response it gets.
pub(crate) struct ResponsesCall {
    request: ResponsesRequest,
    /// `resp_` + 24 random base62 characters.
    id: String,
    created_at: u64,
    echo: Echo,
    /// Where the answer is kept (`store: true`).
    keep: Option<Keep>,
    /// The request needs no state kept by llmux (`store: false`, no
    /// `previous_response_id`): see [`ResponsesCall::stateless`].
    stateless: bool,
}

impl ResponsesCall {
    /// Whether the request needs no state kept by llmux, so that a provider serving the
    /// Responses API can take its body as it is (the same-dialect path).
    pub(crate) fn stateless(&self) -> bool {
        self.stateless
    }
}

impl ClientDialect for Responses<'_> {
    type Request<'b> = ResponsesCall;

    fn parse(&self, body: &Bytes) -> Result<ResponsesCall, DecodeError> {
        let mut request = responses_request(body)?;
        let stateless = !request.store && request.previous_response_id.is_none();
        if self.ttl.is_zero() {
            if request.previous_response_id.is_some() {
                return Err(DecodeError::new(
                    Some("previous_response_id"),
                    "previous_response_id is not available: this gateway stores no responses; send the whole \
                     conversation as `input`",
                ));
            }
            // Nothing is stored: the answer says so.
            request.store = false;
            request.input = None;
        }
        let echo = Echo::of(&request);
        Ok(ResponsesCall {
            request,
            id: format!("resp_{}", auth::random_base62(24)),
            created_at: clock::wall_s(),
            echo,
            keep: None,
            stateless,
        })
    }

    fn resolve<'a, 'b: 'a>(&'a self, call: &'a mut ResponsesCall, caller: &'a Caller) -> Option<Resolving<'a>> {
        let keeps = call.request.store && !self.ttl.is_zero();
        if call.request.previous_response_id.is_none() && !keeps {
            return None;
        }
        Some(Box::pin(self.continue_and_keep(call, caller)))
    }

    fn model(call: &ResponsesCall) -> &str {
        &call.request.chat.model
    }

    fn conversation<'r>(&self, call: &'r ResponsesCall, meta: &'r crate::RequestMeta) -> super::ConversationName<'r> {
        super::responses_conversation(&call.request, &call.id, meta)
    }

    fn shape(call: &ResponsesCall) -> crate::bounds::Shape {
        crate::bounds::Shape { messages: call.request.chat.messages.len(), tools: call.request.chat.tools.len() }
    }

    fn estimate(call: &ResponsesCall, _body: &Bytes) -> TokenEstimate {
        let chat = &call.request.chat;
        TokenEstimate { input: estimate_input_tokens(chat), output: chat.max_tokens.unwrap_or(DEFAULT_OUTPUT_ESTIMATE) }
    }

    async fn attempt<'a, 'b: 'a>(&'a self, call: &'a ResponsesCall, body: &'a Bytes, upstream: Upstream<'a>) -> Tried {
        let encoding = Encoding::Responses {
            id: &call.id,
            created_at: call.created_at,
            echo: &call.echo,
            keep: call.keep.as_ref(),
        };
        let tried = if let Some(local) = upstream.adapter.local() {
            attempt::local_chat(upstream, local, &call.request.chat, encoding).await
        } else if upstream.adapter.responses_native(upstream.provider) {
            let forwarded = match call.stateless() {
                true => responses_native::forward(upstream, call.request.chat.stream, body).await,
                false => None,
            };
            match forwarded {
                Some(tried) => tried,
                // State kept by llmux (or a body whose model cannot be rewritten): the
                // canonical path, still to the provider's Responses API.
                None => attempt::translated_via(upstream, Api::Responses, &call.request.chat, encoding).await,
            }
        } else {
            attempt::translated(upstream, &call.request.chat, encoding).await
        };
        // A whole answer is kept before it is returned (a stream, before its last event).
        if let (Ok(success), Some(keep)) = (&tried, &call.keep)
            && let Some(body) = success.full_body()
        {
            keep.save(body).await;
        }
        tried
    }
}

impl Responses<'_> {
    /// Puts the conversation `call` continues before its input, and prepares the
    /// record its answer is kept in.
    async fn continue_and_keep(&self, call: &mut ResponsesCall, caller: &Caller) -> Result<(), GatewayError> {
        let previous = match call.request.previous_response_id.as_deref() {
            None => None,
            Some(id) => Some(stored::load(self.store.as_ref(), caller, id).await.map_err(|error| match error {
                GatewayError::NotFound(_) => GatewayError::BadRequest(DecodeError::new(
                    Some("previous_response_id"),
                    format!("Previous response with id '{id}' not found."),
                )),
                error => error,
            })?),
        };
        let too_large = |id: &str| {
            GatewayError::BadRequest(DecodeError::new(
                Some("previous_response_id"),
                format!(
                    "The conversation of response '{id}' would exceed this gateway's request limit of {} bytes; \
                     start a new conversation (or send the items you need as `input`).",
                    self.max_bytes
                ),
            ))
        };
        if let Some(previous) = &previous {
            if previous.input_items.len() + previous.response.len() > self.max_bytes {
                return Err(too_large(&previous.id));
            }
            let messages = &mut call.request.chat.messages;
            // After the request's own instructions, which replace the earlier ones.
            let at = usize::from(
                call.request.echoed.contains_key("instructions")
                    && messages.first().is_some_and(|first| first.role == Role::System),
            );
            messages.splice(at..at, stored::history(previous)?);
        }
        if call.request.store && !self.ttl.is_zero() {
            let items = stored::items(previous.as_ref(), call.request.input.as_deref());
            if items.len() > self.max_bytes {
                return Err(too_large(previous.as_ref().map_or(call.id.as_str(), |previous| previous.id.as_str())));
            }
            call.keep = Some(Keep::new(self.store.clone(), caller, &call.id, items, self.ttl));
        }
        Ok(())
    }
}

impl Success {
    /// The body of a complete (non-streamed) answer.
    fn full_body(&self) -> Option<&Bytes> {
        match self {
            Success::Full { body, .. } => Some(body),
            Success::Lossy { answer, .. } => answer.full_body(),
            _ => None,
        }
    }
}
