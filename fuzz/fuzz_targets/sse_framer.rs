//! The SSE framer on arbitrary bytes in arbitrary chunks.
//!
//! Input: one control byte choosing the chunk sizes (0: one byte at a time), then the
//! stream. Properties: never panics; the chunked feed yields exactly the events of feeding
//! everything at once; events are the received bytes, in order, with nothing lost (what
//! `finish` drops is whitespace only); `parse_event` reads every event.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use llmux_wire::sse::{Framer, parse_event};

/// Events as returned while feeding `chunks`, then what `finish` returned.
fn frame<'a>(chunks: impl Iterator<Item = &'a [u8]>) -> (Vec<Bytes>, Option<Bytes>) {
    let mut framer = Framer::new();
    let mut events = Vec::new();
    for chunk in chunks {
        framer.push(chunk);
        while let Some(event) = framer.next_event() {
            events.push(event);
        }
    }
    // Asking again changes nothing.
    assert_eq!(framer.next_event(), None);
    let rest = framer.finish();
    assert_eq!(framer.buffered(), 0);
    assert_eq!(framer.finish(), None);
    (events, rest)
}

/// Chunk sizes 0..=16 from a xorshift generator seeded with `control`.
fn chunks(stream: &[u8], control: u8) -> Vec<&[u8]> {
    let mut state = u32::from(control) | 0x9e37_7900;
    let mut rest = stream;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let size = if control == 0 {
            1
        } else {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state % 17) as usize
        };
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        out.push(chunk);
        rest = tail;
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let whole = frame(std::iter::once(stream));
    let chunked = frame(chunks(stream, control).into_iter());
    assert_eq!(whole, chunked, "chunked feed (control byte {control}) differs from the whole feed");

    let (events, rest) = whole;
    let mut seen = Vec::with_capacity(stream.len());
    for event in &events {
        // Every event ends with its blank line.
        assert!(event.ends_with(b"\n") || event.ends_with(b"\r"), "event without terminator: {event:?}");
        seen.extend_from_slice(event);
    }
    if let Some(rest) = &rest {
        assert!(!rest.is_empty());
        seen.extend_from_slice(rest);
    }
    assert!(stream.starts_with(&seen), "events are not the received bytes");
    assert!(stream[seen.len()..].iter().all(u8::is_ascii_whitespace), "finish dropped non-whitespace bytes");

    for event in events.iter().chain(rest.iter()) {
        let parsed = parse_event(event);
        if let Some(name) = parsed.event {
            assert!(!name.contains(&b'\n') && !name.contains(&b'\r'));
        }
    }
});
