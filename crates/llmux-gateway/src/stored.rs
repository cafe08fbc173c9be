//! Responses API conversation state: a response created with `store: true` is kept in
//! the store (its response object and every item it was made from), so that a later
//! request names it as `previous_response_id` on any instance of a fleet and on any
//! provider, and its creator can retrieve it, list its input items and delete it.
//!
//! Only the key that created a response sees it: for any other key it does not exist
//! (404, as for an unknown id). Responses expire `storage.responses_ttl_s` after their
//! creation; expired ones are not read and are purged in the background.
//!
//! A response is written before its last byte reaches the client (the non-streamed body,
//! or the stream's `response.completed` event), so a client that continues the
//! conversation at once, through any instance, finds it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use llmux_store::{Store, StoredResponse};
use llmux_types::chat::Message;
use llmux_wire::DecodeError;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::auth::{self, Caller};
use crate::clock;
use crate::error::GatewayError;

/// How long a response's write may hold the end of its answer.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// How often expired responses are deleted.
const PURGE_INTERVAL: Duration = Duration::from_secs(600);

/// The record a response becomes once its answer is complete: everything but the
/// response object.
#[derive(Clone)]
pub(crate) struct Keep {
    store: Arc<dyn Store>,
    record: StoredResponse,
}

impl std::fmt::Debug for Keep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keep").field("id", &self.record.id).finish_non_exhaustive()
    }
}

/// A write in flight, awaited before the answer's last bytes go out.
pub(crate) type Pending = Pin<Box<dyn Future<Output = ()> + Send>>;

impl Keep {
    /// Response `id` of `caller`, made from `items` (a JSON array), kept for `ttl`.
    pub(crate) fn new(store: Arc<dyn Store>, caller: &Caller, id: &str, items: String, ttl: Duration) -> Keep {
        let created_at = clock::wall_ms();
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let record = StoredResponse {
            id: id.to_owned(),
            key_id: caller.key.id.clone(),
            created_at,
            expires_at: created_at.saturating_add(ttl_ms),
            response: String::new(),
            input_items: items,
        };
        Keep { store, record }
    }

    /// Writes the record with its response object (`response`, JSON).
    pub(crate) fn save(&self, response: &[u8]) -> Pending {
        let mut record = self.record.clone();
        record.response = String::from_utf8_lossy(response).into_owned();
        let store = self.store.clone();
        Box::pin(async move {
            match tokio::time::timeout(WRITE_TIMEOUT, store.put_response(&record)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::warn!(id = %record.id, %error, "A stored response could not be written."),
                Err(_) => tracing::warn!(id = %record.id, "Writing a stored response timed out."),
            }
        })
    }
}

/// The response `id` if `caller` created it and it has not expired.
pub(crate) async fn load(store: &dyn Store, caller: &Caller, id: &str) -> Result<StoredResponse, GatewayError> {
    let not_found = || GatewayError::NotFound(format!("No response found with id '{id}'."));
    if id.len() > 128 {
        return Err(not_found());
    }
    match store.response(id, clock::wall_ms()).await {
        Ok(Some(stored)) if stored.key_id == caller.key.id => Ok(stored),
        Ok(_) => Err(not_found()),
        Err(error) => {
            tracing::warn!(%error, "Stored responses are unavailable.");
            Err(GatewayError::StoreUnavailable)
        }
    }
}

/// The items a response continuing `previous` (if any) is made from: the earlier
/// turns' items (`previous`'s own items and its output), then `input` (the request's
/// `input` as sent: a string or items), each item with an `id`. A JSON array.
pub(crate) fn items(previous: Option<&StoredResponse>, input: Option<&RawValue>) -> String {
    let mut all: Vec<Value> = Vec::new();
    if let Some(previous) = previous {
        all.extend(earlier_turns(previous).unwrap_or_default());
    }
    match input.map(|raw| serde_json::from_str::<Value>(raw.get())) {
        Some(Ok(Value::String(text))) => all.push(serde_json::json!({
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        })),
        Some(Ok(Value::Array(items))) => all.extend(items),
        _ => {}
    }
    for item in &mut all {
        if let Value::Object(fields) = item
            && !fields.contains_key("id")
        {
            let prefix = match fields.get("type").and_then(Value::as_str) {
                Some("function_call") => "fc",
                Some("function_call_output") => "fco",
                Some("reasoning") => "rs",
                _ => "msg",
            };
            fields.insert("id".to_owned(), Value::String(format!("{prefix}_{}", auth::random_base62(24))));
        }
    }
    serde_json::to_string(&all).unwrap_or_else(|_| "[]".to_owned())
}

/// `previous`'s items followed by its output items.
fn earlier_turns(previous: &StoredResponse) -> Option<Vec<Value>> {
    let mut items: Vec<Value> = serde_json::from_str(&previous.input_items).ok()?;
    let response: Value = serde_json::from_str(&previous.response).ok()?;
    if let Some(Value::Array(output)) = response.get("output") {
        items.extend(output.iter().cloned());
    }
    Some(items)
}

/// The conversation before a request that continues `previous`, as canonical messages.
pub(crate) fn history(previous: &StoredResponse) -> Result<Vec<Message>, GatewayError> {
    let unreadable = || {
        GatewayError::BadRequest(DecodeError::new(
            Some("previous_response_id"),
            format!("The stored response '{}' cannot be continued.", previous.id),
        ))
    };
    let items = earlier_turns(previous).ok_or_else(unreadable)?;
    let raw = serde_json::value::to_raw_value(&items).map_err(|_| unreadable())?;
    let mut messages = Vec::new();
    llmux_wire::responses::decode::conversation(&raw, &mut messages).map_err(|_| unreadable())?;
    Ok(messages)
}

/// One page of `stored`'s input items, as `GET /v1/responses/{id}/input_items` answers
/// (`order` `desc` by default, `limit` 1-100 (default 20), `after` an item id).
pub fn input_items_page(
    stored: &StoredResponse,
    order: Option<&str>,
    after: Option<&str>,
    limit: Option<usize>,
) -> Vec<u8> {
    let mut items: Vec<Value> = serde_json::from_str(&stored.input_items).unwrap_or_default();
    if order != Some("asc") {
        items.reverse();
    }
    let start = after
        .and_then(|after| items.iter().position(|item| item.get("id").and_then(Value::as_str) == Some(after)))
        .map_or(0, |position| position + 1);
    let limit = limit.unwrap_or(20).clamp(1, 100);
    let page: Vec<&Value> = items.iter().skip(start).take(limit).collect();
    let id_of = |item: Option<&&Value>| item.and_then(|item| item.get("id")).cloned().unwrap_or(Value::Null);
    let body = serde_json::json!({
        "object": "list",
        "data": page,
        "first_id": id_of(page.first()),
        "last_id": id_of(page.last()),
        "has_more": start + page.len() < items.len(),
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Deletes expired responses every few minutes until `stop`.
pub(crate) async fn purge_loop(store: Arc<dyn Store>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(PURGE_INTERVAL) => {}
            _ = stop.changed() => return,
        }
        match store.purge_responses(clock::wall_ms()).await {
            Ok(0) => {}
            Ok(purged) => tracing::debug!(purged, "Expired stored responses deleted."),
            Err(error) => tracing::debug!(%error, "Expired stored responses could not be deleted now."),
        }
    }
}

impl crate::Gateway {
    /// `GET /v1/responses/{id}`: the stored response, if the caller created it.
    pub async fn stored_response(
        &self,
        api_key: Option<&str>,
        client: Option<std::net::IpAddr>,
        id: &str,
    ) -> Result<StoredResponse, GatewayError> {
        let caller = self.authenticate_from(api_key, client).await?;
        load(self.store.as_ref(), &caller, id).await
    }

    /// `DELETE /v1/responses/{id}`: deletes the stored response if the caller created it.
    pub async fn delete_stored_response(
        &self,
        api_key: Option<&str>,
        client: Option<std::net::IpAddr>,
        id: &str,
    ) -> Result<(), GatewayError> {
        let caller = self.authenticate_from(api_key, client).await?;
        match self.store.delete_response(id, &caller.key.id).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(GatewayError::NotFound(format!("No response found with id '{id}'."))),
            Err(error) => {
                tracing::warn!(%error, "Stored responses are unavailable.");
                Err(GatewayError::StoreUnavailable)
            }
        }
    }

    /// `POST /v1/responses/input_tokens`: the input a Responses request would send
    /// (its `previous_response_id` included), in tokens. llmux does not tokenize; the
    /// count is an estimate (about four characters per token).
    pub async fn responses_input_tokens(
        &self,
        caller: crate::auth::Caller,
        body: bytes::Bytes,
    ) -> Result<u64, crate::Failure> {
        use crate::dialect::ClientDialect;
        let runtime = self.runtime.load_full();
        // Nothing is kept for a count.
        let max_bytes = runtime.config.server.max_body_bytes;
        let dialect = crate::dialect::Responses { store: &self.store, ttl: Duration::ZERO, max_bytes };
        let ttl = runtime.config.storage.responses_ttl;
        let reading = crate::dialect::Responses { store: &self.store, ttl, max_bytes };
        let mut request = reading.parse(&body).map_err(GatewayError::BadRequest)?;
        crate::bounds::check(
            &runtime.config.server,
            crate::dialect::Responses::model(&request),
            crate::dialect::Responses::shape(&request),
        )
        .map_err(GatewayError::BadRequest)?;
        if let Some(resolving) = dialect.resolve(&mut request, &caller) {
            resolving.await?;
        }
        let model = crate::dialect::Responses::model(&request);
        crate::admit::admit_model(&runtime, &caller, model)?;
        Ok(crate::dialect::Responses::estimate(&request, &body).input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(input_items: &str, response: &str) -> StoredResponse {
        StoredResponse {
            id: "resp_1".to_owned(),
            key_id: "k".to_owned(),
            created_at: 0,
            expires_at: i64::MAX,
            response: response.to_owned(),
            input_items: input_items.to_owned(),
        }
    }

    #[test]
    fn items_are_the_earlier_turns_then_the_input_each_with_an_id() {
        let previous = stored(
            r#"[{"id":"msg_a","type":"message","role":"user","content":"one"}]"#,
            r#"{"output":[{"id":"msg_b","type":"message","role":"assistant","content":[{"type":"output_text","text":"two"}]}]}"#,
        );
        let input = RawValue::from_string(
            r#"[{"type":"function_call_output","call_id":"c","output":"x"},{"role":"user","content":"three"}]"#.into(),
        )
        .unwrap();
        let all: Vec<Value> = serde_json::from_str(&items(Some(&previous), Some(&input))).unwrap();
        let ids: Vec<&str> = all.iter().map(|item| item["id"].as_str().unwrap()).collect();
        assert_eq!(&ids[..2], ["msg_a", "msg_b"]);
        assert!(ids[2].starts_with("fco_") && ids[3].starts_with("msg_"), "{ids:?}");
        assert_eq!(all[3]["content"], "three");

        let text = RawValue::from_string(r#""hello""#.into()).unwrap();
        let one: Vec<Value> = serde_json::from_str(&items(None, Some(&text))).unwrap();
        assert_eq!(one[0]["role"], "user");
        assert_eq!(one[0]["content"][0], serde_json::json!({"type": "input_text", "text": "hello"}));
    }

    #[test]
    fn history_decodes_the_earlier_turns_and_refuses_a_broken_record() {
        let previous = stored(
            r#"[{"type":"message","role":"user","content":"one"}]"#,
            r#"{"output":[{"type":"function_call","call_id":"c1","name":"f","arguments":"{}"}]}"#,
        );
        let messages = history(&previous).unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[1].tool_calls[0].id, "c1");
        let broken = stored("not json", "{}");
        assert!(matches!(history(&broken), Err(GatewayError::BadRequest(_))));
    }

    #[test]
    fn input_item_pages_follow_order_after_and_limit() {
        let all = stored(r#"[{"id":"a"},{"id":"b"},{"id":"c"}]"#, "{}");
        let page = |order, after, limit| {
            serde_json::from_slice::<Value>(&input_items_page(&all, order, after, limit)).unwrap()
        };
        let first = page(None, None, Some(2));
        assert_eq!(first["data"], serde_json::json!([{"id": "c"}, {"id": "b"}]));
        assert_eq!((first["first_id"].as_str(), first["last_id"].as_str()), (Some("c"), Some("b")));
        assert_eq!(first["has_more"], true);
        let rest = page(None, Some("b"), Some(2));
        assert_eq!(rest["data"], serde_json::json!([{"id": "a"}]));
        assert_eq!(rest["has_more"], false);
        assert_eq!(page(Some("asc"), None, Some(1000))["data"].as_array().unwrap().len(), 3);
        let empty = page(Some("asc"), Some("c"), None);
        assert_eq!((empty["data"].as_array().unwrap().len(), &empty["first_id"]), (0, &Value::Null));
    }
}
