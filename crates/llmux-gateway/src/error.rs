//! Gateway errors and the one table that maps them to what clients see.
//!
//! Every failure a client can get has a row in [`ErrorCode`]: its stable code, HTTP
//! status, and the error `type` in both dialects. The server renders bodies from it;
//! the ledger records the code and status from it.

use std::fmt;

use llmux_providers::{ErrorKind, UpstreamError};
use llmux_wire::DecodeError;

use crate::auth::AuthError;

/// A stable, client-visible error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidApiKey,
    ModelNotAllowed,
    RegionNotServed,
    ModelNotFound,
    NotFound,
    MethodNotAllowed,
    /// Admin API: the record exists already, or is still in use.
    Conflict,
    RequestTooLarge,
    RateLimitExceeded,
    BudgetExceeded,
    ContextLengthExceeded,
    ContentFilter,
    UpstreamError,
    UpstreamTimeout,
    ServiceUnavailable,
    Internal,
}

/// One row of the table.
pub struct ErrorRow {
    pub code: &'static str,
    pub status: u16,
    pub openai_type: &'static str,
    pub anthropic_type: &'static str,
}

impl ErrorCode {
    /// The table. Codes, statuses and types are part of the product contract.
    pub fn row(self) -> ErrorRow {
        let (code, status, openai_type, anthropic_type) = match self {
            ErrorCode::InvalidRequest => {
                ("invalid_request_error", 400, "invalid_request_error", "invalid_request_error")
            }
            ErrorCode::InvalidApiKey => ("invalid_api_key", 401, "authentication_error", "authentication_error"),
            ErrorCode::ModelNotAllowed => ("model_not_allowed", 403, "permission_error", "permission_error"),
            ErrorCode::RegionNotServed => ("region_not_served", 403, "permission_error", "permission_error"),
            ErrorCode::ModelNotFound => ("model_not_found", 404, "invalid_request_error", "not_found_error"),
            ErrorCode::NotFound => ("not_found", 404, "invalid_request_error", "not_found_error"),
            ErrorCode::MethodNotAllowed => {
                ("method_not_allowed", 405, "invalid_request_error", "invalid_request_error")
            }
            ErrorCode::Conflict => ("conflict", 409, "invalid_request_error", "invalid_request_error"),
            ErrorCode::RequestTooLarge => ("request_too_large", 413, "invalid_request_error", "request_too_large"),
            ErrorCode::RateLimitExceeded => ("rate_limit_exceeded", 429, "rate_limit_error", "rate_limit_error"),
            ErrorCode::BudgetExceeded => ("budget_exceeded", 429, "insufficient_quota", "rate_limit_error"),
            ErrorCode::ContextLengthExceeded => {
                ("context_length_exceeded", 400, "invalid_request_error", "invalid_request_error")
            }
            ErrorCode::ContentFilter => ("content_filter", 400, "invalid_request_error", "invalid_request_error"),
            ErrorCode::UpstreamError => ("upstream_error", 502, "api_error", "api_error"),
            ErrorCode::UpstreamTimeout => ("upstream_timeout", 504, "api_error", "timeout_error"),
            ErrorCode::ServiceUnavailable => ("service_unavailable", 503, "api_error", "overloaded_error"),
            ErrorCode::Internal => ("internal_error", 500, "api_error", "api_error"),
        };
        ErrorRow { code, status, openai_type, anthropic_type }
    }

    pub fn status(self) -> u16 {
        self.row().status
    }

    pub fn as_str(self) -> &'static str {
        self.row().code
    }
}

/// One failed attempt, as named in a 502 message.
#[derive(Debug, Clone)]
pub struct FailedAttempt {
    pub provider: String,
    pub model: String,
    pub error: UpstreamError,
}

/// Why a request failed.
#[derive(Debug, Clone)]
pub enum GatewayError {
    Auth(AuthError),
    BadRequest(DecodeError),
    TooLarge {
        limit: usize,
    },
    ModelNotFound(String),
    ModelNotAllowed(String),
    RegionNotServed {
        model: String,
        region: String,
    },
    /// Every route failed (or one failed with the caller's fault).
    Upstream(Vec<FailedAttempt>),
    /// The key's rate limit is used up for this window.
    RateLimited(Box<crate::limits::Refusal>),
    /// The key's budget for the period is spent.
    BudgetExceeded(Box<crate::budgets::Exhausted>),
    StoreUnavailable,
    /// A stored object (a Responses API response) the caller does not have.
    NotFound(String),
}

impl GatewayError {
    pub fn code(&self) -> ErrorCode {
        match self {
            GatewayError::Auth(AuthError::StoreUnavailable) | GatewayError::StoreUnavailable => {
                ErrorCode::ServiceUnavailable
            }
            GatewayError::Auth(_) => ErrorCode::InvalidApiKey,
            GatewayError::BadRequest(_) => ErrorCode::InvalidRequest,
            GatewayError::NotFound(_) => ErrorCode::NotFound,
            GatewayError::TooLarge { .. } => ErrorCode::RequestTooLarge,
            GatewayError::ModelNotFound(_) => ErrorCode::ModelNotFound,
            GatewayError::ModelNotAllowed(_) => ErrorCode::ModelNotAllowed,
            GatewayError::RegionNotServed { .. } => ErrorCode::RegionNotServed,
            GatewayError::RateLimited(_) => ErrorCode::RateLimitExceeded,
            GatewayError::BudgetExceeded(_) => ErrorCode::BudgetExceeded,
            GatewayError::Upstream(attempts) => match attempts.last().map(|attempt| attempt.error.kind) {
                Some(ErrorKind::BadRequest) => ErrorCode::InvalidRequest,
                Some(ErrorKind::ContextLength) => ErrorCode::ContextLengthExceeded,
                Some(ErrorKind::ContentFiltered) => ErrorCode::ContentFilter,
                _ if !attempts.is_empty() && attempts.iter().all(|a| a.error.kind == ErrorKind::Timeout) => {
                    ErrorCode::UpstreamTimeout
                }
                _ => ErrorCode::UpstreamError,
            },
        }
    }

    /// The `param` of a bad request.
    pub fn param(&self) -> Option<&str> {
        match self {
            GatewayError::BadRequest(error) => error.param.as_deref(),
            GatewayError::ModelNotFound(_) | GatewayError::ModelNotAllowed(_) => Some("model"),
            _ => None,
        }
    }

    /// The client-facing message. Never contains a secret or an upstream URL.
    pub fn message(&self, request_id: &str) -> String {
        match self {
            GatewayError::Auth(AuthError::Missing) => {
                "You didn't provide an API key. Send it as `Authorization: Bearer sk-llmux-...` or `x-api-key`."
                    .to_owned()
            }
            GatewayError::Auth(AuthError::StoreUnavailable) | GatewayError::StoreUnavailable => {
                format!("The key store is temporarily unavailable; retry shortly (request id {request_id}).")
            }
            GatewayError::Auth(error) => format!("Incorrect API key provided: {error}."),
            GatewayError::BadRequest(error) => error.message.clone(),
            GatewayError::NotFound(message) => message.clone(),
            GatewayError::TooLarge { limit } => format!("The request body exceeds the limit of {limit} bytes."),
            GatewayError::ModelNotFound(model) => format!("The model `{model}` does not exist."),
            GatewayError::ModelNotAllowed(model) => format!("This API key is not allowed to use the model `{model}`."),
            GatewayError::RegionNotServed { model, region } => {
                format!("No provider of the model `{model}` serves the region `{region}`.")
            }
            GatewayError::RateLimited(refusal) => refusal.message.clone(),
            GatewayError::BudgetExceeded(exhausted) => format!(
                "Budget exceeded: {} has spent {} of its {} {} {} budget.",
                exhausted.label,
                llmux_types::money::format_nanos(exhausted.spent_nanos),
                llmux_types::money::format_nanos(exhausted.budget_nanos),
                exhausted.currency,
                exhausted.period
            ),
            GatewayError::Upstream(attempts) => {
                if let Some(last) = attempts.last()
                    && last.error.kind.is_client_fault()
                {
                    return last
                        .error
                        .message
                        .clone()
                        .unwrap_or_else(|| "The provider rejected the request as invalid.".to_owned());
                }
                let mut message = format!(
                    "All {} upstream attempt{} failed (request id {request_id}): ",
                    attempts.len(),
                    if attempts.len() == 1 { "" } else { "s" }
                );
                for (index, attempt) in attempts.iter().enumerate() {
                    if index > 0 {
                        message.push_str("; ");
                    }
                    message.push_str(&format!("{}/{}: {}", attempt.provider, attempt.model, attempt.error));
                }
                if attempts.is_empty() {
                    message.push_str("no route was available");
                }
                message
            }
        }
    }

    /// How long the caller should wait before retrying, if the gateway knows: sent as
    /// `Retry-After` (whole seconds, rounded up) and `retry-after-ms`.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        const SECOND: std::time::Duration = std::time::Duration::from_secs(1);
        match self {
            GatewayError::Upstream(attempts) => {
                attempts.iter().filter_map(|attempt| attempt.error.retry_after).min().map(|delay| delay.max(SECOND))
            }
            GatewayError::StoreUnavailable | GatewayError::Auth(AuthError::StoreUnavailable) => Some(SECOND),
            GatewayError::RateLimited(refusal) => Some(std::time::Duration::from_millis(refusal.retry_after_ms)),
            GatewayError::BudgetExceeded(exhausted) if exhausted.in_flight => Some(SECOND),
            _ => None,
        }
    }

    /// Whether a client should retry at all, when its default would be wrong: the
    /// official SDKs retry every 429 unless told `x-should-retry: false`, and a spent
    /// budget does not come back within their retries.
    pub fn should_retry(&self) -> Option<bool> {
        match self {
            GatewayError::BudgetExceeded(exhausted) if !exhausted.in_flight => Some(false),
            _ => None,
        }
    }
}

impl fmt::Display for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message("-"))
    }
}

impl std::error::Error for GatewayError {}
