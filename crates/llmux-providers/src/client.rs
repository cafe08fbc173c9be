//! The only place that does upstream HTTP: one pooled hyper client per provider entry
//! (its connect timeout and pool belong to that provider). HTTP/1.1 and HTTP/2 over
//! TCP or TLS (rustls with the system's root certificates).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::error::{ErrorKind, UpstreamError};

/// An upstream response with a streaming body.
pub type UpstreamResponse = http::Response<Incoming>;

/// A pooled HTTP client for one provider.
#[derive(Debug, Clone)]
pub struct UpstreamClient {
    inner: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
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
        let https = builder.https_or_http().enable_http1().enable_http2().wrap_connector(http);
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(https);
        Ok(UpstreamClient { inner })
    }

    /// Sends `request` and resolves when the response headers arrive. Deadlines are
    /// the caller's (one timer per attempt covers headers and body).
    pub async fn send(&self, request: http::Request<Bytes>) -> Result<UpstreamResponse, UpstreamError> {
        self.inner.request(request.map(Full::new)).await.map_err(|error| {
            UpstreamError::new(if error.is_connect() { ErrorKind::Connect } else { ErrorKind::Protocol })
        })
    }
}
