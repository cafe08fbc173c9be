//! The router: every route llmux serves, in one place.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use llmux_gateway::Gateway;

use crate::ConfigSource;
use crate::api::{admin, anthropic, health, openai, responses};

#[derive(Clone)]
pub struct AppState {
    pub gateway: Arc<Gateway>,
    pub source: ConfigSource,
    /// Open and refused connections, handler panics (`/metrics`).
    pub connections: Arc<crate::listener::ConnStats>,
}

impl AppState {
    pub fn new(gateway: Arc<Gateway>, source: ConfigSource) -> AppState {
        AppState { gateway, source, connections: Arc::default() }
    }
}

/// All routes.
pub fn app(state: AppState) -> Router {
    // The client surfaces, both dialects.
    let client_routes = Router::new()
        .route("/chat/completions", post(openai::chat_completions))
        .route("/completions", post(openai::completions))
        .route("/embeddings", post(openai::embeddings))
        .route("/models", get(openai::models))
        .route("/models/{id}", get(openai::model))
        .route("/messages", post(anthropic::messages))
        .route("/messages/count_tokens", post(anthropic::count_tokens))
        .route("/responses", post(responses::create))
        .route("/responses/input_tokens", post(responses::input_tokens))
        .route("/responses/{id}", get(responses::retrieve).delete(responses::delete))
        .route("/responses/{id}/input_items", get(responses::input_items));
    Router::new()
        .nest("/v1", client_routes.clone())
        // Clients whose base URL lacks `/v1` reach the same handlers.
        .merge(client_routes)
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .route("/admin/keys", post(admin::create_key).get(admin::list_keys))
        .route("/admin/keys/{id}", get(admin::show_key).patch(admin::update_key).delete(admin::revoke_key))
        .route("/admin/keys/{id}/revoke", post(admin::revoke_key))
        .route("/admin/teams", post(admin::create_team).get(admin::list_teams))
        .route("/admin/teams/{name}", get(admin::show_team).patch(admin::update_team).delete(admin::delete_team))
        .route("/admin/usage", get(admin::usage))
        .route("/admin/usage/summary", get(admin::usage_summary))
        .route("/admin/providers", get(admin::providers))
        .route("/admin/reload", post(admin::reload))
        .fallback(health::not_found)
        .method_not_allowed_fallback(health::method_not_allowed)
        // Bodies are read by the handlers with the configured limit (413 in the
        // caller's dialect), not by axum's default 2 MB limit.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}
