//! The OpenAI dialect: Chat Completions, legacy Completions and Embeddings. Requests
//! are only peeked (model, stream, limits); a provider that speaks OpenAI gets the
//! client's bytes with `model` spliced in and its answer relayed byte for byte. Any
//! other provider, and a route whose model exists only on the Responses API, gets the
//! chat request decoded into the canonical model.

use std::borrow::Cow;
use std::future::Future;

use bytes::Bytes;
use llmux_providers::{Api, ErrorKind, UpstreamError};
use llmux_types::chat::ChatRequest;
use llmux_wire::openai::peek::{Endpoint, Peek, peek, rewrite};
use llmux_wire::{DecodeError, Dialect};

use super::{ClientDialect, Encoding};
use crate::affinity::ConversationName;
use crate::attempt::{self, Success, bad_request};
use crate::outcome::RequestMeta;
use crate::router::{DEFAULT_OUTPUT_ESTIMATE, TokenEstimate};
use crate::runtime::Upstream;

/// An OpenAI request at one endpoint.
pub(crate) struct OpenAi {
    pub endpoint: Endpoint,
}

impl ClientDialect for OpenAi {
    type Request<'b> = Peek<'b>;

    fn parse<'b>(&self, body: &'b Bytes) -> Result<Peek<'b>, DecodeError> {
        peek(body, self.endpoint)
    }

    fn model<'r>(request: &'r Peek<'_>) -> &'r str {
        &request.model
    }

    fn shape(request: &Peek<'_>) -> crate::bounds::Shape {
        crate::bounds::Shape { messages: request.messages, tools: request.tools }
    }

    fn estimate(request: &Peek<'_>, body: &Bytes) -> TokenEstimate {
        // Each of the `n` choices may use the whole output allowance.
        let output = request.max_tokens.unwrap_or(DEFAULT_OUTPUT_ESTIMATE).saturating_mul(u64::from(request.n.max(1)));
        TokenEstimate { input: body.len() as u64 / 4, output }
    }

    /// `prompt_cache_key`, else a session header, else `user`; embeddings have no
    /// conversation.
    fn conversation<'r>(&self, request: &'r Peek<'_>, meta: &'r RequestMeta) -> ConversationName<'r> {
        if self.endpoint == Endpoint::Embeddings {
            return ConversationName::default();
        }
        let this = request.prompt_cache_key.as_deref().or(meta.session.as_deref()).or(request.user.as_deref());
        ConversationName { this: this.map(Cow::Borrowed), next: None }
    }

    fn attempt<'a, 'b: 'a>(
        &'a self,
        request: &'a Peek<'b>,
        body: &'a Bytes,
        upstream: Upstream<'a>,
    ) -> impl Future<Output = Result<Success, UpstreamError>> + Send + 'a {
        let endpoint = self.endpoint;
        async move {
            let chat = endpoint == Endpoint::ChatCompletions;
            if let Some(local) = upstream.adapter.local() {
                if !chat {
                    return attempt::local_native(upstream, local, endpoint, body).await;
                }
                let request = canonical(body)?;
                return attempt::local_chat(upstream, local, &request, encoding(&request)).await;
            }
            // A route to a model that exists only on the Responses API is reached
            // through the canonical model, whatever the provider speaks.
            let responses_only = upstream.route.api == Api::Responses;
            if upstream.adapter.native() == Some(Dialect::OpenAi) && !responses_only {
                return passthrough(upstream, endpoint, body, request).await;
            }
            if !chat {
                // Another route of the model may serve it.
                let serves = if responses_only {
                    "this route serves only the Responses API, not"
                } else {
                    "this provider does not serve"
                };
                return Err(UpstreamError {
                    message: Some(format!("{serves} {}", endpoint.path())),
                    ..UpstreamError::new(ErrorKind::NotFound)
                });
            }
            let request = canonical(body)?;
            attempt::translated(upstream, &request, encoding(&request)).await
        }
    }
}

/// The chat request decoded into the canonical model, for a provider of another
/// dialect (decoded per such attempt: the same-dialect path never pays for it).
fn canonical(body: &[u8]) -> Result<ChatRequest, UpstreamError> {
    llmux_wire::openai::decode::chat_request(body).map_err(bad_request)
}

fn encoding(request: &ChatRequest) -> Encoding<'static> {
    Encoding::OpenAi { include_usage: request.stream_include_usage }
}

/// Same dialect: splice the model, forward, relay the bytes.
async fn passthrough(
    upstream: Upstream<'_>,
    endpoint: Endpoint,
    body: &Bytes,
    request: &Peek<'_>,
) -> Result<Success, UpstreamError> {
    let Upstream { route, provider, prepared, .. } = upstream;
    let stream = request.stream && endpoint != Endpoint::Embeddings;
    let force_usage = stream && provider.preset.quirks.stream_usage;
    let body = rewrite(body, request, &route.model, force_usage);
    let answered = attempt::send(upstream, prepared.build_request(provider, endpoint, &route.model, body)).await?;
    if stream {
        return Ok(Success::Upstream {
            response: answered.response,
            idle: route.idle_timeout.unwrap_or(provider.timeouts.idle),
            strip_usage: !request.include_usage,
        });
    }
    let body = answered.body().await?;
    let usage = llmux_wire::openai::usage::from_response(&body);
    // Without usage, the answer is billed for the output it holds (embeddings hold none).
    let output = match usage {
        None if endpoint != Endpoint::Embeddings => crate::relay::openai_body_output(&body),
        _ => 0,
    };
    Ok(Success::Full { body, usage, output })
}
