//! What the lifecycle takes from the edge and gives back to it.

use bytes::Bytes;
use tokio::time::Instant;

use crate::error::GatewayError;
use crate::limits;
use crate::relay::BodyStream;
use crate::settle::Settlement;

/// What the edge knows about a request before the gateway sees it.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    pub request_id: String,
    /// The presented key (bearer token or `x-api-key`).
    pub api_key: Option<String>,
    /// The `x-llmux-region` header, if sent.
    pub region_header: Option<String>,
    /// `x-claude-code-session-id` (Claude Code's session), if sent.
    pub claude_code_session: Option<String>,
    /// A session header any client may send (`x-session-id`, else Codex CLI's
    /// `session_id`), if sent.
    pub session: Option<String>,
    pub started: Instant,
}

/// A successful answer.
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    /// The caller's rate-limit standing, for the `x-ratelimit-*` headers.
    pub rate_limits: Option<limits::RateInfo>,
    /// The provider that served it.
    pub provider: Option<String>,
    pub attempts: u32,
    pub body: ReplyBody,
    /// Request parameters the provider's dialect could not hold, dropped in translation.
    pub dropped: Vec<&'static str>,
}

pub enum ReplyBody {
    Full(Bytes),
    Stream(BodyStream),
}

/// A failed request, with how many upstream attempts it made.
#[derive(Debug)]
pub struct Failure {
    pub error: GatewayError,
    pub attempts: u32,
    pub provider: Option<String>,
    /// The caller's rate-limit standing, for the `x-ratelimit-*` headers.
    pub rate_limits: Option<Box<limits::RateInfo>>,
}

impl From<GatewayError> for Failure {
    fn from(error: GatewayError) -> Failure {
        let rate_limits = match &error {
            GatewayError::RateLimited(refusal) => Some(Box::new(refusal.info)),
            _ => None,
        };
        Failure { error, attempts: 0, provider: None, rate_limits }
    }
}

/// Puts the caller's rate-limit standing on the outcome (for the `x-ratelimit-*` headers).
pub(crate) fn with_rate_limits(
    outcome: Result<Reply, Failure>,
    rate_limits: Option<limits::RateInfo>,
) -> Result<Reply, Failure> {
    match outcome {
        Ok(mut reply) => {
            reply.rate_limits = rate_limits;
            Ok(reply)
        }
        Err(mut failure) => {
            failure.rate_limits = failure.rate_limits.or(rate_limits.map(Box::new));
            Err(failure)
        }
    }
}

/// Settles a request that failed before any upstream attempt.
pub(crate) fn fail(settlement: Settlement, error: GatewayError) -> Failure {
    let code = error.code();
    settlement.finish(code.status(), Some(code));
    Failure::from(error)
}
