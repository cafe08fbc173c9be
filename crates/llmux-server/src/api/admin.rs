//! The admin API (`/admin/...`), authenticated by the master key.
#![expect(clippy::result_large_err, reason = "admin handlers are cold; returning the ready response keeps them short")]

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use llmux_gateway::clock;
use llmux_gateway::error::ErrorCode;
use llmux_gateway::keys::{self, KeyError, KeyPatch, NewKey};
use llmux_gateway::teams::{self, NewTeam, TeamError, TeamPatch};
use llmux_store::{GroupBy, StoredUsage, UsageFilter};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::api::json_response;
use crate::api::{api_key, request_id};
use crate::error::{Dialect, render};

fn json(status: StatusCode, value: &Value, request_id: &str) -> Response {
    let mut response = json_response(value.to_string().into_bytes(), Dialect::OpenAi, request_id);
    *response.status_mut() = status;
    response
}

fn bad_request(message: &str, param: Option<&str>, request_id: &str) -> Response {
    render(Dialect::OpenAi, ErrorCode::InvalidRequest, message, param, request_id)
}

/// Checks the master key; the comparison does not leak timing (hashes compared).
fn authorize(state: &AppState, headers: &HeaderMap, request_id: &str) -> Result<(), Response> {
    let runtime = state.gateway.runtime();
    let Some(master) = runtime.config.server.master_key.as_ref() else {
        return Err(render(
            Dialect::OpenAi,
            ErrorCode::InvalidApiKey,
            "The admin API is disabled: set `server.master_key` (or LLMUX_MASTER_KEY).",
            None,
            request_id,
        ));
    };
    let presented = api_key(headers).unwrap_or_default();
    let equal = Sha256::digest(presented.as_bytes()) == Sha256::digest(master.expose().as_bytes());
    if equal {
        Ok(())
    } else {
        Err(render(Dialect::OpenAi, ErrorCode::InvalidApiKey, "Invalid master key.", None, request_id))
    }
}

/// The request id, once the master key checked out.
fn authorized(state: &AppState, headers: &HeaderMap) -> Result<String, Response> {
    let request_id = request_id(headers);
    authorize(state, headers, &request_id)?;
    Ok(request_id)
}

/// A request that presented the master key (extracted before anything else of the
/// request is read): its request id.
pub struct Master(String);

impl FromRequestParts<AppState> for Master {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Master, Response> {
        authorized(state, &parts.headers).map(Master)
    }
}

/// A request with the master key and a JSON body of type `T` (read within
/// `server.max_body_bytes` only once the key checked out).
pub struct Admin<T> {
    request_id: String,
    body: T,
}

impl<T: for<'de> Deserialize<'de>> FromRequest<AppState> for Admin<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Admin<T>, Response> {
        let (parts, body) = request.into_parts();
        let request_id = authorized(state, &parts.headers)?;
        let body = json_body(state, &parts.headers, body, &request_id).await?;
        Ok(Admin { request_id, body })
    }
}

fn key_error(error: KeyError, request_id: &str) -> Response {
    match error {
        KeyError::Invalid { field, message } => bad_request(&format!("`{field}` {message}"), Some(field), request_id),
        KeyError::NotFound(id) => {
            render(Dialect::OpenAi, ErrorCode::NotFound, &format!("No key with id `{id}`."), None, request_id)
        }
        KeyError::Store(error) => {
            tracing::error!(%error, "Key store failed.");
            render(Dialect::OpenAi, ErrorCode::ServiceUnavailable, "The key store is unavailable.", None, request_id)
        }
    }
}

async fn json_body<T: for<'de> Deserialize<'de>>(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    request_id: &str,
) -> Result<T, Response> {
    let limit = state.gateway.runtime().config.server.max_body_bytes;
    let bytes = super::read_body(headers, body, limit)
        .await
        .map_err(|error| crate::error::render_gateway(Dialect::OpenAi, &error, request_id))?;
    serde_json::from_slice(&bytes)
        .map_err(|error| bad_request(&format!("invalid JSON body: {error}"), None, request_id))
}

pub async fn create_key(State(state): State<AppState>, Admin { request_id, body: new }: Admin<NewKey>) -> Response {
    match keys::create(state.gateway.store().as_ref(), new).await {
        Ok((record, plain)) => {
            state.gateway.key_changed(record.clone());
            let mut view = keys::view(&record);
            view["key"] = Value::String(plain);
            json(StatusCode::CREATED, &view, &request_id)
        }
        Err(error) => key_error(error, &request_id),
    }
}

/// `?limit=` (default 1000, at most 10000) and `?after=` (the `last_id` of the previous
/// page): keys in creation order, a page at a time.
#[derive(Debug, Deserialize)]
pub struct Page {
    limit: Option<u32>,
    after: Option<String>,
}

pub async fn list_keys(
    State(state): State<AppState>,
    Master(request_id): Master,
    page: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(page)) = page else {
        return bad_request("invalid query parameters", None, &request_id);
    };
    let limit = page.limit.unwrap_or(1000).clamp(1, 10_000) as usize;
    match state.gateway.store().list_keys().await {
        Ok(list) => {
            let start = match page.after.as_deref() {
                None => 0,
                Some(after) => match list.iter().position(|key| key.id == after) {
                    Some(index) => index + 1,
                    None => return bad_request("`after` names no key", Some("after"), &request_id),
                },
            };
            let shown = &list[start..list.len().min(start.saturating_add(limit))];
            let body = json!({
                "keys": shown.iter().map(keys::view).collect::<Vec<_>>(),
                "has_more": start + shown.len() < list.len(),
                "last_id": shown.last().map(|key| key.id.as_str()),
            });
            json(StatusCode::OK, &body, &request_id)
        }
        Err(error) => key_error(error.into(), &request_id),
    }
}

pub async fn show_key(State(state): State<AppState>, Master(request_id): Master, Path(id): Path<String>) -> Response {
    match keys::show(state.gateway.store().as_ref(), &id).await {
        Ok(view) => json(StatusCode::OK, &view, &request_id),
        Err(error) => key_error(error, &request_id),
    }
}

pub async fn update_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Admin { request_id, body: patch }: Admin<KeyPatch>,
) -> Response {
    match keys::update(state.gateway.store().as_ref(), &id, patch).await {
        Ok(key) => {
            state.gateway.key_changed(key.clone());
            json(StatusCode::OK, &keys::view(&key), &request_id)
        }
        Err(error) => key_error(error, &request_id),
    }
}

pub async fn revoke_key(State(state): State<AppState>, Master(request_id): Master, Path(id): Path<String>) -> Response {
    match keys::revoke(state.gateway.store().as_ref(), &id).await {
        Ok(key) => {
            state.gateway.key_changed(key.clone());
            json(StatusCode::OK, &keys::view(&key), &request_id)
        }
        Err(error) => key_error(error, &request_id),
    }
}

fn team_error(error: TeamError, request_id: &str) -> Response {
    match error {
        TeamError::Invalid(error) => key_error(error, request_id),
        TeamError::NotFound(_) => render(Dialect::OpenAi, ErrorCode::NotFound, &format!("{error}."), None, request_id),
        TeamError::Exists(_) | TeamError::InUse { .. } => {
            render(Dialect::OpenAi, ErrorCode::Conflict, &format!("{error}."), None, request_id)
        }
    }
}

pub async fn create_team(State(state): State<AppState>, Admin { request_id, body: new }: Admin<NewTeam>) -> Response {
    match teams::create(state.gateway.store().as_ref(), new).await {
        Ok(team) => {
            state.gateway.team_changed(team.clone());
            json(StatusCode::CREATED, &teams::view(&team), &request_id)
        }
        Err(error) => team_error(error, &request_id),
    }
}

pub async fn list_teams(State(state): State<AppState>, Master(request_id): Master) -> Response {
    match state.gateway.store().list_teams().await {
        Ok(list) => {
            json(StatusCode::OK, &json!({"teams": list.iter().map(teams::view).collect::<Vec<_>>()}), &request_id)
        }
        Err(error) => team_error(error.into(), &request_id),
    }
}

pub async fn show_team(
    State(state): State<AppState>,
    Master(request_id): Master,
    Path(name): Path<String>,
) -> Response {
    match teams::show(state.gateway.store().as_ref(), &name).await {
        Ok(view) => json(StatusCode::OK, &view, &request_id),
        Err(error) => team_error(error, &request_id),
    }
}

pub async fn update_team(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Admin { request_id, body: patch }: Admin<TeamPatch>,
) -> Response {
    match teams::update(state.gateway.store().as_ref(), &name, patch).await {
        Ok(team) => {
            state.gateway.team_changed(team.clone());
            json(StatusCode::OK, &teams::view(&team), &request_id)
        }
        Err(error) => team_error(error, &request_id),
    }
}

pub async fn delete_team(
    State(state): State<AppState>,
    Master(request_id): Master,
    Path(name): Path<String>,
) -> Response {
    match teams::delete(state.gateway.store().as_ref(), &name).await {
        Ok(()) => {
            state.gateway.team_deleted(&name);
            json(StatusCode::OK, &json!({"name": name, "deleted": true}), &request_id)
        }
        Err(error) => team_error(error, &request_id),
    }
}

#[derive(Debug, Deserialize)]
pub struct UsageQuery {
    key_id: Option<String>,
    model: Option<String>,
    provider: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<u32>,
    group_by: Option<String>,
    /// Summary rows to skip (pagination, with `limit`).
    offset: Option<u32>,
}

fn time_param(value: Option<&str>, name: &str, request_id: &str) -> Result<Option<i64>, Response> {
    match value.filter(|value| !value.is_empty()) {
        None => Ok(None),
        Some(text) => clock::parse_time(text).map(Some).ok_or_else(|| {
            bad_request(
                &format!("`{name}` must be an RFC 3339 time, a YYYY-MM-DD date or Unix seconds"),
                Some(name),
                request_id,
            )
        }),
    }
}

/// The `since`/`until` window of a usage query, in Unix milliseconds.
fn time_range(query: &UsageQuery, request_id: &str) -> Result<(Option<i64>, Option<i64>), Response> {
    let since = time_param(query.since.as_deref(), "since", request_id)?;
    let until = time_param(query.until.as_deref(), "until", request_id)?;
    Ok((since, until))
}

/// The public view of a usage record.
pub fn usage_view(stored: &StoredUsage) -> Value {
    let record = &stored.record;
    json!({
        "id": stored.id,
        "request_id": record.request_id,
        "key_id": record.key_id,
        "team": record.team,
        "model": record.model,
        "provider": record.provider,
        "upstream_model": record.upstream_model,
        "input_tokens": record.input_tokens,
        "output_tokens": record.output_tokens,
        "cached_tokens": record.cached_tokens,
        "reasoning_tokens": record.reasoning_tokens,
        "cost": record.cost_nanos.map(keys::decimal),
        "currency": record.currency,
        "status": record.status,
        "error_code": record.error_code,
        "attempts": record.attempts,
        "latency_ms": record.latency_ms,
        "ttft_ms": record.ttft_ms,
        "usage_estimated": record.usage_estimated,
        "created_at": clock::rfc3339(record.created_at),
        "attempt_log": record
            .attempt_log
            .as_deref()
            .and_then(|log| serde_json::from_str::<Value>(log).ok())
            .unwrap_or(Value::Null),
    })
}

pub async fn usage(
    State(state): State<AppState>,
    Master(request_id): Master,
    query: Result<Query<UsageQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return bad_request("invalid query parameters", None, &request_id);
    };
    let (since, until) = match time_range(&query, &request_id) {
        Ok(range) => range,
        Err(response) => return response,
    };
    let filter = UsageFilter {
        key_id: query.key_id,
        model: query.model,
        provider: query.provider,
        since,
        until,
        limit: query.limit.unwrap_or(100).clamp(1, 10_000),
    };
    match state.gateway.store().usage(&filter).await {
        Ok(records) => {
            json(StatusCode::OK, &json!({"records": records.iter().map(usage_view).collect::<Vec<_>>()}), &request_id)
        }
        Err(error) => key_error(error.into(), &request_id),
    }
}

pub async fn usage_summary(
    State(state): State<AppState>,
    Master(request_id): Master,
    query: Result<Query<UsageQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return bad_request("invalid query parameters", None, &request_id);
    };
    let group_text = query.group_by.as_deref().unwrap_or("model");
    let Some(group_by) = GroupBy::parse(group_text) else {
        return bad_request("`group_by` must be key, model, provider, team or day", Some("group_by"), &request_id);
    };
    let (since, until) = match time_range(&query, &request_id) {
        Ok(range) => range,
        Err(response) => return response,
    };
    let limit = query.limit.unwrap_or(1000).clamp(1, 10_000) as usize;
    let offset = query.offset.unwrap_or(0) as usize;
    match state.gateway.store().usage_summary(group_by, since, until).await {
        Ok(rows) => {
            let has_more = rows.len() > offset.saturating_add(limit);
            let rows: Vec<Value> = rows
                .iter()
                .skip(offset)
                .take(limit)
                .map(|row| {
                    json!({
                        "group": row.group,
                        "currency": row.currency,
                        "requests": row.requests,
                        "errors": row.errors,
                        "input_tokens": row.input_tokens,
                        "output_tokens": row.output_tokens,
                        "cached_tokens": row.cached_tokens,
                        "reasoning_tokens": row.reasoning_tokens,
                        "cost": keys::decimal(row.cost_nanos),
                    })
                })
                .collect();
            json(StatusCode::OK, &json!({"group_by": group_text, "rows": rows, "has_more": has_more}), &request_id)
        }
        Err(error) => key_error(error.into(), &request_id),
    }
}

pub async fn providers(State(state): State<AppState>, Master(request_id): Master) -> Response {
    let runtime = state.gateway.runtime();
    let config = &runtime.config;
    let providers: Vec<Value> = config
        .providers
        .iter()
        .enumerate()
        .map(|(index, provider)| {
            let now = llmux_gateway::clock::monotonic_ms();
            let wall_now = llmux_gateway::clock::wall_ms();
            let routes: Vec<Value> = config
                .models
                .iter()
                .enumerate()
                .flat_map(|(model_index, model)| {
                    model
                        .routes
                        .iter()
                        .enumerate()
                        .map(move |(route_index, route)| (model_index, model, route_index, route))
                })
                .filter(|(_, _, _, route)| route.provider == index)
                .map(|(model_index, model, route_index, route)| {
                    let health = &runtime.health.model(model_index)[route_index];
                    let refusals: Vec<Value> = health
                        .refusals(now)
                        .into_iter()
                        .map(|(region, until)| {
                            let remaining_ms = until.saturating_sub(now);
                            json!({
                                "region": region.map(|region| region.to_string()),
                                "scope": if region.is_some() { "region" } else { "deployment" },
                                "reopens_at_ms": wall_now.saturating_add(i64::try_from(remaining_ms).unwrap_or(i64::MAX)),
                                "reopens_in_s": remaining_ms.div_ceil(1000),
                            })
                        })
                        .collect();
                    json!({
                        "model": model.name,
                        "upstream_model": route.model,
                        "healthy": state.gateway.metrics.route_healthy(&model.name, &provider.name),
                        "resting": health.resting(now),
                        "consecutive_failures": health.consecutive_failures(),
                        "latency_ms": health.latency_us() as f64 / 1000.0,
                        "in_flight": health.in_flight(),
                        "region_refusals": refusals,
                    })
                })
                .collect();
            json!({
                "name": provider.name,
                "kind": provider.preset.kind,
                "base_url": provider.base_url,
                "regions": provider.regions.to_entries(),
                "routes": routes,
            })
        })
        .collect();
    json(StatusCode::OK, &json!({"providers": providers}), &request_id)
}

pub async fn reload(State(state): State<AppState>, Master(request_id): Master) -> Response {
    match crate::reload(&state) {
        Ok(()) => json(StatusCode::OK, &json!({"status": "reloaded"}), &request_id),
        Err(error) => bad_request(
            &format!("Reload refused; the previous configuration keeps serving. {error}"),
            None,
            &request_id,
        ),
    }
}
