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
//!
//! A framer may be bounded ([`Framer::with_max_event`]): an event (so also a line)
//! longer than the bound is never returned; the framer stops there, drops what it
//! holds and says so ([`Framer::overflowed`]). It then holds at most the bound plus
//! the last chunk pushed.

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};

/// Splits a byte stream into raw SSE events.
#[derive(Debug)]
pub struct Framer {
    buf: BytesMut,
    /// Where scanning resumes (everything before has been looked at).
    scan: usize,
    /// Start of the line being scanned.
    line_start: usize,
    /// The longest event (terminator included) this framer returns.
    max_event: usize,
    /// An event longer than `max_event` came: nothing more is returned.
    overflowed: bool,
}

impl Default for Framer {
    fn default() -> Framer {
        Framer::with_max_event(usize::MAX)
    }
}

impl Framer {
    /// An unbounded framer.
    pub fn new() -> Framer {
        Framer::default()
    }

    /// A framer that refuses events longer than `max_event` bytes (terminator
    /// included): see [`overflowed`](Self::overflowed).
    pub fn with_max_event(max_event: usize) -> Framer {
        Framer { buf: BytesMut::new(), scan: 0, line_start: 0, max_event, overflowed: false }
    }

    /// Appends a received chunk (ignored once the framer has overflowed).
    pub fn push(&mut self, chunk: &[u8]) {
        if !self.overflowed {
            self.buf.extend_from_slice(chunk);
        }
    }

    /// Whether an event longer than the bound arrived (complete or not): the framer
    /// dropped it and returns nothing more.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// The next complete event, terminator included, if one has fully arrived.
    pub fn next_event(&mut self) -> Option<Bytes> {
        if self.overflowed {
            return None;
        }
        let mut pos = self.scan;
        loop {
            let Some(offset) = memchr::memchr2(b'\n', b'\r', &self.buf[pos..]) else {
                self.scan = self.buf.len();
                return self.incomplete();
            };
            let term = pos + offset;
            let mut next = term + 1;
            if self.buf[term] == b'\r' {
                if next == self.buf.len() {
                    // A `\r` at the end may be the first half of `\r\n`: wait for more.
                    self.scan = term;
                    return self.incomplete();
                }
                if self.buf[next] == b'\n' {
                    next += 1;
                }
            }
            if term == self.line_start {
                // A blank line: the event ends here.
                if next > self.max_event {
                    return self.overflow();
                }
                let event = self.buf.split_to(next).freeze();
                self.scan = 0;
                self.line_start = 0;
                return Some(event);
            }
            self.line_start = next;
            pos = next;
        }
    }

    /// No complete event buffered: `None`, and the end of the framer if the partial
    /// event is already over the bound.
    fn incomplete(&mut self) -> Option<Bytes> {
        if self.buf.len() > self.max_event {
            return self.overflow();
        }
        None
    }

    fn overflow(&mut self) -> Option<Bytes> {
        self.overflowed = true;
        self.buf = BytesMut::new();
        self.scan = 0;
        self.line_start = 0;
        None
    }

    /// At end of stream: whatever is left, as a final (unterminated) event.
    pub fn finish(&mut self) -> Option<Bytes> {
        self.scan = 0;
        self.line_start = 0;
        if self.overflowed || self.buf.len() > self.max_event {
            self.overflow();
            return None;
        }
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
