//! The only place that does upstream HTTP: one client per provider entry (its connect
//! timeout and connection pool belong to that provider). HTTP/1.1 and HTTP/2 over TCP
//! or TLS (rustls with the system's root certificates; HTTP/2 when the server picks it
//! by ALPN).
//!
//! The pool is our own, over hyper's connection-level API: a request checks out an idle
//! HTTP/1.1 connection (most recently used first), or opens one, and the connection
//! goes back to the pool when the response body has been read to the end. A request
//! that a pooled connection could not even start (the server had closed it while idle)
//! is retried on another connection; once any byte of it may have been written it is
//! never retried here (the caller's failover decides). HTTP/2 connections are shared.

use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{Connection, HttpConnector};
use hyper_util::rt::TokioExecutor;
use tower_service::Service;

use crate::error::{ErrorKind, UpstreamError};

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
    idle: Vec<(http1::SendRequest<Full<Bytes>>, Instant)>,
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
        while let Some((sender, since)) = state.idle.pop() {
            if now.duration_since(since) > IDLE_TIMEOUT {
                // Everything below is older still.
                state.idle.clear();
                return None;
            }
            if !sender.is_closed() {
                return Some(Sender::H1(sender));
            }
        }
        None
    }

    fn checkin(&self, sender: http1::SendRequest<Full<Bytes>>) {
        if sender.is_closed() {
            return;
        }
        let mut state = self.lock();
        if state.idle.len() >= MAX_IDLE {
            state.idle.remove(0);
        }
        state.idle.push((sender, Instant::now()));
    }
}

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
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
        http.set_connect_timeout(Some(connect_timeout));
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
        Ok(UpstreamClient { connector, hosts: Arc::default() })
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
        let pool = self.host_pool(request.uri())?;
        let mut request = request.map(Full::new);
        // Pooled connections first; a request they could not start comes back to us.
        while let Some(sender) = pool.checkout() {
            match sender {
                Sender::H2(mut sender) => {
                    return match sender.send_request(request).await {
                        Ok(response) => Ok(response.map(|body| UpstreamBody { inner: body, checkin: None })),
                        Err(error) => Err(protocol_error(&error)),
                    };
                }
                Sender::H1(mut sender) => {
                    if sender.ready().await.is_err() {
                        continue;
                    }
                    match sender.try_send_request(origin_form(request, &pool.host)).await {
                        Ok(response) => return Ok(with_checkin(response, pool, sender)),
                        Err(mut error) => match error.take_message() {
                            Some(returned) => request = returned,
                            None => return Err(protocol_error(error.error())),
                        },
                    }
                }
            }
        }
        // Boxed: connecting (TLS, HTTP/2 handshake) makes a large future, and it is
        // the rare path; unboxed it would be moved around on every request.
        Box::pin(self.send_on_new_connection(pool, request)).await
    }

    async fn send_on_new_connection(
        &self,
        pool: Arc<HostPool>,
        request: http::Request<Full<Bytes>>,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let uri = Uri::builder()
            .scheme(pool.scheme.clone())
            .authority(pool.authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|_| connect_error())?;
        let io = self.connector.clone().call(uri).await.map_err(|_| connect_error())?;
        if io.connected().is_negotiated_h2() {
            let (mut sender, connection) =
                http2::handshake(TokioExecutor::new(), io).await.map_err(|error| protocol_error(&error))?;
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "Upstream HTTP/2 connection ended with an error.");
                }
            });
            pool.lock().h2 = Some(sender.clone());
            let response = sender.send_request(request).await.map_err(|error| protocol_error(&error))?;
            return Ok(response.map(|body| UpstreamBody { inner: body, checkin: None }));
        }
        let (mut sender, connection) = http1::handshake(io).await.map_err(|error| protocol_error(&error))?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "Upstream connection ended with an error.");
            }
        });
        let response =
            sender.send_request(origin_form(request, &pool.host)).await.map_err(|error| protocol_error(&error))?;
        Ok(with_checkin(response, pool, sender))
    }
}

/// HTTP/1.1 wants `POST /path HTTP/1.1` plus a `Host` header, not the absolute URI.
fn origin_form(mut request: http::Request<Full<Bytes>>, host: &HeaderValue) -> http::Request<Full<Bytes>> {
    if request.uri().scheme().is_some() {
        let path = request.uri().path_and_query().cloned();
        let mut parts = http::uri::Parts::default();
        parts.path_and_query = path;
        if let Ok(uri) = Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
    if !request.headers().contains_key(http::header::HOST) {
        request.headers_mut().insert(http::header::HOST, host.clone());
    }
    request
}

fn with_checkin(
    response: http::Response<Incoming>,
    pool: Arc<HostPool>,
    sender: http1::SendRequest<Full<Bytes>>,
) -> UpstreamResponse {
    response.map(|body| UpstreamBody { inner: body, checkin: Some((pool, sender)) })
}

/// An upstream response body. Read to its end, it returns its HTTP/1.1 connection to
/// the pool; dropped before that, the connection is closed (it cannot be reused).
#[derive(Debug)]
pub struct UpstreamBody {
    inner: Incoming,
    checkin: Option<(Arc<HostPool>, http1::SendRequest<Full<Bytes>>)>,
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let frame = ready!(std::pin::Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            None => {
                if let Some((pool, sender)) = this.checkin.take() {
                    pool.checkin(sender);
                }
            }
            Some(Err(_)) => this.checkin = None,
            Some(Ok(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
