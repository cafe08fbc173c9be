//! Incremental Server-Sent-Events framing.
//!
//! [`Framer`] takes byte chunks as they arrive and hands back whole events as
//! [`Bytes`] slices of what was received (terminator included), so a relay can forward
//! an event byte-for-byte. [`parse_event`] reads an event's fields without copying in
//! the common single-`data:`-line case.
//!
//! Rules followed (WHATWG): lines end in `\n`, `\r\n` or `\r`; a blank line ends an
//! event; lines starting with `:` are comments; `data:` may or may not be followed by
//! one space; several `data:` lines join with `\n`.

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};

/// Splits a byte stream into raw SSE events.
#[derive(Debug, Default)]
pub struct Framer {
    buf: BytesMut,
    /// Where scanning resumes (everything before has been looked at).
    scan: usize,
    /// Start of the line being scanned.
    line_start: usize,
}

impl Framer {
    pub fn new() -> Framer {
        Framer::default()
    }

    /// Appends a received chunk.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete event, terminator included, if one has fully arrived.
    pub fn next_event(&mut self) -> Option<Bytes> {
        let mut pos = self.scan;
        loop {
            let Some(offset) = memchr::memchr2(b'\n', b'\r', &self.buf[pos..]) else {
                self.scan = self.buf.len();
                return None;
            };
            let term = pos + offset;
            let mut next = term + 1;
            if self.buf[term] == b'\r' {
                if next == self.buf.len() {
                    // A `\r` at the end may be the first half of `\r\n`: wait for more.
                    self.scan = term;
                    return None;
                }
                if self.buf[next] == b'\n' {
                    next += 1;
                }
            }
            if term == self.line_start {
                // A blank line: the event ends here.
                let event = self.buf.split_to(next).freeze();
                self.scan = 0;
                self.line_start = 0;
                return Some(event);
            }
            self.line_start = next;
            pos = next;
        }
    }

    /// At end of stream: whatever is left, as a final (unterminated) event.
    pub fn finish(&mut self) -> Option<Bytes> {
        self.scan = 0;
        self.line_start = 0;
        if self.buf.iter().all(|b| b.is_ascii_whitespace()) {
            self.buf.clear();
            return None;
        }
        Some(self.buf.split().freeze())
    }

    /// Bytes received but not yet returned as an event.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

/// The fields of one event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event<'a> {
    /// The `event:` field, if any.
    pub event: Option<&'a [u8]>,
    /// The joined `data:` lines; `None` when the event had no data line.
    pub data: Option<Cow<'a, [u8]>>,
}

/// Reads the fields of a raw event as returned by [`Framer::next_event`].
pub fn parse_event(raw: &[u8]) -> Event<'_> {
    let mut event = Event::default();
    for line in lines(raw) {
        if line.is_empty() || line[0] == b':' {
            continue;
        }
        let (name, value) = match memchr::memchr(b':', line) {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match name {
            b"data" => {
                event.data = Some(match event.data.take() {
                    None => Cow::Borrowed(value),
                    Some(previous) => {
                        let mut joined = previous.into_owned();
                        joined.push(b'\n');
                        joined.extend_from_slice(value);
                        Cow::Owned(joined)
                    }
                });
            }
            b"event" => event.event = Some(value),
            _ => {}
        }
    }
    event
}

/// Lines of `raw`, terminators removed.
fn lines(raw: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = raw;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match memchr::memchr2(b'\n', b'\r', rest) {
            Some(term) => {
                let line = &rest[..term];
                let mut next = term + 1;
                if rest[term] == b'\r' && rest.get(next) == Some(&b'\n') {
                    next += 1;
                }
                rest = &rest[next..];
                Some(line)
            }
            None => {
                let line = rest;
                rest = &[];
                Some(line)
            }
        }
    })
}

/// Appends one `data:` event to `out`.
pub fn write_data_event(out: &mut Vec<u8>, data: &[u8]) {
    out.reserve(data.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
}

#[cfg(test)]
mod tests;
