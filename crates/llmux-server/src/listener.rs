//! The accept loop: our own, so that nothing a client does can hold the server.
//!
//! Each connection is served by hyper (HTTP/1.1 or h2c, detected from the first bytes)
//! with a timer, and bounded in every way a client could stall it:
//! - the first request's head must arrive within `server.header_read_timeout_ms`
//!   (HTTP/1: every request's head, by hyper's own timer);
//! - a connection with no request in flight is closed after `server.keep_alive_timeout_ms`;
//! - a write toward the client that stays blocked `server.write_timeout_ms` (the client
//!   stopped reading) fails the connection, so its response stream is dropped and the
//!   upstream released (`WriteTimeout`);
//! - at most `server.max_connections` are open; one more is accepted and closed at once
//!   (`llmux_connections_refused_total`);
//! - an HTTP/2 client opens at most `server.http2_max_concurrent_streams` streams.
//!
//! Every request gets its request id (`x-request-id`) before a handler runs, and a
//! handler that panics answers 500 in the caller's dialect with that id; the connection
//! and the process go on.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response};
use futures_util::FutureExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use llmux_config::ServerConfig;
use llmux_gateway::error::ErrorCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::{Instant, Sleep};

use crate::error::{Dialect, REQUEST_ID, render};

/// What the accept loop takes from `[server]` (read at start).
#[derive(Debug, Clone)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub keep_alive_timeout: Duration,
    pub write_timeout: Duration,
    pub max_connections: usize,
    pub http2_max_concurrent_streams: u32,
}

impl Limits {
    pub fn from_config(server: &ServerConfig) -> Limits {
        Limits {
            header_read_timeout: server.header_read_timeout,
            keep_alive_timeout: server.keep_alive_timeout,
            write_timeout: server.write_timeout,
            max_connections: server.max_connections,
            http2_max_concurrent_streams: server.http2_max_concurrent_streams,
        }
    }
}

/// Connection counters, rendered on `/metrics`.
#[derive(Debug, Default)]
pub struct ConnStats {
    open: AtomicUsize,
    refused: AtomicU64,
    panics: AtomicU64,
    /// Woken when the last connection closes.
    closed: Notify,
}

impl ConnStats {
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(out, "# TYPE llmux_connections_open gauge\nllmux_connections_open {}", self.open());
        let _ = writeln!(
            out,
            "# TYPE llmux_connections_refused_total counter\nllmux_connections_refused_total {}",
            self.refused.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# TYPE llmux_handler_panics_total counter\nllmux_handler_panics_total {}",
            self.panics.load(Ordering::Relaxed)
        );
    }
}

/// Shutdown phases the connections follow.
const RUNNING: u8 = 0;
const DRAINING: u8 = 1;
const CLOSING: u8 = 2;

/// Accepts until `shutdown` resolves, then stops accepting (the listener is closed), lets
/// open connections finish their requests for up to `grace`, and closes the rest.
pub async fn run(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    stats: Arc<ConnStats>,
    shutdown: impl Future<Output = ()> + Send,
    grace: Duration,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.http2_max_concurrent_streams)
        .max_pending_accept_reset_streams(Some(64))
        .max_header_list_size(64 * 1024);
    let builder = Arc::new(builder);
    let (phase_tx, phase) = watch::channel(RUNNING);
    let limits = Arc::new(limits);
    tokio::pin!(shutdown);
    let mut last_accept_error: Option<Instant> = None;
    loop {
        let (stream, remote) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors or a connection reset before it was accepted:
                    // wait a moment rather than spin; log at most once a second.
                    if last_accept_error.is_none_or(|at| at.elapsed() > Duration::from_secs(1)) {
                        tracing::warn!(%error, "accept failed");
                        last_accept_error = Some(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        if stats.open.load(Ordering::Relaxed) >= limits.max_connections {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        }
        // Small SSE frames must leave at once, not wait for Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        stats.open.fetch_add(1, Ordering::Relaxed);
        let open = OpenGuard(stats.clone());
        let connection = Connection {
            builder: builder.clone(),
            router: router.clone(),
            limits: limits.clone(),
            stats: stats.clone(),
            phase: phase.clone(),
            remote,
        };
        tokio::spawn(async move {
            connection.serve(stream).await;
            drop(open);
        });
    }
    drop(listener);
    tracing::info!(
        grace_ms = grace.as_millis() as u64,
        "Shutting down: no new connections; finishing in-flight requests."
    );
    let _ = phase_tx.send(DRAINING);
    if tokio::time::timeout(grace, all_closed(&stats)).await.is_err() {
        tracing::warn!("Shutdown grace period over; closing remaining connections.");
        let _ = phase_tx.send(CLOSING);
        // Let dropped streams settle their usage records.
        let _ = tokio::time::timeout(Duration::from_secs(1), all_closed(&stats)).await;
    }
}

async fn all_closed(stats: &ConnStats) {
    loop {
        let closed = stats.closed.notified();
        if stats.open() == 0 {
            return;
        }
        closed.await;
    }
}

struct OpenGuard(Arc<ConnStats>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.0.closed.notify_waiters();
        }
    }
}

struct Connection {
    builder: Arc<auto::Builder<TokioExecutor>>,
    router: Router,
    limits: Arc<Limits>,
    stats: Arc<ConnStats>,
    phase: watch::Receiver<u8>,
    remote: SocketAddr,
}

/// Requests in flight on one connection, and since when it has had none.
#[derive(Debug)]
struct Activity {
    in_flight: AtomicUsize,
    /// Milliseconds since `epoch` when the last request finished; `u64::MAX` while no
    /// request has started yet.
    idle_since_ms: AtomicU64,
    epoch: Instant,
    /// Per response body in flight: since when (ms since `epoch`) a frame it yielded
    /// has waited for hyper to ask for the next one (`u64::MAX`: not waiting). A
    /// client that stops reading stops hyper from asking: over HTTP/2 its flow-control
    /// window closes before any socket write blocks, so `WriteTimeout` alone would
    /// never see it.
    bodies: std::sync::Mutex<Vec<Arc<AtomicU64>>>,
}

impl Activity {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The oldest frame still waiting to be taken, in ms since `epoch`.
    fn oldest_waiting(&self) -> Option<u64> {
        let bodies = self.bodies.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        bodies.iter().map(|since| since.load(Ordering::Relaxed)).filter(|since| *since != u64::MAX).min()
    }
}

/// Held by a response body: the request is in flight until hyper drops it.
struct InFlight {
    activity: Arc<Activity>,
    waiting: Arc<AtomicU64>,
}

impl InFlight {
    fn start(activity: &Arc<Activity>) -> InFlight {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        let waiting = Arc::new(AtomicU64::new(u64::MAX));
        activity.bodies.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(waiting.clone());
        InFlight { activity: activity.clone(), waiting }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.activity;
        {
            let mut bodies = activity.bodies.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(index) = bodies.iter().position(|body| Arc::ptr_eq(body, &self.waiting)) {
                bodies.swap_remove(index);
            }
        }
        // Stamp first, so the watcher never sees zero requests with an old stamp.
        activity.idle_since_ms.store(activity.now_ms(), Ordering::Release);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Connection {
    async fn serve(mut self, stream: TcpStream) {
        let activity = Arc::new(Activity {
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(u64::MAX),
            epoch: Instant::now(),
            bodies: std::sync::Mutex::new(Vec::new()),
        });
        let service = {
            let router = self.router.clone();
            let activity = activity.clone();
            let stats = self.stats.clone();
            let remote = self.remote;
            hyper::service::service_fn(move |request: Request<Incoming>| {
                handle(router.clone(), request, remote, InFlight::start(&activity), stats.clone())
            })
        };
        let io = TokioIo::new(WriteTimeout::new(stream, self.limits.write_timeout));
        let connection = self.builder.serve_connection(io, service);
        tokio::pin!(connection);
        // `graceful_shutdown` asked (drain or idle); a connection closed for idleness has
        // a second to say goodbye (HTTP/2 GOAWAY) before it is dropped.
        let mut asked = false;
        let mut drop_at: Option<Instant> = None;
        loop {
            let wake = drop_at.unwrap_or_else(|| self.idle_deadline(&activity));
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%error, remote = %self.remote, "connection ended with an error");
                    }
                    return;
                }
                changed = self.phase.changed() => {
                    // Grace is over (or the server is gone): drop the connection.
                    if changed.is_err() || *self.phase.borrow() == CLOSING {
                        return;
                    }
                    if !asked {
                        asked = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
                () = tokio::time::sleep_until(wake) => {
                    if drop_at.is_some() {
                        return;
                    }
                    if let Some(since) = activity.oldest_waiting()
                        && activity.epoch + Duration::from_millis(since) + self.limits.write_timeout <= Instant::now()
                    {
                        tracing::debug!(remote = %self.remote, "the client stopped reading a response; connection closed");
                        return;
                    }
                    if self.is_idle(&activity) {
                        if !asked {
                            asked = true;
                            connection.as_mut().graceful_shutdown();
                        }
                        drop_at = Some(Instant::now() + Duration::from_secs(1));
                    }
                }
            }
        }
    }

    /// When to look at the connection again: from its start, the first request's head
    /// has `header_read_timeout`; after a request, `keep_alive_timeout` from its end;
    /// while requests are in flight, every half `write_timeout` (a response the client
    /// stopped taking).
    fn idle_deadline(&self, activity: &Activity) -> Instant {
        if activity.in_flight.load(Ordering::Acquire) > 0 {
            return Instant::now() + self.limits.write_timeout / 2;
        }
        let since = activity.idle_since_ms.load(Ordering::Acquire);
        if since == u64::MAX {
            return activity.epoch + self.limits.header_read_timeout;
        }
        activity.epoch + Duration::from_millis(since) + self.limits.keep_alive_timeout
    }

    fn is_idle(&self, activity: &Activity) -> bool {
        activity.in_flight.load(Ordering::Acquire) == 0 && self.idle_deadline(activity) <= Instant::now()
    }
}

/// One request: its id in `x-request-id` (the client's if sane, else a new one), the
/// client's address as `ConnectInfo`, the router; a panic becomes a 500.
async fn handle(
    mut router: Router,
    request: Request<Incoming>,
    remote: SocketAddr,
    in_flight: InFlight,
    stats: Arc<ConnStats>,
) -> Result<Response<InFlightBody>, Infallible> {
    let mut request = request.map(Body::new);
    let request_id = crate::api::request_id(request.headers());
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        request.headers_mut().insert(REQUEST_ID, value);
    }
    request.extensions_mut().insert(ConnectInfo(remote));
    // Kept for a panic's answer and log (a reference-counted clone, not a copy).
    let uri = request.uri().clone();
    let call = tower_service::Service::call(&mut router, request);
    let response = match AssertUnwindSafe(call).catch_unwind().await {
        Ok(Ok(response)) => response,
        Ok(Err(never)) => match never {},
        Err(panic) => {
            stats.panics.fetch_add(1, Ordering::Relaxed);
            let message = panic
                .downcast_ref::<&str>()
                .map(|text| (*text).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(%request_id, path = uri.path(), panic = %message, "a handler panicked; answered 500");
            render(dialect_of(uri.path()), ErrorCode::Internal, "Internal error.", None, &request_id)
        }
    };
    Ok(response.map(|body| InFlightBody { body, in_flight }))
}

/// The dialect errors are rendered in, by path (as the handlers choose it).
pub fn dialect_of(path: &str) -> Dialect {
    let path = path.strip_prefix("/v1").unwrap_or(path);
    if path.starts_with("/messages") { Dialect::Anthropic } else { Dialect::OpenAi }
}

/// A response body that keeps its request in flight until hyper is done with it.
pub struct InFlightBody {
    body: Body,
    in_flight: InFlight,
}

impl http_body::Body for InFlightBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let poll = Pin::new(&mut self.body).poll_frame(cx);
        let waiting = match &poll {
            // Yielded: waiting until hyper, able to send it, asks for the next.
            Poll::Ready(Some(Ok(_))) => self.in_flight.activity.now_ms(),
            _ => u64::MAX,
        };
        self.in_flight.waiting.store(waiting, Ordering::Relaxed);
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// A stream whose writes may stay blocked at most `timeout`: a client that stopped
/// reading fails its connection with `TimedOut` instead of holding it (and the upstream
/// behind it) forever. The timer exists only while a write is blocked.
pub struct WriteTimeout<T> {
    inner: T,
    timeout: Duration,
    blocked: Option<Pin<Box<Sleep>>>,
}

impl<T> WriteTimeout<T> {
    pub fn new(inner: T, timeout: Duration) -> WriteTimeout<T> {
        WriteTimeout { inner, timeout, blocked: None }
    }

    /// After the inner write was pending: starts the timer, or fails once it ran out.
    fn pending<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        let timeout = self.timeout;
        let timer = self.blocked.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading (server.write_timeout_ms)",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn track<R>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        match poll {
            Poll::Pending => self.pending(cx),
            ready => {
                self.blocked = None;
                ready
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteTimeout<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.track(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.track(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.track(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.track(cx, poll)
    }
}

/// Raises the soft limit on open files to the hard limit, so `server.max_connections`
/// connections (each one descriptor, plus upstream ones) can be open. Logs the result.
pub fn raise_nofile_limit() {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let limit = getrlimit(Resource::Nofile);
        if limit.current.is_some() && limit.current != limit.maximum {
            let raised = rustix::process::Rlimit { current: limit.maximum, maximum: limit.maximum };
            match setrlimit(Resource::Nofile, raised) {
                Ok(()) => tracing::info!(from = ?limit.current, to = ?limit.maximum, "Raised the open-file limit."),
                Err(error) => tracing::warn!(%error, soft = ?limit.current, "Could not raise the open-file limit."),
            }
        } else {
            tracing::debug!(soft = ?limit.current, "Open-file limit.");
        }
    }
}

#[cfg(test)]
mod tests;
