//! What the upstream sides of the dialects (`openai::upstream`, `anthropic::upstream`,
//! `gemini::upstream`) share: a few readings of canonical content when encoding a
//! request, and the reading of an upstream's answer (a complete body, or one stream
//! payload at a time) with the same errors, `invalid upstream <what>: <why>`.

use std::fmt::Display;

use llmux_types::chat::{ContentPart, StreamEvent};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::DecodeError;

// ---------------------------------------------------------------------------------
// Requests.

/// The non-empty text parts of `content`.
pub(crate) fn texts(content: &[ContentPart]) -> impl Iterator<Item = &str> {
    content.iter().filter_map(|part| match part {
        ContentPart::Text(text) if !text.is_empty() => Some(text.as_str()),
        _ => None,
    })
}

/// `(media type, data)` of a `data:<type>;base64,<data>` URL; parameters other than
/// `base64` (`;charset=...`) are not part of the media type, which may be empty. `None`
/// for any other URL.
pub(crate) fn base64_data(url: &str) -> Option<(&str, &str)> {
    let (header, data) = url.strip_prefix("data:")?.split_once(',')?;
    let media_type = header.strip_suffix(";base64")?;
    Some((media_type.split(';').next().unwrap_or(media_type), data))
}

// ---------------------------------------------------------------------------------
// Answers.

/// An upstream answer (or a part of it, `what`) that is not what it should be.
pub(crate) fn malformed(what: &str, message: impl Display) -> DecodeError {
    DecodeError::new(None, format!("invalid upstream {what}: {message}"))
}

/// Deserializes `raw`, reporting failures as an invalid upstream `what`.
pub(crate) fn parse<'a, T: Deserialize<'a>>(what: &str, raw: &'a RawValue) -> Result<T, DecodeError> {
    serde_json::from_str(raw.get()).map_err(|error| malformed(what, error))
}

/// Deserializes a JSON body (surrounding whitespace allowed), reporting failures as an
/// invalid upstream `what`.
pub(crate) fn parse_body<'a, T: Deserialize<'a>>(what: &str, body: &'a [u8]) -> Result<T, DecodeError> {
    serde_json::from_slice(body.trim_ascii()).map_err(|error| malformed(what, error))
}

/// How every stream decoder opens: one SSE `data` payload, `None` when it is blank
/// (nothing to decode), else deserialized as [`parse_body`] does.
pub(crate) fn parse_payload<'a, T: Deserialize<'a>>(what: &str, data: &'a [u8]) -> Result<Option<T>, DecodeError> {
    if data.trim_ascii().is_empty() {
        return Ok(None);
    }
    parse_body(what, data).map(Some)
}

/// `raw` unless absent or JSON `null`.
pub(crate) fn non_null(raw: Option<&RawValue>) -> Option<&RawValue> {
    raw.filter(|raw| raw.get().trim() != "null")
}

/// The events a stream decoder's `decode_with` hands out for one payload, owned
/// (every decoder's `decode`).
pub(crate) fn owned_events<'d>(
    decode_with: impl FnOnce(&mut dyn FnMut(StreamEvent<'d>)) -> Result<(), DecodeError>,
) -> Result<Vec<StreamEvent<'static>>, DecodeError> {
    let mut events = Vec::new();
    decode_with(&mut |event| events.push(event.into_owned()))?;
    Ok(events)
}

/// Usage counters as last reported: a field the provider reported replaces the previous
/// value (stream usage is cumulative, never added); one it left out keeps it.
pub(crate) fn replace(field: &mut u64, reported: Option<u64>) {
    if let Some(value) = reported {
        *field = value;
    }
}
