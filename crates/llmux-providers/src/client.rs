//! The only place that does upstream HTTP. One pooled client per provider entry
//! (its connect timeout and pool belong to that provider).

use std::time::Duration;

use bytes::Bytes;

use crate::error::{ErrorKind, UpstreamError};

/// A pooled HTTP client for one provider.
#[derive(Debug, Clone)]
pub struct UpstreamClient {
    inner: reqwest::Client,
}

impl UpstreamClient {
    pub fn new(connect_timeout: Duration) -> Result<UpstreamClient, String> {
        let inner = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .no_proxy()
            .build()
            .map_err(|error| format!("cannot build the HTTP client: {error}"))?;
        Ok(UpstreamClient { inner })
    }

    /// Sends `request` and waits for the response headers, at most `first_byte`.
    pub async fn send(
        &self,
        request: http::Request<Bytes>,
        first_byte: Duration,
    ) -> Result<reqwest::Response, UpstreamError> {
        let request = reqwest::Request::try_from(request).map_err(|_| UpstreamError::new(ErrorKind::Protocol))?;
        match tokio::time::timeout(first_byte, self.inner.execute(request)).await {
            Err(_) => Err(UpstreamError::new(ErrorKind::Timeout)),
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => Err(UpstreamError::new(classify_transport(&error))),
        }
    }
}

/// Maps a transport failure to a kind.
pub fn classify_transport(error: &reqwest::Error) -> ErrorKind {
    if error.is_timeout() {
        ErrorKind::Timeout
    } else if error.is_connect() {
        ErrorKind::Connect
    } else {
        ErrorKind::Protocol
    }
}
