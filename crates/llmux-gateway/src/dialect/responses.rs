//! The OpenAI Responses API (`POST /v1/responses`), as Codex CLI and agent SDKs speak
//! it: the request decodes to the canonical model and goes to any provider through the
//! canonical path; the answer is a response object, or the API's event sequence.
//!
//! Not yet: storing responses (`store` is answered as `false`, and a
//! `previous_response_id` is refused with 400 rather than ignored), and forwarding the
//! body as is to providers that speak the Responses API.

use bytes::Bytes;
use llmux_wire::DecodeError;
use llmux_wire::responses::decode::{ResponsesRequest, responses_request};
use llmux_wire::responses::encode::Echo;

use super::{ClientDialect, Encoding, estimate_input_tokens};
use crate::attempt::{self, Tried};
use crate::router::{DEFAULT_OUTPUT_ESTIMATE, TokenEstimate};
use crate::runtime::Upstream;
use crate::{auth, clock};

/// A Responses API request.
pub(crate) struct Responses;

/// A decoded request with the identity of the response it gets.
pub(crate) struct ResponsesCall {
    request: ResponsesRequest,
    /// `resp_` + 24 random base62 characters.
    id: String,
    created_at: u64,
    echo: Echo,
}

impl ClientDialect for Responses {
    type Request<'b> = ResponsesCall;

    fn parse(&self, body: &Bytes) -> Result<ResponsesCall, DecodeError> {
        let mut request = responses_request(body)?;
        if request.previous_response_id.is_some() {
            return Err(DecodeError::new(
                Some("previous_response_id"),
                "previous_response_id is not supported yet: llmux does not store responses; send the whole \
                 conversation as `input`",
            ));
        }
        // Nothing is stored (yet): the answer says so.
        request.store = false;
        let echo = Echo::of(&request);
        Ok(ResponsesCall {
            request,
            id: format!("resp_{}", auth::random_base62(24)),
            created_at: clock::wall_s(),
            echo,
        })
    }

    fn model(call: &ResponsesCall) -> &str {
        &call.request.chat.model
    }

    fn conversation<'r>(&self, call: &'r ResponsesCall, meta: &'r crate::RequestMeta) -> super::ConversationName<'r> {
        super::responses_conversation(&call.request, &call.id, meta)
    }

    fn estimate(call: &ResponsesCall, _body: &Bytes) -> TokenEstimate {
        let chat = &call.request.chat;
        TokenEstimate { input: estimate_input_tokens(chat), output: chat.max_tokens.unwrap_or(DEFAULT_OUTPUT_ESTIMATE) }
    }

    async fn attempt<'a, 'b: 'a>(&'a self, call: &'a ResponsesCall, _: &'a Bytes, upstream: Upstream<'a>) -> Tried {
        let encoding = Encoding::Responses { id: &call.id, created_at: call.created_at, echo: &call.echo };
        if let Some(local) = upstream.adapter.local() {
            return attempt::local_chat(upstream, local, &call.request.chat, encoding).await;
        }
        attempt::translated(upstream, &call.request.chat, encoding).await
    }
}
