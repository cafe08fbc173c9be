//! Fleet events and their wire encoding: one compact JSON object per message on `<prefix>events`.

use serde::{Deserialize, Serialize};

/// Something one instance tells every instance of the fleet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FleetEvent {
    /// A virtual key was revoked or changed: drop whatever is cached about it.
    KeyChanged {
        /// The key's id (never the secret).
        key_id: String,
    },
    /// A team's settings (models, budget, limits) changed.
    TeamChanged {
        /// The team's name.
        team: String,
    },
    /// Circuit-breaker hint: the route should not be tried before `until_ms`.
    RouteResting {
        /// Provider name as configured.
        provider: String,
        /// The provider's model name.
        upstream_model: String,
        /// Unix time in milliseconds until which the route rests.
        until_ms: i64,
    },
    /// Local only, never sent over Redis (publishing it is refused): the subscription was
    /// re-established after an interruption or a failed first attempt, so events published
    /// in between were missed and anything cached from earlier events may be stale.
    Resubscribed,
}

/// An event as received, with the id of the instance that published it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetMessage {
    /// Instance id of the publisher (see [`crate::Fleet::instance_id`]).
    pub from: String,
    /// Whether this instance published it itself (`from` equals our own instance id).
    pub from_self: bool,
    /// The event.
    pub event: FleetEvent,
}

#[derive(Serialize)]
struct WireOut<'a> {
    from: &'a str,
    #[serde(flatten)]
    event: &'a FleetEvent,
}

#[derive(Deserialize)]
struct WireIn {
    from: String,
    #[serde(flatten)]
    event: FleetEvent,
}

/// Encodes an event as `{"from":"<instance>","type":"key_changed",...}`.
pub(crate) fn encode(from: &str, event: &FleetEvent) -> String {
    serde_json::to_string(&WireOut { from, event }).expect("events serialise to JSON")
}

/// Decodes a payload; `None` for anything malformed or of an unknown type (e.g. from a newer
/// version during a rolling upgrade) and for `Resubscribed`, which never travels.
pub(crate) fn decode(payload: &[u8], own_id: &str) -> Option<FleetMessage> {
    let wire: WireIn = serde_json::from_slice(payload).ok()?;
    if wire.event == FleetEvent::Resubscribed {
        return None;
    }
    Some(FleetMessage { from_self: wire.from == own_id, from: wire.from, event: wire.event })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_own_identification() {
        let event = FleetEvent::RouteResting {
            provider: "openai".into(),
            upstream_model: "gpt-4o".into(),
            until_ms: 1_700_000_000_123,
        };
        let text = encode("abc", &event);
        assert_eq!(
            text,
            r#"{"from":"abc","type":"route_resting","provider":"openai","upstream_model":"gpt-4o","until_ms":1700000000123}"#
        );
        let mine = decode(text.as_bytes(), "abc").unwrap();
        assert!(mine.from_self);
        assert_eq!(mine.event, event);
        let theirs = decode(text.as_bytes(), "xyz").unwrap();
        assert!(!theirs.from_self);
        assert_eq!(theirs.from, "abc");
    }

    #[test]
    fn unknown_malformed_and_local_only_are_ignored() {
        assert!(decode(br#"{"from":"a","type":"flux_capacitor"}"#, "b").is_none());
        assert!(decode(b"not json", "b").is_none());
        assert!(decode(br#"{"type":"key_changed","key_id":"k"}"#, "b").is_none());
        assert!(decode(br#"{"from":"a","type":"resubscribed"}"#, "b").is_none());
        let ok = decode(br#"{"from":"a","type":"key_changed","key_id":"k1"}"#, "b").unwrap();
        assert_eq!(ok.event, FleetEvent::KeyChanged { key_id: "k1".into() });
    }
}
