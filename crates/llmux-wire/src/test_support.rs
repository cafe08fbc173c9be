//! Helpers shared by this crate's tests.

use llmux_types::chat::{ContentPart, Message, Role, StreamEvent};
use serde_json::value::RawValue;

use crate::DecodeError;
use crate::sse::{Framer, parse_event};

pub fn message(role: Role, content: Vec<ContentPart>) -> Message {
    Message::new(role, content)
}

pub fn text(value: &str) -> ContentPart {
    ContentPart::Text(value.to_owned())
}

pub fn raw(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_owned()).unwrap()
}

/// Feeds an SSE byte stream, cut into `chunks`, through the framer and `decode` (one
/// event's data at a time); every event must decode.
pub fn decode_sse(
    chunks: &[&[u8]],
    mut decode: impl FnMut(&[u8]) -> Result<Vec<StreamEvent<'static>>, DecodeError>,
) -> Vec<StreamEvent<'static>> {
    let mut framer = Framer::new();
    let mut events = Vec::new();
    let mut feed = |raw: &[u8], events: &mut Vec<StreamEvent<'_>>| {
        if let Some(data) = parse_event(raw).data {
            events.extend(decode(&data).unwrap());
        }
    };
    for chunk in chunks {
        framer.push(chunk);
        while let Some(raw) = framer.next_event() {
            feed(&raw, &mut events);
        }
    }
    if let Some(raw) = framer.finish() {
        feed(&raw, &mut events);
    }
    events
}

/// `bytes` cut at `cuts` (each an index into `0..=bytes.len()`, any order).
pub fn cut_at<'a>(bytes: &'a [u8], cuts: &[proptest::sample::Index]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|cut| cut.index(bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut chunks = Vec::with_capacity(points.len() + 1);
    let mut from = 0;
    for point in points {
        chunks.push(&bytes[from..point]);
        from = point;
    }
    chunks.push(&bytes[from..]);
    chunks
}
