//! The configuration in force plus what is derived from it: one upstream client and
//! one set of prepared headers and URLs per provider, the model index, route health.
//! Replaced as a whole on reload; a request keeps the one it started with.

use llmux_config::{Config, RouteConfig};
use llmux_providers::client::UpstreamClient;
use llmux_providers::{Adapter, PreparedProvider, ProviderSpec};

use crate::route::{Candidate, RouteId};
use crate::{FastMap, health};

#[derive(Debug)]
pub struct Runtime {
    pub config: Config,
    clients: Vec<UpstreamClient>,
    /// Per-provider headers and URLs, built once per configuration.
    prepared: Vec<PreparedProvider>,
    models: FastMap<String, usize>,
    /// What recent attempts say about each route (fresh with each configuration).
    pub health: health::Health,
    /// Each route's identity (what conversations are pinned to), by model and route.
    route_ids: Vec<Vec<RouteId>>,
}

impl Runtime {
    pub fn build(config: Config) -> Result<Runtime, String> {
        Runtime::build_after(config, None)
    }

    /// Builds the runtime for `config`, keeping the route health `previous` knows about
    /// routes that are still there (a reload).
    pub fn build_after(config: Config, previous: Option<&Runtime>) -> Result<Runtime, String> {
        let clients = config
            .providers
            .iter()
            .map(|provider| UpstreamClient::new(provider.timeouts.connect))
            .collect::<Result<_, _>>()?;
        let prepared = config.providers.iter().map(PreparedProvider::new).collect();
        let models = config.models.iter().enumerate().map(|(index, model)| (model.name.clone(), index)).collect();
        let health = health::Health::new(&config, previous.map(|runtime| (&runtime.config, &runtime.health)));
        let route_ids = config
            .models
            .iter()
            .map(|model| {
                let id = |route: &RouteConfig| RouteId::of(&config.providers[route.provider].name, &route.model);
                model.routes.iter().map(id).collect()
            })
            .collect();
        Ok(Runtime { config, clients, prepared, models, health, route_ids })
    }

    pub fn model_index(&self, name: &str) -> Option<usize> {
        self.models.get(name).copied()
    }

    /// The route a candidate names.
    pub fn route(&self, candidate: Candidate) -> &RouteConfig {
        &self.config.models[candidate.model].routes[candidate.route]
    }

    /// The identity of a candidate's route (provider and upstream model).
    pub fn route_id(&self, candidate: Candidate) -> RouteId {
        self.route_ids[candidate.model][candidate.route]
    }

    /// The provider of a candidate's route.
    pub fn provider(&self, candidate: Candidate) -> &ProviderSpec {
        &self.config.providers[self.route(candidate).provider]
    }

    /// Everything one attempt at `candidate` needs to reach its provider.
    pub fn upstream(&self, candidate: Candidate) -> Upstream<'_> {
        let route = self.route(candidate);
        let provider = &self.config.providers[route.provider];
        Upstream {
            route,
            provider,
            adapter: provider.preset.adapter,
            prepared: &self.prepared[route.provider],
            client: &self.clients[route.provider],
            server: &self.config.server,
        }
    }

    /// The client and prepared requests of provider `index` (for health probes).
    pub(crate) fn provider_io(&self, index: usize) -> (&PreparedProvider, &UpstreamClient) {
        (&self.prepared[index], &self.clients[index])
    }
}

/// One route's way to its provider.
#[derive(Clone, Copy)]
pub struct Upstream<'a> {
    pub route: &'a RouteConfig,
    pub provider: &'a ProviderSpec,
    pub adapter: &'static dyn Adapter,
    pub prepared: &'a PreparedProvider,
    pub client: &'a UpstreamClient,
    /// What bounds reading the answer (`max_upstream_body_bytes`,
    /// `max_upstream_event_bytes`, `max_retry_after_s`).
    pub server: &'a llmux_config::ServerConfig,
}
