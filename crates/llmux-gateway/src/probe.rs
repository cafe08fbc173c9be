//! Active health checks (`server.health_check_interval_ms`): a background loop that
//! asks each provider's adapter for a cheap probe and feeds the answer to route health.

use std::time::Duration;

use llmux_providers::{ErrorKind, UpstreamError};

use crate::route::Candidate;
use crate::{Gateway, clock};

/// Active health checks (`server.health_check_interval_ms`): every interval, each
/// provider's model list is fetched. A provider that answers closes the open circuits of
/// its routes; one that cannot be reached or answers 5xx counts a failure on each of
/// its routes (enough of them open the circuits, as for requests). Runs until shutdown;
/// reads the configuration in force at each round, so a reload can turn it on or off.
pub(crate) async fn health_checks(gateway: std::sync::Weak<Gateway>, mut stop: tokio::sync::watch::Receiver<bool>) {
    const IDLE: Duration = Duration::from_secs(1);
    loop {
        let interval = match gateway.upgrade() {
            Some(gateway) => gateway.runtime().config.server.health_check_interval,
            None => return,
        };
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(interval.unwrap_or(IDLE)) => {}
        }
        if interval.is_none() {
            continue;
        }
        let Some(gateway) = gateway.upgrade() else { return };
        let runtime = gateway.runtime();
        drop(gateway);
        for (index, provider) in runtime.config.providers.iter().enumerate() {
            let (prepared, client) = runtime.provider_io(index);
            let Some(request) = prepared.probe_request(provider) else { continue };
            let deadline = provider.timeouts.first_byte.min(Duration::from_secs(5));
            let answered = match tokio::time::timeout(deadline, client.send(request)).await {
                Ok(Ok(response)) => response.status().as_u16() < 500,
                Ok(Err(_)) | Err(_) => false,
            };
            tracing::debug!(provider = %provider.name, answered, "Health check.");
            let failure = UpstreamError::new(ErrorKind::Server);
            for (model, model_config) in runtime.config.models.iter().enumerate() {
                for (route, route_config) in model_config.routes.iter().enumerate() {
                    if route_config.provider != index {
                        continue;
                    }
                    let health = runtime.health.route(Candidate { model, route });
                    if answered {
                        health.probe_answered(&runtime.health.policy);
                    } else {
                        let _ = health.failed(&failure, None, &runtime.health.policy, clock::monotonic_ms());
                    }
                }
            }
        }
    }
}
