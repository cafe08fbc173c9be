use llmux_types::{RegionSet, Secret};
use llmux_wire::openai::peek::Endpoint;

use crate::{Api, ProviderSpec, Timeouts, mock::MockSettings, preset};

fn spec(kind: &str, base_url: &str, api_version: Option<&str>) -> ProviderSpec {
    let preset = preset(kind).expect("known kind");
    ProviderSpec {
        name: kind.to_owned(),
        preset,
        base_url: base_url.to_owned(),
        api_key: Some(Secret::new("sk-provider")),
        regions: RegionSet::everywhere(),
        headers: vec![("x-extra".to_owned(), "1".to_owned())],
        timeouts: Timeouts::default(),
        api_version: api_version.map(str::to_owned),
        responses_api: preset.quirks.responses_api,
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

#[test]
fn the_responses_api_is_served_by_openai_and_azure_unless_an_entry_says_otherwise() {
    for preset in crate::registry::presets() {
        let serves = preset.quirks.responses_api;
        assert_eq!(serves, ["openai", "azure"].contains(&preset.kind), "{}", preset.kind);
        assert!(!serves || preset.adapter.speaks_responses(), "{}", preset.kind);
    }
    for kind in ["anthropic", "gemini", "mock"] {
        let mut entry = spec(kind, "https://x", None);
        entry.responses_api = true;
        assert!(!entry.preset.adapter.responses_native(&entry), "{kind} cannot serve it, whatever the entry says");
    }
    let mut vllm = spec("vllm", "http://127.0.0.1:8000/v1", None);
    assert!(!vllm.preset.adapter.responses_native(&vllm));
    vllm.responses_api = true;
    assert!(vllm.preset.adapter.responses_native(&vllm));
    let request =
        crate::PreparedProvider::new(&vllm).build_api_request(&vllm, Api::Responses, "gpt-oss", true, Vec::new());
    assert_eq!(request.uri(), "http://127.0.0.1:8000/v1/responses");
    assert_eq!(request.headers()["authorization"], "Bearer sk-provider");

    let openai = spec("openai", "https://api.openai.com/v1", None);
    let prepared = crate::PreparedProvider::new(&openai);
    let responses = prepared.build_request(&openai, Endpoint::Responses, "o3-pro", Vec::new());
    assert_eq!(responses.uri(), "https://api.openai.com/v1/responses");
    let chat = prepared.build_api_request(&openai, Api::Chat, "gpt-5", false, Vec::new());
    assert_eq!(chat.uri(), "https://api.openai.com/v1/chat/completions");
}

#[test]
fn azure_serves_the_responses_api_beside_its_deployments() {
    let responses = |base: &str, version: Option<&str>| {
        spec("azure", base, version).build_request(Endpoint::Responses, "my-deployment", Vec::new()).uri().to_string()
    };
    let base = "https://res.openai.azure.com/openai";
    assert_eq!(responses(base, None), "https://res.openai.azure.com/openai/responses?api-version=2025-04-01-preview");
    assert_eq!(
        responses(base, Some("2024-10-21")),
        "https://res.openai.azure.com/openai/responses?api-version=2025-04-01-preview",
        "a version too old for the Responses API is not used for it"
    );
    assert_eq!(
        responses(base, Some("2025-03-01-preview")),
        "https://res.openai.azure.com/openai/responses?api-version=2025-03-01-preview"
    );
    assert_eq!(
        responses("https://res.openai.azure.com/openai/v1/", None),
        "https://res.openai.azure.com/openai/v1/responses"
    );
}

#[test]
fn each_api_has_its_body_answer_and_stream() {
    use llmux_types::chat::{ChatRequest, ContentPart, Message, Role};
    let adapter = preset("openai").unwrap().adapter;
    let request = ChatRequest {
        model: "public".into(),
        messages: vec![Message::new(Role::User, vec![ContentPart::Text("hi".into())])],
        stop: vec!["END".into()],
        ..ChatRequest::default()
    };
    let (chat, dropped) = adapter.request_for(Api::Chat, false, &request, "gpt-5");
    let chat = String::from_utf8(chat).unwrap();
    assert!(chat.contains(r#""messages":[{"role":"user","content":"hi"}]"#), "{chat}");
    assert!(chat.contains(r#""stop":["END"]"#) && dropped.is_empty(), "{chat}");
    let (responses, dropped) = adapter.request_for(Api::Responses, false, &request, "o3-pro");
    let responses = String::from_utf8(responses).unwrap();
    assert!(responses.contains(r#""input":[{"type":"message","role":"user","content":"hi"}]"#), "{responses}");
    assert!(responses.contains(r#""store":false"#) && !responses.contains("END"), "{responses}");
    assert_eq!(dropped, ["stop"]);
    let answer = br#"{"id":"resp_1","status":"completed","model":"o3-pro","output":[{"type":"message","content":[{"type":"output_text","text":"yo"}]}]}"#;
    assert_eq!(adapter.response_for(Api::Responses, answer).unwrap().choices[0].content.as_deref(), Some("yo"));
    assert!(adapter.response_for(Api::Chat, answer).is_err(), "not a chat completion");
    let delta = br#"{"type":"response.output_text.delta","output_index":0,"delta":"yo"}"#;
    assert_eq!(adapter.decoder_for(Api::Responses).decode(delta).unwrap().len(), 2, "start and text");
    assert!(
        adapter
            .decoder_for(Api::Chat)
            .decode(delta)
            .unwrap()
            .iter()
            .all(|event| !matches!(event, llmux_types::chat::StreamEvent::Text { .. }))
    );
}
