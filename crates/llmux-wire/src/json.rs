//! JSON helpers the dialects share: reading request bodies with errors that name the
//! offending path (as the providers' own APIs do), and small value helpers.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::DecodeError;

/// A request error at `path` (`messages.2.content`), or about the whole body (`""`).
pub(crate) fn error(path: &str, message: impl std::fmt::Display) -> DecodeError {
    if path.is_empty() {
        return DecodeError::new(None, message.to_string());
    }
    DecodeError::new(Some(path), format!("{path}: {message}"))
}

/// Deserializes the value at `path`, reporting failures against it.
pub(crate) fn at<T: DeserializeOwned>(path: &str, raw: &RawValue) -> Result<T, DecodeError> {
    serde_json::from_str(raw.get()).map_err(|e| error(path, e))
}

/// Deserializes a value that borrows from `raw`.
pub(crate) fn at_borrowed<'a, T: Deserialize<'a>>(path: &str, raw: &'a RawValue) -> Result<T, DecodeError> {
    serde_json::from_str(raw.get()).map_err(|e| error(path, e))
}

/// A value as raw JSON (the values built here always serialize; `null` otherwise).
pub(crate) fn to_raw<T: serde::Serialize>(value: &T) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).unwrap_or_default()
}

/// What kind of JSON value `raw` holds, by its first byte.
pub(crate) fn first_byte(raw: &RawValue) -> u8 {
    raw.get().trim_start().as_bytes().first().copied().unwrap_or(b' ')
}

/// `json` (valid JSON) without insignificant whitespace; key order, number spelling and
/// string escapes are kept as written.
pub(crate) fn compact_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_ascii_whitespace() {
            out.push(c);
        }
    }
    out
}
