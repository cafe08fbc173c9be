//! The OpenAI Responses API surface: `POST /v1/responses`, answered in OpenAI's shapes
//! (errors included). Retrieving, deleting and listing stored responses come with
//! storage (not yet: nothing is stored).

use axum::extract::{Request, State};
use axum::response::Response;

use crate::AppState;
use crate::api::{Surface, serve};

pub async fn create(State(state): State<AppState>, request: Request) -> Response {
    serve(state, request, Surface::Responses).await
}
