//! Gemini's thought signatures on the way through Anthropic clients.
//!
//! Gemini signs the first function call of each step and answers 400 when a later
//! request does not send that signature back. Anthropic clients echo only what the
//! Messages format holds, and a `thinking` block cannot carry it: in a stream the
//! signature may come after text, where Anthropic never puts thinking, and a
//! `thinking` block with a foreign signature makes Claude answer 400 if the
//! conversation moves there. So the signature rides in the id of the `tool_use` block
//! it signs, which every client sends back verbatim (in the `tool_use` and in its
//! `tool_result`): `<id>__gsig<n>_<signature>`, the signature in base64url with its
//! `n` padding characters removed, so the id keeps to Anthropic's `[A-Za-z0-9_-]`.
//! Decoding splits it off again; Claude, if the conversation goes there, sees only a
//! longer id.

use llmux_types::chat::GEMINI_SIGNATURE_PREFIX;

const MARKER: &str = "__gsig";

/// `id` with the Gemini signature `raw` (standard base64) attached, or `None` when
/// `raw` is not base64 (it is then not carried).
pub(crate) fn attach(id: &str, raw: &str) -> Option<String> {
    let body = raw.trim_end_matches('=');
    let padding = raw.len() - body.len();
    if padding > 2 || !body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/') {
        return None;
    }
    let mut out = String::with_capacity(id.len() + MARKER.len() + 2 + body.len());
    out.push_str(id);
    out.push_str(MARKER);
    out.push(char::from(b'0' + padding as u8));
    out.push('_');
    out.extend(body.chars().map(|c| match c {
        '+' => '-',
        '/' => '_',
        other => other,
    }));
    Some(out)
}

/// Splits an id made by [`attach`] into the original id and the canonical signature
/// (`gemini:<raw>`); any other id comes back whole.
pub(crate) fn split(id: &str) -> (&str, Option<String>) {
    let Some(at) = id.find(MARKER) else { return (id, None) };
    let rest = &id[at + MARKER.len()..];
    let mut chars = rest.chars();
    let (Some(padding @ '0'..='2'), Some('_')) = (chars.next(), chars.next()) else { return (id, None) };
    let body = &rest[2..];
    if body.is_empty() {
        return (id, None);
    }
    let mut signature = String::with_capacity(GEMINI_SIGNATURE_PREFIX.len() + body.len() + 2);
    signature.push_str(GEMINI_SIGNATURE_PREFIX);
    signature.extend(body.chars().map(|c| match c {
        '-' => '+',
        '_' => '/',
        other => other,
    }));
    for _ in 0..(padding as u8 - b'0') {
        signature.push('=');
    }
    (&id[..at], Some(signature))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_round_trip_through_anthropic_safe_ids() {
        for raw in ["CiQBVKhc7l5mzkoZSRQfFeCS44vjuGk3o7tGr8==", "c2lnLWdlbWluaQ==", "ab+/cd=", "abcd", "a+b/"] {
            let id = attach("fc_1", raw).unwrap();
            assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'), "{id}");
            assert_eq!(split(&id), ("fc_1", Some(format!("gemini:{raw}"))));
        }
        assert_eq!(attach("x", "not base64!"), None);
        assert_eq!(attach("x", "abc==="), None);
        assert_eq!(split("toolu_01A"), ("toolu_01A", None));
        assert_eq!(split("a__gsig9_xyz"), ("a__gsig9_xyz", None));
        assert_eq!(split("a__gsig0_"), ("a__gsig0_", None));
    }
}
