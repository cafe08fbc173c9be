use llmux_types::{RegionSet, Secret};
use llmux_wire::openai::peek::Endpoint;

use crate::{ProviderSpec, Timeouts, mock::MockSettings, preset};

fn spec(kind: &str, base_url: &str, api_version: Option<&str>) -> ProviderSpec {
    ProviderSpec {
        name: kind.to_owned(),
        preset: preset(kind).expect("known kind"),
        base_url: base_url.to_owned(),
        api_key: Some(Secret::new("sk-provider")),
        regions: RegionSet::everywhere(),
        headers: vec![("x-extra".to_owned(), "1".to_owned())],
        timeouts: Timeouts::default(),
        api_version: api_version.map(str::to_owned),
        mock: MockSettings::default(),
    }
}

#[test]
fn openai_dialect_requests_use_bearer_auth_and_the_base_url() {
    let request = spec("deepseek", "https://api.deepseek.com/v1/", None).build_request(
        Endpoint::ChatCompletions,
        "deepseek-chat",
        b"{}".to_vec(),
    );
    assert_eq!(request.uri(), "https://api.deepseek.com/v1/chat/completions");
    assert_eq!(request.headers()["authorization"], "Bearer sk-provider");
    assert_eq!(request.headers()["content-type"], "application/json");
    assert_eq!(request.headers()["x-extra"], "1");
    assert_eq!(request.method(), http::Method::POST);
}

#[test]
fn azure_uses_deployment_urls_and_the_api_key_header() {
    let classic = spec("azure", "https://res.openai.azure.com/openai", Some("2025-01-01-preview")).build_request(
        Endpoint::Embeddings,
        "my-deployment",
        Vec::new(),
    );
    assert_eq!(
        classic.uri(),
        "https://res.openai.azure.com/openai/deployments/my-deployment/embeddings?api-version=2025-01-01-preview"
    );
    assert_eq!(classic.headers()["api-key"], "sk-provider");
    assert!(classic.headers().get("authorization").is_none());

    let v1 = spec("azure", "https://res.openai.azure.com/openai/v1", None).build_request(
        Endpoint::ChatCompletions,
        "dep",
        Vec::new(),
    );
    assert_eq!(v1.uri(), "https://res.openai.azure.com/openai/v1/chat/completions");
}

#[test]
fn every_preset_is_consistent() {
    for preset in crate::registry::presets() {
        assert!(llmux_types::RegionSet::parse(preset.regions).is_ok(), "{}", preset.kind);
        for (model, ..) in preset.prices {
            assert!(preset.price(model).is_some(), "{}: price of {model} does not parse", preset.kind);
        }
        if let Some(url) = preset.base_url {
            assert!(url.starts_with("https://") || url.starts_with("http://") || url.starts_with("mock://"));
        }
    }
    let kinds: Vec<_> = crate::kinds().collect();
    for expected in [
        "openai",
        "azure",
        "deepseek",
        "qwen",
        "zhipu",
        "moonshot",
        "doubao",
        "minimax",
        "siliconflow",
        "ollama",
        "vllm",
        "openai-compatible",
        "mock",
    ] {
        assert!(kinds.contains(&expected), "missing preset {expected}");
    }
    let deepseek = preset("deepseek").unwrap().price("deepseek-chat").unwrap();
    assert_eq!(deepseek.currency, llmux_types::Currency::CNY);
}
