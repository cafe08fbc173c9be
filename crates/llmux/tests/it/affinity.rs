//! Conversation affinity end to end: a replayed 30-turn agent conversation (a growing
//! message list under one conversation name) over a model with three equal-weight
//! routes, on fakes that simulate a provider's prompt cache
//! (`llmux_testkit::prompt_cache`: the longest prefix a fake answered before is cached).
//! The cached share of the input, as the usage ledger records it, is compared with the
//! same conversation on a single route: with affinity it is as high, without it lower.
//! Then a pinned route starts failing mid-conversation: the pin moves and the rest of the
//! conversation follows it.

use llmux_testkit::{FakeUpstream, Reply};
use serde_json::{Value, json};

use crate::TestGateway;

const TURNS: usize = 30;

/// Which client surface the conversation speaks, and its providers' dialect.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Surface {
    /// Chat Completions to `openai-compatible` fakes; the conversation is named by
    /// `prompt_cache_key`.
    OpenAi,
    /// Messages to `anthropic` fakes; named by Claude Code's session header.
    Anthropic,
}

impl Surface {
    fn reply(self) -> Reply {
        match self {
            Surface::OpenAi => Reply::chat_with_prompt_cache("done"),
            Surface::Anthropic => Reply::message_with_prompt_cache("done"),
        }
    }

    fn provider(self, name: &str, fake: &FakeUpstream) -> String {
        match self {
            Surface::OpenAi => crate::fake_provider(name, &fake.base_url()),
            Surface::Anthropic => format!(
                "[[providers]]\nname = \"{name}\"\nkind = \"anthropic\"\nbase_url = \"http://{}\"\napi_key = \"sk-ant-{name}\"\n\n",
                fake.addr
            ),
        }
    }
}

/// The replayed agent: a long system prompt and tools, a task, then per earlier turn a
/// tool call and its result (a file read, 200 to 1 500 tokens).
fn turn_body(surface: Surface, model: &str, turn: usize) -> Value {
    let system = "You are a coding agent working in a repository. Read before you edit. ".repeat(90);
    let task = "Find why the integration tests fail on the release branch and fix it.";
    let mut seed = 0x2545_f491_u64;
    let mut exchanges = Vec::with_capacity(turn);
    for index in 0..turn {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let length = 800 + (seed >> 33) as usize % 5_200;
        let result = format!("// file {index}\n{}", "let x = compute(y);\n".repeat(length / 20));
        exchanges.push((format!("call_{index}"), format!("{{\"path\":\"src/file_{index}.rs\"}}"), result));
    }
    match surface {
        Surface::OpenAi => {
            let mut messages =
                vec![json!({"role": "system", "content": system}), json!({"role": "user", "content": task})];
            for (id, arguments, result) in exchanges {
                messages.push(json!({"role": "assistant", "content": null, "tool_calls": [
                    {"id": id, "type": "function", "function": {"name": "read_file", "arguments": arguments}}
                ]}));
                messages.push(json!({"role": "tool", "tool_call_id": id, "content": result}));
            }
            let tools = json!([{"type": "function", "function": {"name": "read_file", "description": "Reads a file.",
                "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}}]);
            json!({"model": model, "max_tokens": 64, "messages": messages, "tools": tools})
        }
        Surface::Anthropic => {
            let mut messages = vec![json!({"role": "user", "content": task})];
            for (id, arguments, result) in exchanges {
                let input: Value = serde_json::from_str(&arguments).unwrap();
                messages.push(json!({"role": "assistant", "content": [
                    {"type": "tool_use", "id": id, "name": "read_file", "input": input}
                ]}));
                messages.push(json!({"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": id, "content": result}
                ]}));
            }
            let tools = json!([{"name": "read_file", "description": "Reads a file.",
                "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}]);
            json!({"model": model, "max_tokens": 64, "system": system, "messages": messages, "tools": tools})
        }
    }
}

/// One turn of conversation `name`, which must succeed: the provider that served it and
/// the attempts it took.
async fn turn(
    gateway: &TestGateway,
    surface: Surface,
    key: &str,
    (model, name): (&str, &str),
    index: usize,
) -> (String, String) {
    let mut body = turn_body(surface, model, index);
    let request = match surface {
        Surface::OpenAi => {
            body["prompt_cache_key"] = json!(name);
            gateway.http.post(gateway.url("/v1/chat/completions")).bearer_auth(key)
        }
        Surface::Anthropic => (gateway.http.post(gateway.url("/v1/messages")).header("x-api-key", key))
            .header("anthropic-version", "2023-06-01")
            .header("x-claude-code-session-id", name),
    };
    let response = request.json(&body).send().await.expect("request");
    let header = |name: &str| response.headers().get(name).map_or(String::new(), |v| v.to_str().unwrap().to_owned());
    let (provider, attempts) = (header("x-llmux-provider"), header("x-llmux-attempts"));
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "turn {index}: {text}");
    (provider, attempts)
}

/// The conversation's turns `turns`; the providers that served them, in order.
async fn converse(
    gateway: &TestGateway,
    surface: Surface,
    key: &str,
    conversation: (&str, &str),
    turns: std::ops::Range<usize>,
) -> Vec<String> {
    let mut served = Vec::with_capacity(turns.len());
    for index in turns {
        served.push(turn(gateway, surface, key, conversation, index).await.0);
    }
    served
}

/// The cached part of `model`'s input tokens, by the usage ledger (once `count` records
/// are there).
async fn cached_share(gateway: &TestGateway, model: &str, count: usize) -> f64 {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    let records = loop {
        let records = gateway.usage(&format!("?model={model}&limit=1000")).await;
        if records.len() >= count || tokio::time::Instant::now() > deadline {
            break records;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(records.len(), count, "usage records of {model}");
    let sum = |field: &str| records.iter().map(|record| record[field].as_u64().unwrap()).sum::<u64>();
    sum("cached_tokens") as f64 / sum("input_tokens") as f64
}

/// A gateway with `solo` (one route) and `agent` (three equal-weight routes) over fresh
/// fakes simulating a prompt cache, `server` added to its `[server]` section.
async fn gateway(surface: Surface, server: &str) -> (TestGateway, Vec<FakeUpstream>) {
    let mut fakes = Vec::new();
    let mut providers = String::new();
    for name in ["solo", "a", "b", "c"] {
        let fake = FakeUpstream::start().await;
        fake.always(surface.reply());
        providers.push_str(&surface.provider(name, &fake));
        fakes.push(fake);
    }
    let models = "[[models]]\nname = \"solo\"\nroutes = [{ provider = \"solo\", model = \"m\" }]\n\n\
                  [[models]]\nname = \"agent\"\nstrategy = \"weighted\"\nroutes = [\n  \
                  { provider = \"a\", model = \"m\" },\n  { provider = \"b\", model = \"m\" },\n  { provider = \"c\", model = \"m\" },\n]\n";
    // A long conversation is larger than the tests' usual body limit.
    let dir = crate::temp_dir("affinity");
    let path = dir.join("llmux.toml");
    let base =
        crate::base_config(&dir).replace("max_body_bytes = 65536\n", &format!("max_body_bytes = 1048576\n{server}"));
    std::fs::write(&path, format!("{base}{providers}{models}")).expect("write config");
    (TestGateway::start_with(dir, path).await, fakes)
}

/// The cached shares of the conversation on one route, over three routes with affinity,
/// and over three routes without; asserts the first two are as good.
async fn shares(surface: Surface) -> (f64, f64, f64) {
    let (pinned, _fakes) = gateway(surface, "").await;
    let key = pinned.key().await;
    converse(&pinned, surface, &key, ("solo", "conversation-1"), 0..TURNS).await;
    let served = converse(&pinned, surface, &key, ("agent", "conversation-1"), 0..TURNS).await;
    assert!(served.iter().all(|provider| *provider == served[0]), "one route served it all: {served:?}");
    let single = cached_share(&pinned, "solo", TURNS).await;
    let affinity = cached_share(&pinned, "agent", TURNS).await;
    let metrics = pinned.http.get(pinned.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for line in [
        r#"llmux_affinity_total{model="agent",outcome="hit"} 29"#,
        r#"llmux_affinity_total{model="agent",outcome="miss"} 1"#,
    ] {
        assert!(metrics.contains(line), "missing `{line}`");
    }

    let (spread, _fakes) = gateway(surface, "affinity_ttl_s = 0\n").await;
    let key = spread.key().await;
    let served = converse(&spread, surface, &key, ("agent", "conversation-1"), 0..TURNS).await;
    assert!(served.iter().any(|provider| *provider != served[0]), "without affinity turns spread: {served:?}");
    let naive = cached_share(&spread, "agent", TURNS).await;
    eprintln!(
        "{surface:?}: cached share single route {single:.4}, three routes with affinity {affinity:.4}, without {naive:.4}"
    );
    (single, affinity, naive)
}

#[tokio::test]
async fn with_affinity_a_conversation_over_three_routes_keeps_the_cache_share_of_one_route() {
    let (single, affinity, naive) = shares(Surface::OpenAi).await;
    assert!(single > 0.9, "the replay is cache-friendly on one route: {single}");
    assert!(affinity >= 0.95 * single, "affinity {affinity} vs single route {single}");
    // Without affinity each route holds the conversation only as of its own last turn.
    assert!(naive < 0.95 * single, "without affinity {naive} vs single route {single}");
}

#[tokio::test]
async fn anthropic_clients_keep_the_cache_share_too() {
    let (single, affinity, naive) = shares(Surface::Anthropic).await;
    assert!(affinity >= 0.95 * single, "affinity {affinity} vs single route {single}");
    assert!(naive < 0.95 * single, "without affinity {naive} vs single route {single}");
}

/// Half the conversation, then the pinned route answers `failure` from now on: the turn
/// fails over once, the pin moves, and every later turn goes to the new route at once.
async fn pinned_route_fails(surface: Surface, failure: Reply) {
    let (gateway, fakes) = gateway(surface, "").await;
    let key = gateway.key().await;
    let conversation = ("agent", "conversation-2");
    let served = converse(&gateway, surface, &key, conversation, 0..TURNS / 2).await;
    let pinned = served[0].clone();
    assert!(served.iter().all(|provider| *provider == pinned), "{served:?}");
    let index = ["solo", "a", "b", "c"].iter().position(|name| **name == pinned).unwrap();
    fakes[index].always(failure);
    let before = fakes[index].received().len();

    let (moved, attempts) = turn(&gateway, surface, &key, conversation, TURNS / 2).await;
    assert_ne!(moved, pinned);
    assert_eq!(attempts, "2", "the pinned route first, then one other");
    for index in TURNS / 2 + 1..TURNS {
        let (provider, attempts) = turn(&gateway, surface, &key, conversation, index).await;
        assert_eq!((provider.as_str(), attempts.as_str()), (moved.as_str(), "1"), "turn {index}");
    }
    assert_eq!(fakes[index].received().len(), before + 1, "the failing route was tried once");
    let metrics = gateway.http.get(gateway.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"llmux_affinity_total{model="agent",outcome="moved"} 1"#), "{metrics}");
    let share = cached_share(&gateway, "agent", TURNS).await;
    eprintln!("{surface:?}: cached share with the pin moved at turn {}: {share:.4}", TURNS / 2);
}

#[tokio::test]
async fn when_the_pinned_route_fails_the_pin_moves_and_the_conversation_follows() {
    pinned_route_fails(Surface::OpenAi, Reply::status(500, r#"{"error":{"message":"upstream broke"}}"#)).await;
}

#[tokio::test]
async fn when_the_pinned_route_is_rate_limited_the_pin_moves_and_the_conversation_follows() {
    let limited = Reply::Json {
        status: 429,
        body: r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#.to_owned(),
        headers: vec![("retry-after".to_owned(), "60".to_owned())],
    };
    pinned_route_fails(Surface::Anthropic, limited).await;
}

#[tokio::test]
async fn a_responses_conversation_chained_by_previous_response_id_stays_on_its_route() {
    let (gateway, _fakes) = gateway(Surface::OpenAi, "").await;
    let key = gateway.key().await;
    let mut previous = None;
    let mut served = Vec::new();
    for turn in 0..10 {
        // No other name: each turn names the one before by its response id.
        let mut body = json!({"model": "agent", "input": format!("step {turn}")});
        if let Some(id) = &previous {
            body["previous_response_id"] = json!(id);
        }
        let response = gateway.post("/v1/responses", &key, &body).await;
        assert_eq!(response.status(), 200);
        served.push(response.headers()["x-llmux-provider"].to_str().unwrap().to_owned());
        let answer: Value = response.json().await.unwrap();
        previous = Some(answer["id"].as_str().unwrap().to_owned());
    }
    assert!(served.iter().all(|provider| *provider == served[0]), "{served:?}");
    let metrics = gateway.http.get(gateway.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"llmux_affinity_total{model="agent",outcome="hit"} 9"#), "{metrics}");
}
