//! Plan: which routes a request may take, in the order to try them.
//!
//! Today: the model's own routes (ordered by `priority`, then as listed), then each
//! fallback model's routes; routes whose provider does not serve the caller's region
//! are left out. Strategies beyond ordering, health and circuit breaking plug in here.

use llmux_types::Region;

use crate::Runtime;
use crate::error::GatewayError;

/// One route to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Index into `Config::models`.
    pub model: usize,
    /// Index into that model's routes.
    pub route: usize,
}

/// The routes for `model`, in try order.
pub fn plan(runtime: &Runtime, model: usize, region: Option<Region>) -> Result<Vec<Candidate>, GatewayError> {
    let config = &runtime.config;
    let mut candidates = Vec::with_capacity(config.models[model].routes.len());
    let mut models = vec![model];
    for fallback in &config.models[model].fallbacks {
        if let Some(index) = runtime.model_index(fallback)
            && !models.contains(&index)
        {
            models.push(index);
        }
    }
    for model_index in models {
        let routes = &config.models[model_index].routes;
        let mut order: Vec<usize> = (0..routes.len()).collect();
        order.sort_by_key(|index| routes[*index].priority);
        for route in order {
            let provider = &config.providers[routes[route].provider];
            if provider.regions.serves(region) {
                candidates.push(Candidate { model: model_index, route });
            }
        }
    }
    if candidates.is_empty() {
        return Err(GatewayError::RegionNotServed {
            model: config.models[model].name.clone(),
            region: region.map_or_else(|| "(unknown)".to_owned(), |region| region.to_string()),
        });
    }
    Ok(candidates)
}
