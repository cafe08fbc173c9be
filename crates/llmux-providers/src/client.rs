//! The only place that does upstream HTTP: one client per provider entry (its connect
//! timeout and connection pool belong to that provider). HTTP/1.1 and HTTP/2 over TCP
//! or TLS (rustls with the system's root certificates; HTTP/2 when the server picks it
//! by ALPN).
//!
//! The pool is our own. HTTP/1.1 connections are ours too (`h1.rs`: driven by the
//! request's task, no connection task); HTTP/2 ones are hyper's, shared. A request
//! checks out an idle HTTP/1.1 connection (most recently used first), or opens one,
//! and the connection goes back to the pool when the response body has been read to
//! the end. A request that a pooled connection could not even start (the server had
//! closed it while idle) is retried on another connection; once any byte of it may
//! have been written it is never retried here (the caller's failover decides).

use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tower_service::Service;

use crate::error::{ErrorKind, UpstreamError};
use crate::h1;

/// An upstream response with a streaming body.
pub type UpstreamResponse = http::Response<UpstreamBody>;

/// Idle connections kept per upstream host.
const MAX_IDLE: usize = 256;
/// Idle connections older than this are closed instead of reused (servers commonly
/// close keep-alive connections after 60 to 120 s).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// A pooled HTTP client for one provider.
#[derive(Debug, Clone)]
pub struct UpstreamClient {
    connector: HttpsConnector<HttpConnector>,
    /// Deadline for opening a connection (TCP and TLS) unless a request says otherwise.
    connect_timeout: Duration,
    hosts: Arc<Mutex<Vec<Arc<HostPool>>>>,
}

/// The connections to one scheme + authority.
#[derive(Debug)]
struct HostPool {
    scheme: Scheme,
    authority: Authority,
    /// The `Host` header for HTTP/1.1 requests.
    host: HeaderValue,
    state: Mutex<HostState>,
}

#[derive(Debug, Default)]
struct HostState {
    /// Most recently returned last.
    idle: Vec<(h1::Conn, Instant)>,
    /// A shared HTTP/2 connection, once a server chose HTTP/2.
    h2: Option<http2::SendRequest<Full<Bytes>>>,
}

impl HostPool {
    fn lock(&self) -> std::sync::MutexGuard<'_, HostState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn checkout(&self) -> Option<Sender> {
        let mut state = self.lock();
        if let Some(h2) = &state.h2 {
            if !h2.is_closed() {
                return Some(Sender::H2(h2.clone()));
            }
            state.h2 = None;
        }
        let now = Instant::now();
        while let Some((mut conn, since)) = state.idle.pop() {
            if now.duration_since(since) > IDLE_TIMEOUT {
                // Everything below is older still.
                state.idle.clear();
                return None;
            }
            if conn.is_usable() {
                return Some(Sender::H1(conn));
            }
        }
        None
    }

    fn checkin(&self, conn: h1::Conn) {
        let mut state = self.lock();
        if state.idle.len() >= MAX_IDLE {
            state.idle.remove(0);
        }
        state.idle.push((conn, Instant::now()));
    }
}

enum Sender {
    H1(h1::Conn),
    H2(http2::SendRequest<Full<Bytes>>),
}

fn protocol_error(error: &hyper::Error) -> UpstreamError {
    UpstreamError::new(if error.is_timeout() { ErrorKind::Timeout } else { ErrorKind::Protocol })
}

fn connect_error() -> UpstreamError {
    UpstreamError::new(ErrorKind::Connect)
}

impl UpstreamClient {
    pub fn new(connect_timeout: Duration) -> Result<UpstreamClient, String> {
        // The one TLS provider in the build (aws-lc-rs); ignore "already installed".
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        // Applied per request around the whole connect (TCP and TLS), see `send_with`.
        http.set_connect_timeout(None);
        http.set_keepalive(Some(Duration::from_secs(60)));
        let builder = match hyper_rustls::HttpsConnectorBuilder::new().with_native_roots() {
            Ok(builder) => builder,
            Err(error) => {
                // Plain-HTTP upstreams (local vLLM, Ollama, the mock) still work.
                tracing::warn!(%error, "No system root certificates found; HTTPS upstreams will fail.");
                let roots = rustls::RootCertStore::empty();
                let tls = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
                hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls)
            }
        };
        let connector = builder.https_or_http().enable_http1().enable_http2().wrap_connector(http);
        Ok(UpstreamClient { connector, connect_timeout, hosts: Arc::default() })
    }

    fn host_pool(&self, uri: &Uri) -> Result<Arc<HostPool>, UpstreamError> {
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            return Err(connect_error());
        };
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(pool) = hosts.iter().find(|pool| pool.scheme == *scheme && pool.authority == *authority) {
            return Ok(pool.clone());
        }
        let host = HeaderValue::from_str(authority.as_str()).map_err(|_| connect_error())?;
        let pool =
            Arc::new(HostPool { scheme: scheme.clone(), authority: authority.clone(), host, state: Mutex::default() });
        hosts.push(pool.clone());
        Ok(pool)
    }

    /// Sends `request` (an absolute URI) and resolves when the response headers
    /// arrive. Deadlines are the caller's (one timer per attempt covers headers and
    /// body).
    pub async fn send(&self, request: http::Request<Bytes>) -> Result<UpstreamResponse, UpstreamError> {
        self.send_with(request, None).await
    }

    /// [`send`](Self::send), with `connect_timeout` (when given) instead of the client's
    /// for a connection this request has to open.
    pub async fn send_with(
        &self,
        request: http::Request<Bytes>,
        connect_timeout: Option<Duration>,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let pool = self.host_pool(request.uri())?;
        let mut encoded = None;
        // Pooled connections first; a request they could not start comes back to us.
        while let Some(sender) = pool.checkout() {
            match sender {
                Sender::H2(mut sender) => {
                    return match sender.send_request(request.map(Full::new)).await {
                        Ok(response) => Ok(response.map(UpstreamBody::h2)),
                        Err(error) => Err(protocol_error(&error)),
                    };
                }
                Sender::H1(conn) => {
                    let bytes = encoded.get_or_insert_with(|| h1::encode_request(&request, &pool.host));
                    match conn.send(bytes).await {
                        Ok(response) => return Ok(h1_response(response, pool)),
                        Err(h1::SendError::NotSent) => continue,
                        Err(h1::SendError::Failed(error)) => return Err(error),
                    }
                }
            }
        }
        // Boxed: connecting (TLS, HTTP/2 handshake) makes a large future, and it is
        // the rare path; unboxed it would be moved around on every request.
        let connect_timeout = connect_timeout.unwrap_or(self.connect_timeout);
        Box::pin(self.send_on_new_connection(pool, request, encoded, connect_timeout)).await
    }

    async fn send_on_new_connection(
        &self,
        pool: Arc<HostPool>,
        request: http::Request<Bytes>,
        encoded: Option<Vec<u8>>,
        connect_timeout: Duration,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let uri = Uri::builder()
            .scheme(pool.scheme.clone())
            .authority(pool.authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|_| connect_error())?;
        let io = match tokio::time::timeout(connect_timeout, self.connector.clone().call(uri)).await {
            Ok(Ok(io)) => io,
            Ok(Err(_)) | Err(_) => return Err(connect_error()),
        };
        if io.connected().is_negotiated_h2() {
            let (mut sender, connection) =
                http2::handshake(TokioExecutor::new(), io).await.map_err(|error| protocol_error(&error))?;
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "Upstream HTTP/2 connection ended with an error.");
                }
            });
            pool.lock().h2 = Some(sender.clone());
            let response = sender.send_request(request.map(Full::new)).await.map_err(|error| protocol_error(&error))?;
            return Ok(response.map(UpstreamBody::h2));
        }
        let encoded = encoded.unwrap_or_else(|| h1::encode_request(&request, &pool.host));
        match h1::Conn::new(TokioIo::new(io)).send(&encoded).await {
            Ok(response) => Ok(h1_response(response, pool)),
            Err(h1::SendError::NotSent) => Err(connect_error()),
            Err(h1::SendError::Failed(error)) => Err(error),
        }
    }
}

fn h1_response(response: h1::Response, pool: Arc<HostPool>) -> UpstreamResponse {
    let h1::Response { status, version, headers, body } = response;
    let mut body = UpstreamBody { inner: Inner::H1 { body, pool }, max_event: usize::MAX };
    body.check_in();
    let mut response = http::Response::new(body);
    *response.status_mut() = status;
    *response.version_mut() = version;
    *response.headers_mut() = headers;
    response
}

/// An upstream response body. Read to its end, it returns its HTTP/1.1 connection to
/// the pool; dropped before that, the connection is closed (it cannot be reused).
///
/// Reading is bounded by whoever reads: [`read_capped`](Self::read_capped) for a whole
/// answer; a stream's reader frames events within [`max_event`](Self::max_event). Data
/// arrives in pieces of at most one read (HTTP/1.1, 8 KiB) or one frame (HTTP/2,
/// 16 KiB), so nothing here holds more than that.
#[derive(Debug)]
pub struct UpstreamBody {
    inner: Inner,
    /// The longest SSE event a reader of this body should accept (`usize::MAX`: no
    /// bound set).
    max_event: usize,
}

/// Why [`UpstreamBody::read_capped`] failed.
#[derive(Debug)]
pub enum ReadError {
    /// The body is (or says it will be) longer than the cap.
    TooLarge,
    /// The connection failed while reading.
    Failed(UpstreamError),
}

#[derive(Debug)]
enum Inner {
    H1 { body: h1::Body, pool: Arc<HostPool> },
    H2(Incoming),
}

impl UpstreamBody {
    fn h2(body: Incoming) -> UpstreamBody {
        UpstreamBody { inner: Inner::H2(body), max_event: usize::MAX }
    }

    /// Sets the longest SSE event a reader of this body should accept.
    pub fn set_max_event(&mut self, max_event: usize) {
        self.max_event = max_event;
    }

    /// The longest SSE event a reader of this body should accept.
    pub fn max_event(&self) -> usize {
        self.max_event
    }

    /// Reads the whole body, refusing it as soon as it is known to exceed `cap` bytes: a
    /// `Content-Length` over it is refused before any byte is read, and otherwise
    /// reading stops at the piece that crosses it. Never holds more than `cap` plus one
    /// piece; a body of known length is read into one allocation of that size, one of
    /// unknown length is kept as received and joined at the end.
    pub async fn read_capped(mut self, cap: usize) -> Result<Bytes, ReadError> {
        use http_body_util::BodyExt;
        let exact = self.size_hint().exact();
        if exact.is_some_and(|length| length > cap as u64) {
            return Err(ReadError::TooLarge);
        }
        let mut pieces: Vec<Bytes> = Vec::new();
        let mut total = 0usize;
        while let Some(frame) = self.frame().await {
            let Ok(data) = frame.map_err(ReadError::Failed)?.into_data() else { continue };
            total = total.saturating_add(data.len());
            if total > cap {
                return Err(ReadError::TooLarge);
            }
            if !data.is_empty() {
                pieces.push(data);
            }
        }
        Ok(match pieces.len() {
            0 => Bytes::new(),
            1 => pieces.pop().unwrap_or_default(),
            _ => {
                let mut joined = bytes::BytesMut::with_capacity(total);
                for piece in pieces {
                    joined.extend_from_slice(&piece);
                }
                joined.freeze()
            }
        })
    }

    /// Returns the connection to the pool as soon as the body has been read.
    fn check_in(&mut self) {
        if let Inner::H1 { body, pool } = &mut self.inner
            && let Some(conn) = body.take_reusable()
        {
            pool.checkin(conn);
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = UpstreamError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, UpstreamError>>> {
        let this = self.get_mut();
        match &mut this.inner {
            Inner::H1 { body, .. } => {
                let data = ready!(body.poll_data(cx));
                this.check_in();
                Poll::Ready(data.map(|data| data.map(Frame::data)))
            }
            Inner::H2(body) => {
                let frame = ready!(std::pin::Pin::new(body).poll_frame(cx));
                Poll::Ready(frame.map(|frame| frame.map_err(|error| protocol_error(&error))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::H1 { body, .. } => body.is_end_stream(),
            Inner::H2(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::H1 { body, .. } => match body.exact_length() {
                Some(length) => SizeHint::with_exact(length),
                None => SizeHint::default(),
            },
            Inner::H2(body) => body.size_hint(),
        }
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
