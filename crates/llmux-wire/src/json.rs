//! JSON helpers the dialects share.

use serde_json::value::RawValue;

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
