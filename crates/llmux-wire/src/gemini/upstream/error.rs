//! Gemini error bodies, `{"error":{"code","message","status","details"}}`: the text of an
//! error object, and what an error body tells the caller (status, message, retry delay).

use std::borrow::Cow;
use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::json::first_byte;
use crate::upstream::non_null;

#[derive(Deserialize)]
pub(super) struct ErrorIn<'a> {
    code: Option<i64>,
    #[serde(borrow)]
    message: Option<Cow<'a, str>>,
    #[serde(borrow)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow)]
    details: Option<Vec<&'a RawValue>>,
}

/// `<status>: <message>` of a Gemini error object (the status lets the gateway tell
/// `RESOURCE_EXHAUSTED` from `UNAVAILABLE` without the HTTP status).
pub(super) fn error_text(error: &ErrorIn<'_>) -> String {
    let status = error.status.as_deref().filter(|status| !status.is_empty());
    let message = error.message.as_deref().filter(|message| !message.is_empty());
    match (status, message) {
        (Some(status), Some(message)) => format!("{status}: {message}"),
        (Some(text), None) | (None, Some(text)) => text.to_owned(),
        (None, None) => match error.code {
            Some(code) => format!("upstream error {code}"),
            None => "unknown upstream error".to_owned(),
        },
    }
}

#[derive(Deserialize)]
struct EnvelopeIn<'a> {
    #[serde(borrow)]
    error: Option<&'a RawValue>,
}

/// The `error` object of an error body: `{"error":{...}}`, or such a body as the first
/// element of an array (how `streamGenerateContent` without `alt=sse` fails).
fn error_object(body: &[u8]) -> Option<ErrorIn<'_>> {
    let body = body.trim_ascii();
    let envelope: EnvelopeIn<'_> = if body.first() == Some(&b'[') {
        serde_json::from_slice::<Vec<EnvelopeIn<'_>>>(body).ok()?.into_iter().next()?
    } else {
        serde_json::from_slice(body).ok()?
    };
    let raw = non_null(envelope.error)?;
    if first_byte(raw) != b'{' {
        return None;
    }
    serde_json::from_str(raw.get()).ok()
}

/// `(status, message)` of a Gemini error body `{"error":{"code","message","status",
/// "details"}}`, e.g. `("RESOURCE_EXHAUSTED", "Quota exceeded ...")`; a missing field is
/// empty. `None` when the body holds no error object.
pub fn error_message(body: &[u8]) -> Option<(String, String)> {
    let error = error_object(body)?;
    Some((
        error.status.map(Cow::into_owned).unwrap_or_default(),
        error.message.map(Cow::into_owned).unwrap_or_default(),
    ))
}

/// How long Gemini asks the caller to wait: the `retryDelay` (a protobuf `Duration`,
/// `"22s"`, `"1.5s"`) of the `error.details` entry whose `@type` ends in
/// `google.rpc.RetryInfo` (429 `RESOURCE_EXHAUSTED` bodies carry one). `None` when there
/// is none or it cannot be read.
pub fn retry_delay(body: &[u8]) -> Option<Duration> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct DetailIn<'a> {
        #[serde(rename = "@type", borrow)]
        kind: Option<Cow<'a, str>>,
        #[serde(borrow)]
        retry_delay: Option<Cow<'a, str>>,
    }
    let error = error_object(body)?;
    error.details?.into_iter().find_map(|raw| {
        let detail: DetailIn<'_> = serde_json::from_str(raw.get()).ok()?;
        if !detail.kind?.ends_with("google.rpc.RetryInfo") {
            return None;
        }
        duration(&detail.retry_delay?)
    })
}

/// The `reason` of the `error.details` entry whose `@type` ends in
/// `google.rpc.ErrorInfo` (`API_KEY_INVALID` for a key Google does not accept), if any.
pub fn error_reason(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct DetailIn<'a> {
        #[serde(rename = "@type", borrow)]
        kind: Option<Cow<'a, str>>,
        #[serde(borrow)]
        reason: Option<Cow<'a, str>>,
    }
    let error = error_object(body)?;
    error.details?.into_iter().find_map(|raw| {
        let detail: DetailIn<'_> = serde_json::from_str(raw.get()).ok()?;
        if !detail.kind?.ends_with("google.rpc.ErrorInfo") {
            return None;
        }
        detail.reason.map(Cow::into_owned)
    })
}

/// A protobuf JSON `Duration`: seconds with up to nine fractional digits and an `s`.
fn duration(text: &str) -> Option<Duration> {
    let number = text.trim().strip_suffix('s')?;
    let (seconds, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if seconds.is_empty() || !digits(seconds) || !digits(fraction) || fraction.len() > 9 {
        return None;
    }
    let nanos = if fraction.is_empty() { 0 } else { format!("{fraction:0<9}").parse().ok()? };
    Some(Duration::new(seconds.parse().ok()?, nanos))
}
