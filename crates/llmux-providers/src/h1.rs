//! Our HTTP/1.1 client connection, driven by the task that uses it.
//!
//! hyper's client connection runs in a task of its own: every request crosses tasks
//! twice (dispatch channel, wake-up, oneshot back) and every body chunk once more. Here
//! the request's own future writes the request and reads the response head, and the
//! response body reads the socket when it is polled, so a proxied request costs no
//! task hop. HTTP/2 stays with hyper (`client.rs`).
//!
//! What it speaks (RFC 9112, client side, no pipelining): one request at a time; the
//! response head parsed by `httparse` (1xx interim responses skipped); the body framed
//! by `Transfer-Encoding: chunked`, `Content-Length`, or the end of the connection, in
//! that order of precedence; no body for 204 and 304. A connection is reusable when
//! the response was HTTP/1.1 without `Connection: close`, its body was read to the end
//! and nothing followed it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, HeaderName, HeaderValue, TRANSFER_ENCODING};
use http::{HeaderMap, StatusCode, Version};
use hyper_rustls::MaybeHttpsStream;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::error::{ErrorKind, UpstreamError};

/// A connection as the connector returns it (TCP, or TLS over TCP), seen through
/// tokio's I/O traits.
pub(crate) type Io = TokioIo<MaybeHttpsStream<TokioIo<TcpStream>>>;

/// Response heads larger than this are refused.
const MAX_HEAD: usize = 64 * 1024;
/// Header count limit of one response head.
const MAX_HEADERS: usize = 128;
/// A chunk-size or trailer line longer than this is refused.
const MAX_LINE: usize = 4 * 1024;
/// Room the read buffer keeps free before each read.
const READ_RESERVE: usize = 8 * 1024;

/// One HTTP/1.1 connection, idle between requests.
pub(crate) struct Conn {
    /// Boxed: a TLS stream is large, and the connection moves through the pool, the
    /// request future and the response body.
    io: Box<Io>,
    /// Bytes read and not yet consumed.
    buf: BytesMut,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("buffered", &self.buf.len()).finish_non_exhaustive()
    }
}

/// Why a request failed on a connection.
#[derive(Debug)]
pub(crate) enum SendError {
    /// Nothing of the request was written: it may go out on another connection.
    NotSent,
    /// Some of it may have reached the server.
    Failed(UpstreamError),
}

/// A response head and the body still to be read from the connection.
pub(crate) struct Response {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Body,
}

impl Conn {
    pub(crate) fn new(io: Io) -> Conn {
        Conn { io: Box::new(io), buf: BytesMut::with_capacity(READ_RESERVE) }
    }

    /// Whether an idle connection can take a request: the server has neither closed it
    /// nor sent anything since the last response. Never waits; usually no system call
    /// (the runtime knows the socket has not become readable).
    pub(crate) fn is_usable(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(Waker::noop());
        let mut byte = [0u8; 1];
        let mut probe = ReadBuf::new(&mut byte);
        matches!(Pin::new(&mut *self.io).poll_read(&mut cx, &mut probe), Poll::Pending)
    }

    /// Writes `request` (a complete HTTP/1.1 request: head and body) and reads the
    /// response head. Dropping the future drops the connection.
    pub(crate) async fn send(mut self, request: &[u8]) -> Result<Response, SendError> {
        // The first write tells whether anything left: a pooled connection the server
        // closed fails here, and the request may still go out on another one.
        let written = match self.io.write(request).await {
            Ok(0) | Err(_) => return Err(SendError::NotSent),
            Ok(written) => written,
        };
        let failed = |_| SendError::Failed(UpstreamError::new(ErrorKind::Protocol));
        self.io.write_all(&request[written..]).await.map_err(failed)?;
        self.io.flush().await.map_err(failed)?;
        self.read_head().await.map_err(SendError::Failed)
    }

    async fn read_head(mut self) -> Result<Response, UpstreamError> {
        loop {
            if let Some((status, version, headers)) = self.parse_head()? {
                let (framing, keep_alive) = framing(status, version, &headers)?;
                return Ok(Response { status, version, headers, body: Body { conn: Some(self), framing, keep_alive } });
            }
            self.buf.reserve(READ_RESERVE);
            match self.io.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return Err(protocol()),
                Ok(_) => {}
            }
        }
    }

    /// The final response head, once the buffer holds it (interim 1xx responses are
    /// consumed and skipped). Not async, so its header array stays on the stack
    /// instead of in the request future.
    fn parse_head(&mut self) -> Result<Option<(StatusCode, Version, HeaderMap)>, UpstreamError> {
        while !self.buf.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut parsed = httparse::Response::new(&mut headers);
            let len = match parsed.parse(&self.buf) {
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) if self.buf.len() <= MAX_HEAD => return Ok(None),
                Ok(httparse::Status::Partial) | Err(_) => return Err(protocol()),
            };
            let code = parsed.code.unwrap_or(0);
            if (100..200).contains(&code) {
                if code == 101 {
                    return Err(protocol());
                }
                // Interim response (100 Continue, 103 Early Hints): skip it.
                self.buf.advance(len);
                continue;
            }
            let status = StatusCode::from_u16(code).map_err(|_| protocol())?;
            let version = if parsed.version == Some(0) { Version::HTTP_10 } else { Version::HTTP_11 };
            let mut map = HeaderMap::with_capacity(parsed.headers.len());
            for header in parsed.headers.iter() {
                let name = HeaderName::from_bytes(header.name.as_bytes()).map_err(|_| protocol())?;
                let value = HeaderValue::from_bytes(header.value).map_err(|_| protocol())?;
                map.append(name, value);
            }
            self.buf.advance(len);
            return Ok(Some((status, version, map)));
        }
        Ok(None)
    }

    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < READ_RESERVE / 8 {
            self.buf.reserve(READ_RESERVE);
        }
        let read = self.io.read_buf(&mut self.buf);
        std::pin::pin!(read).poll(cx)
    }
}

fn protocol() -> UpstreamError {
    UpstreamError::new(ErrorKind::Protocol)
}

/// How the response body ends, and whether the connection may be reused after it.
fn framing(status: StatusCode, version: Version, headers: &HeaderMap) -> Result<(Framing, bool), UpstreamError> {
    let close = headers.get_all(CONNECTION).iter().any(|value| {
        value.as_bytes().split(|b| *b == b',').any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"))
    });
    let keep_alive = version == Version::HTTP_11 && !close;
    if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Ok((Framing::Done, keep_alive));
    }
    if let Some(last) = headers.get_all(TRANSFER_ENCODING).iter().next_back() {
        let chunked = last
            .as_bytes()
            .rsplit(|b| *b == b',')
            .next()
            .is_some_and(|coding| coding.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        return Ok(if chunked { (Framing::Chunked(Chunk::Size), keep_alive) } else { (Framing::Eof, false) });
    }
    let mut length = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        let parsed = std::str::from_utf8(value.as_bytes())
            .ok()
            .filter(|text| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|text| text.parse::<u64>().ok())
            .ok_or_else(protocol)?;
        if length.is_some_and(|seen| seen != parsed) {
            return Err(protocol());
        }
        length = Some(parsed);
    }
    Ok(match length {
        Some(0) => (Framing::Done, keep_alive),
        Some(length) => (Framing::Length(length), keep_alive),
        None => (Framing::Eof, false),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// This many body bytes are still to come.
    Length(u64),
    Chunked(Chunk),
    /// The body ends with the connection.
    Eof,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines up to an empty line.
    Trailers,
}

/// A response body read from its connection as it is polled.
pub(crate) struct Body {
    conn: Option<Conn>,
    framing: Framing,
    keep_alive: bool,
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Body").field("framing", &self.framing).finish_non_exhaustive()
    }
}

/// What one step of body decoding produced.
enum Step {
    Data(Bytes),
    /// Decoding moved on; look again.
    Again,
    /// More bytes are needed from the connection.
    Fill,
    Done,
}

impl Body {
    pub(crate) fn is_end_stream(&self) -> bool {
        self.framing == Framing::Done
    }

    pub(crate) fn exact_length(&self) -> Option<u64> {
        match self.framing {
            Framing::Length(length) => Some(length),
            Framing::Done => Some(0),
            _ => None,
        }
    }

    /// The connection, once the body has been read to its end and the connection can
    /// take another request.
    pub(crate) fn take_reusable(&mut self) -> Option<Conn> {
        if self.framing != Framing::Done || !self.keep_alive {
            return None;
        }
        self.conn.take().filter(|conn| conn.buf.is_empty())
    }

    pub(crate) fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, UpstreamError>>> {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(if self.framing == Framing::Done { None } else { Some(Err(protocol())) });
            };
            let step = match decode(&mut self.framing, &mut conn.buf) {
                Ok(step) => step,
                Err(error) => {
                    self.fail();
                    return Poll::Ready(Some(Err(error)));
                }
            };
            match step {
                Step::Data(data) => return Poll::Ready(Some(Ok(data))),
                Step::Again => {}
                Step::Done => return Poll::Ready(None),
                Step::Fill => match ready!(conn.poll_fill(cx)) {
                    Ok(0) if self.framing == Framing::Eof => {
                        self.framing = Framing::Done;
                        self.keep_alive = false;
                        return Poll::Ready(None);
                    }
                    Ok(0) | Err(_) => {
                        self.fail();
                        return Poll::Ready(Some(Err(protocol())));
                    }
                    Ok(_) => {}
                },
            }
        }
    }

    fn fail(&mut self) {
        self.conn = None;
        self.keep_alive = false;
    }
}

/// Takes what `framing` allows out of `buf`. Pure, so any split of the bytes into
/// reads decodes the same (see the tests).
fn decode(framing: &mut Framing, buf: &mut BytesMut) -> Result<Step, UpstreamError> {
    match framing {
        Framing::Done => Ok(Step::Done),
        Framing::Eof if buf.is_empty() => Ok(Step::Fill),
        Framing::Eof => Ok(Step::Data(buf.split().freeze())),
        Framing::Length(remaining) => {
            if buf.is_empty() {
                return Ok(Step::Fill);
            }
            let take = (*remaining).min(buf.len() as u64);
            *remaining -= take;
            if *remaining == 0 {
                *framing = Framing::Done;
            }
            Ok(Step::Data(buf.split_to(take as usize).freeze()))
        }
        Framing::Chunked(Chunk::Data(remaining)) => {
            if buf.is_empty() {
                return Ok(Step::Fill);
            }
            let take = (*remaining).min(buf.len() as u64);
            *remaining -= take;
            if *remaining == 0 {
                *framing = Framing::Chunked(Chunk::DataEnd);
            }
            Ok(Step::Data(buf.split_to(take as usize).freeze()))
        }
        Framing::Chunked(Chunk::DataEnd) => {
            if buf.len() < 2 {
                return Ok(Step::Fill);
            }
            if &buf[..2] != b"\r\n" {
                return Err(protocol());
            }
            buf.advance(2);
            *framing = Framing::Chunked(Chunk::Size);
            Ok(Step::Again)
        }
        Framing::Chunked(state @ (Chunk::Size | Chunk::Trailers)) => {
            let Some(newline) = memchr::memchr(b'\n', buf) else {
                return if buf.len() > MAX_LINE { Err(protocol()) } else { Ok(Step::Fill) };
            };
            let line = buf[..newline].strip_suffix(b"\r").ok_or_else(protocol)?;
            if *state == Chunk::Trailers {
                let last = line.is_empty();
                buf.advance(newline + 1);
                if last {
                    *framing = Framing::Done;
                    return Ok(Step::Done);
                }
                return Ok(Step::Again);
            }
            let size = chunk_size(line)?;
            buf.advance(newline + 1);
            *framing = Framing::Chunked(if size == 0 { Chunk::Trailers } else { Chunk::Data(size) });
            Ok(Step::Again)
        }
    }
}

/// The hexadecimal size at the start of a chunk-size line (extensions after `;` are
/// ignored).
fn chunk_size(line: &[u8]) -> Result<u64, UpstreamError> {
    let digits = line.split(|b| *b == b';').next().unwrap_or_default().trim_ascii();
    if digits.is_empty() || digits.len() > 15 {
        return Err(protocol());
    }
    let mut size = 0u64;
    for digit in digits {
        let value = (*digit as char).to_digit(16).ok_or_else(protocol)?;
        size = size * 16 + u64::from(value);
    }
    Ok(size)
}

/// Serialises a request for an HTTP/1.1 connection: origin-form target, `Host` (unless
/// the request has one), the request's headers except framing ones, and a
/// `Content-Length` for the body.
pub(crate) fn encode_request(request: &http::Request<Bytes>, host: &HeaderValue) -> Vec<u8> {
    let body = request.body();
    let target = request.uri().path_and_query().map_or("/", |path| path.as_str());
    let mut out = Vec::with_capacity(256 + target.len() + body.len());
    out.extend_from_slice(request.method().as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if !request.headers().contains_key(http::header::HOST) {
        out.extend_from_slice(b"host: ");
        out.extend_from_slice(host.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in request.headers() {
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() || request.method() != http::Method::GET {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(body.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
#[path = "h1_tests.rs"]
mod tests;
