use proptest::prelude::*;

use super::*;

fn all_events(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut framer = Framer::new();
    let mut out = Vec::new();
    for chunk in chunks {
        framer.push(chunk);
        while let Some(event) = framer.next_event() {
            out.push(event.to_vec());
        }
    }
    if let Some(rest) = framer.finish() {
        out.push(rest.to_vec());
    }
    out
}

fn data_of(raw: &[u8]) -> Option<Vec<u8>> {
    parse_event(raw).data.map(|d| d.into_owned())
}

#[test]
fn splits_events_and_keeps_raw_bytes() {
    let events = all_events(&[b"data: a\n\ndata: b\r\n\r\n: keep-alive\n\nevent: x\ndata: c\n\n"]);
    assert_eq!(events.len(), 4);
    assert_eq!(events[0], b"data: a\n\n");
    assert_eq!(events[1], b"data: b\r\n\r\n");
    assert_eq!(data_of(&events[2]), None);
    let parsed = parse_event(&events[3]);
    assert_eq!(parsed.event, Some(&b"x"[..]));
    assert_eq!(parsed.data.as_deref(), Some(&b"c"[..]));
}

#[test]
fn joins_multi_line_data_and_accepts_no_space() {
    let events = all_events(&[b"data:one\ndata: two\n\n"]);
    assert_eq!(data_of(&events[0]).unwrap(), b"one\ntwo");
}

#[test]
fn waits_for_split_crlf() {
    let mut framer = Framer::new();
    framer.push(b"data: a\r\n\r");
    assert!(framer.next_event().is_none());
    framer.push(b"\ndata: b\n\n");
    assert_eq!(framer.next_event().unwrap().as_ref(), b"data: a\r\n\r\n");
    assert_eq!(framer.next_event().unwrap().as_ref(), b"data: b\n\n");
}

#[test]
fn unterminated_tail_is_returned_at_finish() {
    let events = all_events(&[b"data: a\n\ndata: [DONE]"]);
    assert_eq!(events.len(), 2);
    assert_eq!(data_of(&events[1]).unwrap(), b"[DONE]");
}

#[test]
fn leading_blank_lines_are_empty_events() {
    let events = all_events(&[b"\n\ndata: x\n\n"]);
    assert_eq!(data_of(events.last().unwrap()).unwrap(), b"x");
}

/// Feeds `chunks` to a framer bounded at `max`: the events returned, and whether it
/// overflowed; asserts that it never holds more than `max` plus the last chunk.
fn bounded_events(max: usize, chunks: &[&[u8]]) -> (Vec<Vec<u8>>, bool) {
    let mut framer = Framer::with_max_event(max);
    let mut out = Vec::new();
    for chunk in chunks {
        framer.push(chunk);
        while let Some(event) = framer.next_event() {
            assert!(event.len() <= max, "an event over the bound was returned");
            out.push(event.to_vec());
        }
        assert!(framer.buffered() <= max, "holds {} bytes after draining", framer.buffered());
        if framer.overflowed() {
            break;
        }
    }
    if let Some(rest) = framer.finish() {
        out.push(rest.to_vec());
    }
    (out, framer.overflowed())
}

#[test]
fn events_within_the_bound_pass() {
    let (events, overflowed) = bounded_events(
        16,
        &[
            b"data: 1234567

",
            b"data: 12345

",
        ],
    );
    assert_eq!(
        events,
        [
            b"data: 1234567

"
            .to_vec(),
            b"data: 12345

"
            .to_vec()
        ]
    );
    assert!(!overflowed);
}

#[test]
fn an_endless_line_overflows_without_growing() {
    let mut framer = Framer::with_max_event(1024);
    framer.push(
        b"data: ok

",
    );
    assert_eq!(
        framer.next_event().as_deref(),
        Some(
            &b"data: ok

"[..]
        )
    );
    framer.push(b"data: ");
    let chunk = [b'x'; 100];
    let mut pushed = 0;
    while !framer.overflowed() {
        framer.push(&chunk);
        pushed += chunk.len();
        assert_eq!(framer.next_event(), None);
        assert!(pushed < 2048, "no overflow after {pushed} bytes");
    }
    assert_eq!(framer.buffered(), 0);
    // Once overflowed, nothing more is kept or returned, not even a later whole event.
    framer.push(
        b"

data: later

",
    );
    assert_eq!((framer.next_event(), framer.buffered(), framer.finish()), (None, 0, None));
}

#[test]
fn a_complete_event_over_the_bound_overflows() {
    // Many short lines: no line is long, the event is.
    let big = b"data: 12345
"
    .repeat(10);
    let stream = [
        b"data: first

"
        .as_slice(),
        &big,
        b"
",
        b"data: after

",
    ]
    .concat();
    let (events, overflowed) = bounded_events(64, &[&stream]);
    assert_eq!(
        events,
        [b"data: first

"
        .to_vec()]
    );
    assert!(overflowed);
}

#[test]
fn an_unterminated_tail_over_the_bound_is_not_returned() {
    let (events, overflowed) = bounded_events(
        1000,
        &[
            b"data: a

",
            &[b'y'; 600],
            &[b'y'; 600],
        ],
    );
    assert_eq!(
        events,
        [b"data: a

"
        .to_vec()]
    );
    assert!(overflowed);
    let (events, overflowed) = bounded_events(
        1000,
        &[
            b"data: a

",
            &[b'y'; 600],
        ],
    );
    assert_eq!(events.len(), 2);
    assert!(!overflowed);
}

proptest! {
    /// A bound at least as large as every event changes nothing; any smaller bound
    /// returns only whole events within it, in order, and says that it overflowed.
    #[test]
    fn a_bound_returns_a_prefix_of_the_events(
        sizes in proptest::collection::vec(0usize..60, 1..10),
        max in 8usize..80,
        cut in 1usize..50,
    ) {
        let mut stream = Vec::new();
        for size in &sizes {
            stream.extend_from_slice(b"data: ");
            stream.extend(std::iter::repeat_n(b'z', *size));
            stream.extend_from_slice(b"\n\n");
        }
        let unbounded = all_events(&[&stream]);
        let chunks: Vec<&[u8]> = stream.chunks(cut).collect();
        let (bounded, overflowed) = bounded_events(max, &chunks);
        let fits = unbounded.iter().take_while(|event| event.len() <= max).count();
        prop_assert_eq!(&bounded[..], &unbounded[..fits]);
        prop_assert_eq!(overflowed, fits < unbounded.len());
    }
}

proptest! {
    /// Any chunking of a stream yields the same events as feeding it whole.
    #[test]
    fn any_chunking_yields_the_same_events(
        events in proptest::collection::vec(("[a-z]{0,3}", "[ -~]{0,40}", 0usize..3), 0..12),
        cuts in proptest::collection::vec(0usize..400, 0..12),
    ) {
        let terminators: [&[u8]; 3] = [b"\n", b"\r\n", b"\r"];
        let mut stream = Vec::new();
        for (name, data, term) in &events {
            let term = terminators[*term];
            if !name.is_empty() {
                stream.extend_from_slice(b"event: ");
                stream.extend_from_slice(name.as_bytes());
                stream.extend_from_slice(term);
            }
            stream.extend_from_slice(b"data: ");
            stream.extend_from_slice(data.replace(['\r', '\n'], "").as_bytes());
            stream.extend_from_slice(term);
            stream.extend_from_slice(term);
        }
        let whole = all_events(&[&stream]);
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(stream.len())).collect();
        cuts.sort_unstable();
        let mut chunks: Vec<&[u8]> = Vec::new();
        let mut start = 0;
        for cut in cuts {
            chunks.push(&stream[start..cut]);
            start = cut;
        }
        chunks.push(&stream[start..]);
        let pieces = all_events(&chunks);
        let whole_data: Vec<_> = whole.iter().map(|e| data_of(e)).collect();
        let piece_data: Vec<_> = pieces.iter().map(|e| data_of(e)).collect();
        prop_assert_eq!(whole_data, piece_data);
        prop_assert_eq!(whole.concat(), stream.clone());
        prop_assert_eq!(pieces.concat(), stream);
    }
}
