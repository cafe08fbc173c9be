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
