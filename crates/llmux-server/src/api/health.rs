//! Health, readiness, metrics and the fallbacks for unknown routes.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use llmux_gateway::error::ErrorCode;

use crate::AppState;
use crate::api::request_id;
use crate::error::{Dialect, render};

/// Alive: the process answers.
pub async fn health() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], r#"{"status":"ok"}"#).into_response()
}

/// Ready: a configuration is loaded and requests can be served. An unreachable store
/// or Redis does not make an instance unready (cached keys keep working, usage records
/// wait on disk, limits fall back to this instance's counts: taking every instance of a
/// fleet out of a load balancer would be worse); the body says which is degraded.
pub async fn ready(State(state): State<AppState>) -> Response {
    let ping = tokio::time::timeout(Duration::from_secs(2), state.gateway.store().ping()).await;
    let store = if matches!(ping, Ok(Ok(()))) { "ok" } else { "unreachable" };
    let redis = state.gateway.fleet_state();
    // Supervised background tasks: "running", or "restarting" between a death and its
    // restart (`llmux_background_task_restarts_total` counts them).
    let mut tasks = serde_json::Map::new();
    let mut tasks_up = true;
    for task in state.gateway.tasks.states() {
        tasks_up &= task.is_up();
        tasks.insert(task.name.to_owned(), (if task.is_up() { "running" } else { "restarting" }).into());
    }
    let degraded = store != "ok" || redis == Some(false) || !tasks_up;
    let body = serde_json::json!({
        "status": if degraded { "degraded" } else { "ready" },
        "store": store,
        "redis": redis.map(|up| if up { "up" } else { "down" }),
        "tasks": tasks,
    });
    ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let runtime = state.gateway.runtime();
    let now = llmux_gateway::clock::monotonic_ms();
    let config = &runtime.config;
    let resting = |model: &str, provider: &str| {
        config.models.iter().enumerate().filter(|(_, candidate)| candidate.name == model).any(|(index, candidate)| {
            candidate.routes.iter().enumerate().any(|(route, route_config)| {
                config.providers[route_config.provider].name == provider
                    && runtime.health.model(index)[route].resting(now)
            })
        })
    };
    let mut text = state.gateway.metrics.render_with(&resting);
    state.connections.render(&mut text);
    state.gateway.failed_auths.render(&mut text);
    state.gateway.tasks.render(&mut text);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

pub async fn not_found(headers: HeaderMap) -> Response {
    render(Dialect::OpenAi, ErrorCode::NotFound, "Unknown route.", None, &request_id(&headers))
}

pub async fn method_not_allowed(headers: HeaderMap) -> Response {
    render(
        Dialect::OpenAi,
        ErrorCode::MethodNotAllowed,
        "Method not allowed on this route.",
        None,
        &request_id(&headers),
    )
}
