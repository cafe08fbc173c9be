//! Route planning per request (step 3) for a model with 8 routes, in each strategy, with
//! health data present. Target: under 2 µs.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use llmux_gateway::Runtime;
use llmux_gateway::router::{TokenEstimate, plan};
use llmux_types::Region;

fn runtime(strategy: &str) -> Runtime {
    let mut text = String::new();
    for provider in 0..4 {
        text.push_str(&format!(
            "[[providers]]\nname = \"p{provider}\"\nkind = \"openai-compatible\"\nbase_url = \"http://127.0.0.1:9/v1\"\napi_key = \"k\"\nregions = [\"!CN\"]\n\n"
        ));
    }
    text.push_str(&format!("[[models]]\nname = \"m\"\nstrategy = \"{strategy}\"\nroutes = [\n"));
    for route in 0..8 {
        text.push_str(&format!(
            "  {{ provider = \"p{}\", model = \"r{route}\", weight = {}, priority = {}, price = {{ input = {}, output = {} }} }},\n",
            route % 4,
            route + 1,
            route / 4,
            route + 1,
            8 - route
        ));
    }
    text.push_str("]\n");
    let config = llmux_config::Config::from_toml(&text, &|_| None).expect("valid config");
    let runtime = Runtime::build(config).expect("runtime");
    for (route, health) in runtime.health.model(0).iter().enumerate() {
        health.succeeded(Duration::from_micros(1000 * (route as u64 + 1)));
    }
    runtime
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("route planning, 8 routes");
    let region = Region::parse("DE");
    let estimate = TokenEstimate { input: 1200, output: 400 };
    for strategy in ["priority", "weighted", "latency", "least-busy", "cost"] {
        let runtime = runtime(strategy);
        group.bench_function(strategy, |b| b.iter(|| plan(&runtime, 0, region, estimate).unwrap().len()));
    }
    group.finish();
}

criterion_group!(plan_routes, benches);
criterion_main!(plan_routes);
