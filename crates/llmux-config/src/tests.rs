use std::collections::HashMap;

use llmux_types::Currency;

use super::*;

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    move |name| map.get(name).cloned()
}

#[test]
fn example_config_parses() {
    let text = include_str!("../../../llmux.example.toml");
    let config =
        Config::from_toml(text, &env_of(&[("LLMUX_MASTER_KEY", "sk-master-12345")])).expect("example is valid");
    assert_eq!(config.server.listen, "127.0.0.1:4000");
    assert_eq!(config.server.master_key.as_ref().unwrap().expose(), "sk-master-12345");
    assert!(config.model("chat-default").is_some());
    let table = config.routing_table();
    assert!(table.contains("chat-default (strategy priority)"), "{table}");
    assert!(table.contains("1. mock -> mock"), "{table}");
    assert_eq!(config.server.budget_alert_thresholds, [80, 100]);
    assert_eq!(config.storage.spill_max_bytes, 1024 * 1024 * 1024);
    assert_eq!(config.storage.responses_ttl, std::time::Duration::from_secs(30 * 86_400));
}

#[test]
fn fleet_route_limits_and_alerts_resolve_and_show_in_the_routing_table() {
    let text = r#"
[server]
budget_alert_thresholds = [100, 50, 50]
budget_alert_webhook = "https://hooks.example/${HOOK_TOKEN}"

[storage]
redis = "redis://:secret@cache:6379"
redis_prefix = "team-a:"

[[providers]]
name = "mock"
kind = "mock"

[[models]]
name = "chat"
routes = [{ provider = "mock", model = "mock", rpm_limit = 500, tpm_limit = 100000 }]
"#;
    let config = Config::from_toml(text, &env_of(&[("HOOK_TOKEN", "t0k")])).expect("valid");
    assert_eq!(config.server.budget_alert_thresholds, [50, 100], "sorted, once each");
    assert_eq!(config.server.budget_alert_webhook.as_ref().unwrap().expose(), "https://hooks.example/t0k");
    let route = &config.model("chat").unwrap().routes[0];
    assert_eq!((route.rpm_limit, route.tpm_limit), (Some(500), Some(100_000)));
    let table = config.routing_table();
    assert!(table.contains("redis redis://:***@cache:6379 (prefix team-a:)"), "{table}");
    assert!(table.contains("limits 500 rpm / 100000 tpm"), "{table}");
    assert!(!table.contains("secret"), "{table}");

    let bad = "[server]\nbudget_alert_thresholds = [0, 120]\nbudget_alert_webhook = \"ftp://x\"\n";
    let errors = Config::from_toml(bad, &env_of(&[])).unwrap_err().to_string();
    assert!(errors.contains("server.budget_alert_thresholds: percentages must be between 1 and 100"), "{errors}");
    assert!(errors.contains("server.budget_alert_webhook: must be an http:// or https:// URL"), "{errors}");
}

#[test]
fn reports_every_problem_with_its_path() {
    let text = r#"
[server]
master_key = "${NOT_SET}"

[[providers]]
name = "ds"
kind = "deepsek"

[[providers]]
name = "q"
kind = "qwen"
regions = ["CHN"]

[[providers]]
name = "v"
kind = "vllm"

[[models]]
name = "a"
strategy = "fastest"
fallbacks = ["b", "nope"]
routes = [{ provider = "missing", model = "x" }, { provider = "q", model = "qwen-plus", weight = 0 }]

[[models]]
name = "b"
fallbacks = ["a"]
routes = [{ provider = "q", model = "qwen-plus", price = { input = -1, output = 1, currency = "dollars" } }]
"#;
    let errors = Config::from_toml(text, &env_of(&[])).unwrap_err().0;
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    for expected in [
        "server.master_key",
        "providers[0].kind",
        "providers[1].api_key",
        "providers[1].regions",
        "providers[2].base_url",
        "models[0].strategy",
        "models[0].routes[0].provider",
        "models[0].routes[1].weight",
        "models[1].routes[0].price.currency",
        "models[1].routes[0].price.input",
        "models[0].fallbacks",
        "models",
    ] {
        assert!(paths.contains(&expected), "missing {expected} in {errors:#?}");
    }
    let kind_error = errors.iter().find(|e| e.path == "providers[0].kind").unwrap();
    assert!(kind_error.message.contains("known kinds: mock, openai"), "{}", kind_error.message);
}

#[test]
fn unknown_fields_are_rejected_with_a_line() {
    let errors = Config::from_toml("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n", &env_of(&[])).unwrap_err().0;
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].path, "line 3");
    assert!(errors[0].message.contains("unknown field `lisen`"), "{}", errors[0].message);
}

#[test]
fn interpolation_defaults_and_escapes() {
    let text = r#"
[[providers]]
name = "d"
kind = "deepseek"
api_key = "${DS_KEY}"
base_url = "${DS_URL:-https://example.test/v1}"
headers = { "x-note" = "cost $$5" }
"#;
    let config = Config::from_toml(text, &env_of(&[("DS_KEY", "secret-key")])).unwrap();
    let provider = &config.providers[0];
    assert_eq!(provider.api_key.as_ref().unwrap().expose(), "secret-key");
    assert_eq!(provider.base_url, "https://example.test/v1");
    assert_eq!(provider.headers, vec![("x-note".to_owned(), "cost $5".to_owned())]);
    assert!(!format!("{provider:?}").contains("secret-key"));
}

#[test]
fn presets_fill_in_defaults_and_prices() {
    let text = r#"
[[providers]]
name = "deepseek"
kind = "deepseek"
api_key = "k"

[[providers]]
name = "openai"
kind = "openai"
api_key = "k"

[[models]]
name = "chat"
routes = [
  { provider = "deepseek", model = "deepseek-chat" },
  { provider = "openai", model = "gpt-4o-mini", price = { input = 0.27, output = 1.10, cached_input = 0.07 } },
]
"#;
    let config = Config::from_toml(text, &env_of(&[])).unwrap();
    assert_eq!(config.providers[0].base_url, "https://api.deepseek.com/v1");
    assert!(!config.providers[1].regions.serves(llmux_types::Region::parse("CN")));
    let routes = &config.model("chat").unwrap().routes;
    let builtin = routes[0].price.unwrap();
    assert_eq!((builtin.input, builtin.currency), (1_000_000_000, Currency::CNY));
    let overridden = routes[1].price.unwrap();
    assert_eq!(
        (overridden.input, overridden.output, overridden.cached_input),
        (270_000_000, 1_100_000_000, 70_000_000)
    );
    assert_eq!(overridden.currency, Currency::USD);
    assert_eq!(overridden.cache_write, overridden.input, "OpenAI does not charge cache writes extra");
}

#[test]
fn anthropic_cache_writes_cost_a_quarter_more_unless_overridden() {
    let text = r#"
[[providers]]
name = "claude"
kind = "anthropic"
api_key = "k"

[[models]]
name = "sonnet"
routes = [
  { provider = "claude", model = "claude-sonnet-4-6" },
  { provider = "claude", model = "claude-sonnet-4-6", price = { input = 4, output = 20 } },
  { provider = "claude", model = "claude-sonnet-4-6", price = { input = 3, output = 15, cache_write_input = 6 } },
]
"#;
    let config = Config::from_toml(text, &env_of(&[])).unwrap();
    let routes = &config.model("sonnet").unwrap().routes;
    let builtin = routes[0].price.unwrap();
    assert_eq!((builtin.input, builtin.cached_input, builtin.cache_write), (3_000_000_000, 300_000_000, 3_750_000_000));
    assert_eq!(routes[1].price.unwrap().cache_write, 5_000_000_000);
    assert_eq!(routes[2].price.unwrap().cache_write, 6_000_000_000);
}

#[test]
fn default_config_adds_providers_from_the_environment() {
    let config = default_config(&env_of(&[("DEEPSEEK_API_KEY", "k")])).unwrap();
    let names: Vec<_> = config.providers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, vec!["mock", "deepseek"]);
    assert!(config.model("deepseek-chat").is_some());
    assert!(config.model("mock").is_some());
    assert_eq!(config.storage.url, "sqlite://llmux.db");
}

#[test]
fn redacts_storage_passwords() {
    assert_eq!(redact_url("postgres://u:pw@h/db"), "postgres://u:***@h/db");
    assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
}

#[test]
fn timeouts_come_from_the_route_else_the_model_else_the_provider_else_the_server() {
    let text = r#"
[server]
first_byte_timeout_ms = 7000
idle_timeout_ms = 8000

[[providers]]
name = "own"
kind = "openai-compatible"
base_url = "http://127.0.0.1:9/v1"
api_key = "k"
first_byte_timeout_ms = 5000

[[providers]]
name = "default"
kind = "openai-compatible"
base_url = "http://127.0.0.1:9/v1"
api_key = "k"

[[models]]
name = "m"
first_byte_timeout_ms = 300
timeout_ms = 9000
routes = [
  { provider = "own", model = "a" },
  { provider = "default", model = "b", first_byte_timeout_ms = 100, idle_timeout_ms = 50, connect_timeout_ms = 70 },
]

[[models]]
name = "plain"
routes = [{ provider = "default", model = "c" }]
"#;
    let config = Config::from_toml(text, &env_of(&[])).unwrap();
    let ms = Duration::from_millis;
    assert_eq!(config.providers[0].timeouts.first_byte, ms(5000), "the provider's own");
    assert_eq!(config.providers[1].timeouts.first_byte, ms(7000), "the server default");
    assert_eq!(config.providers[1].timeouts.idle, ms(8000));
    assert_eq!(config.providers[1].timeouts.total, llmux_providers::Timeouts::default().total, "built in");
    let routes = &config.model("m").unwrap().routes;
    assert_eq!(
        (routes[0].first_byte_timeout, routes[0].idle_timeout, routes[0].timeout),
        (Some(ms(300)), None, Some(ms(9000)))
    );
    assert_eq!((routes[1].first_byte_timeout, routes[1].idle_timeout), (Some(ms(100)), Some(ms(50))));
    assert_eq!((routes[0].connect_timeout, routes[1].connect_timeout), (None, Some(ms(70))));
    let plain = &config.model("plain").unwrap().routes[0];
    assert_eq!((plain.first_byte_timeout, plain.idle_timeout, plain.timeout), (None, None, None));
}

#[test]
fn providers_declare_the_responses_api_and_routes_may_need_it() {
    let text = r#"
[[providers]]
name = "oa"
kind = "openai"
api_key = "sk-1"

[[providers]]
name = "ds"
kind = "deepseek"
api_key = "sk-2"

[[providers]]
name = "local"
kind = "vllm"
base_url = "http://127.0.0.1:8000/v1"
responses_api = true

[[providers]]
name = "az"
kind = "azure"
base_url = "https://res.openai.azure.com/openai"
api_key = "k"
responses_api = false

[[models]]
name = "pro"
routes = [{ provider = "oa", model = "o3-pro", api = "responses" }, { provider = "local", model = "gpt-oss", api = "responses" }]

[[models]]
name = "chat"
routes = [{ provider = "ds", model = "deepseek-chat", api = "chat" }, { provider = "oa", model = "gpt-5" }]
"#;
    let config = Config::from_toml(text, &env_of(&[])).expect("valid");
    let serves: Vec<bool> = config.providers.iter().map(|provider| provider.responses_api).collect();
    assert_eq!(serves, [true, false, true, false]);
    let apis = |model: &str| config.model(model).unwrap().routes.iter().map(|route| route.api).collect::<Vec<_>>();
    assert_eq!(apis("pro"), [llmux_providers::Api::Responses, llmux_providers::Api::Responses]);
    assert_eq!(apis("chat"), [llmux_providers::Api::Chat, llmux_providers::Api::Chat]);
    let table = config.routing_table();
    assert!(table.contains("1. oa -> o3-pro (api responses)  weight 1"), "{table}");
    assert!(table.contains("1. ds -> deepseek-chat  weight 1"), "{table}");
    assert!(table.contains("https://api.openai.com/v1  (+ Responses API)"), "{table}");
    assert!(!table.contains("https://api.deepseek.com/v1  (+"), "{table}");

    let bad = r#"
[[providers]]
name = "ds"
kind = "deepseek"
api_key = "sk-2"

[[providers]]
name = "claude"
kind = "anthropic"
api_key = "sk-3"
responses_api = true

[[models]]
name = "m"
routes = [
  { provider = "ds", model = "x", api = "responses" },
  { provider = "claude", model = "y", api = "responses" },
  { provider = "ds", model = "z", api = "completions" },
]
"#;
    let errors = Config::from_toml(bad, &env_of(&[])).unwrap_err().to_string();
    assert!(
        errors.contains(
            "providers[1].responses_api: providers of kind `anthropic` do not serve the OpenAI Responses API"
        ),
        "{errors}"
    );
    assert!(
        errors.contains(
            "models[0].routes[0].api: provider `ds` does not serve the OpenAI Responses API (set `responses_api = true` on it if it does)"
        ),
        "{errors}"
    );
    assert!(
        errors.contains("models[0].routes[1].api: provider `claude` does not serve the OpenAI Responses API\n"),
        "{errors}"
    );
    assert!(
        errors.contains("models[0].routes[2].api: unknown api `completions`; expected `chat` or `responses`"),
        "{errors}"
    );
    let unknown = "[[providers]]\nname = \"a\"\nkind = \"openai\"\napi_key = \"k\"\nresponses = true\n";
    assert!(Config::from_toml(unknown, &env_of(&[])).unwrap_err().to_string().contains("unknown field `responses`"));
}

#[test]
fn conversation_affinity_is_on_for_an_hour_by_default_and_zero_turns_it_off() {
    let config = Config::from_toml("", &env_of(&[])).expect("valid");
    assert_eq!(config.server.affinity_ttl, Some(std::time::Duration::from_secs(3600)));
    assert_eq!(config.server.affinity_max_conversations, 100_000);
    let text = "[server]\naffinity_ttl_s = 300\naffinity_max_conversations = 5000\n";
    let config = Config::from_toml(text, &env_of(&[])).expect("valid");
    assert_eq!(config.server.affinity_ttl, Some(std::time::Duration::from_secs(300)));
    assert_eq!(config.server.affinity_max_conversations, 5000);
    let off = Config::from_toml("[server]\naffinity_ttl_s = 0\n", &env_of(&[])).expect("valid");
    assert_eq!(off.server.affinity_ttl, None);
    let errors = Config::from_toml("[server]\naffinity_max_conversations = 0\n", &env_of(&[])).unwrap_err().to_string();
    assert!(errors.contains("server.affinity_max_conversations: must be at least 1"), "{errors}");
}

#[test]
fn routes_may_declare_reasoning_models_on_openai_dialect_providers_only() {
    let text = r#"
[[providers]]
name = "oa"
kind = "openai"
api_key = "sk-1"

[[providers]]
name = "claude"
kind = "anthropic"
api_key = "sk-2"

[[models]]
name = "think"
routes = [{ provider = "oa", model = "o4-mini", reasoning = true }, { provider = "oa", model = "gpt-4.1" }]
"#;
    let config = Config::from_toml(text, &env_of(&[])).expect("valid");
    let reasoning: Vec<bool> = config.model("think").unwrap().routes.iter().map(|route| route.reasoning).collect();
    assert_eq!(reasoning, [true, false]);
    let bad = text.replace("name = \"think\"", "name = \"think\"\n[[models]]\nname = \"c\"\nroutes = [{ provider = \"claude\", model = \"x\", reasoning = true }]\n[[models]]\nname = \"t2\"");
    let errors = Config::from_toml(&bad, &env_of(&[])).unwrap_err().to_string();
    assert!(errors.contains(".reasoning: provider `claude` does not speak the OpenAI dialect"), "{errors}");
}
