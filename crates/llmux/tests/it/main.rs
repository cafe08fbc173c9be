//! Integration tests: the real server over real HTTP against in-process fake
//! upstreams on port 0. One test binary (faster to link); modules by theme.

mod affinity;
mod anthropic;
mod billing;
mod bounds;
mod chat;
mod cli;
mod crash;
mod errors;
mod fleet;
mod gemini;
mod hostile;
mod keys;
mod ledger;
mod limits;
mod multi_instance;
mod reload;
mod responses_upstream;
mod routing;
mod streaming;
mod teams;
mod upstream_bounds;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use llmux_server::ConfigSource;
use serde_json::{Value, json};

pub const MASTER: &str = "sk-master-test-0001";

/// Rate-limit windows are calendar minutes: waits until the next ten seconds stay in
/// one, so exact counts hold.
pub async fn early_in_a_minute() {
    let in_minute = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() % 60_000;
    while in_minute() > 50_000 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A fresh, empty directory for one test.
pub fn temp_dir(tag: &str) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "llmux-it-{}-{}-{tag}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a temp dir");
    dir
}

/// A gateway served in-process on 127.0.0.1:0 with a SQLite store in a temp dir.
pub struct TestGateway {
    pub addr: SocketAddr,
    pub dir: PathBuf,
    pub config_path: PathBuf,
    pub http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), String>>>,
}

/// The `[server]` and `[storage]` sections every test gateway uses.
pub fn base_config(dir: &std::path::Path) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nmaster_key = \"{MASTER}\"\nkey_refresh_ms = 100\nshutdown_grace_ms = 5000\nmax_body_bytes = 65536\n\n\
         [storage]\nurl = \"sqlite://{0}/llmux.db\"\nflush_interval_ms = 50\nspill_dir = \"{0}/spill\"\n\n",
        dir.display()
    )
}

/// A provider entry pointing at a fake upstream.
pub fn fake_provider(name: &str, base_url: &str) -> String {
    format!(
        "[[providers]]\nname = \"{name}\"\nkind = \"openai-compatible\"\nbase_url = \"{base_url}\"\napi_key = \"sk-upstream-{name}-secret\"\n\n"
    )
}

/// A gateway with one model, `model`, routed to `fake` (priced 1 and 2 per million
/// tokens); `provider_lines` are added to the provider's entry.
pub async fn one_route(fake: &llmux_testkit::FakeUpstream, model: &str, provider_lines: &str) -> TestGateway {
    let provider = fake_provider("fake", &fake.base_url()).replace("\n\n", &format!("\n{provider_lines}\n\n"));
    TestGateway::start(&format!(
        "{provider}[[models]]\nname = \"{model}\"\nroutes = [{{ provider = \"fake\", model = \"fake-chat\", price = {{ input = 1, output = 2 }} }}]\n"
    ))
    .await
}

impl TestGateway {
    /// Starts a gateway whose config is the base sections plus `rest`.
    pub async fn start(rest: &str) -> TestGateway {
        TestGateway::start_with_server("", rest).await
    }

    /// As [`start`](Self::start), with `server` (lines of `[server]` settings) added to
    /// the base `[server]` section.
    pub async fn start_with_server(server: &str, rest: &str) -> TestGateway {
        let dir = temp_dir("gw");
        let config_path = dir.join("llmux.toml");
        let base = base_config(&dir).replace("max_body_bytes = 65536\n", &format!("max_body_bytes = 65536\n{server}"));
        std::fs::write(&config_path, format!("{base}{rest}")).expect("write config");
        TestGateway::start_with(dir, config_path).await
    }

    pub async fn start_with(dir: PathBuf, config_path: PathBuf) -> TestGateway {
        let source = ConfigSource::File(config_path.clone());
        let config = source.load().unwrap_or_else(|errors| panic!("test config is invalid: {errors}"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(llmux_server::serve(listener, source, config, async move {
            let _ = stopped.await;
        }));
        let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("client");
        let gateway = TestGateway { addr, dir, config_path, http, stop: Some(stop), task: Some(task) };
        for _ in 0..200 {
            if gateway.http.get(gateway.url("/health")).send().await.is_ok() {
                return gateway;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the gateway did not come up");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Creates a key through the admin API; returns (plain key, id).
    pub async fn create_key(&self, body: Value) -> (String, String) {
        let response =
            self.http.post(self.url("/admin/keys")).bearer_auth(MASTER).json(&body).send().await.expect("admin");
        assert_eq!(response.status(), 201, "create key");
        let created: Value = response.json().await.expect("json");
        (created["key"].as_str().expect("key").to_owned(), created["id"].as_str().expect("id").to_owned())
    }

    pub async fn key(&self) -> String {
        self.create_key(json!({"name": "test"})).await.0
    }

    pub async fn post(&self, path: &str, key: &str, body: &Value) -> reqwest::Response {
        self.http.post(self.url(path)).bearer_auth(key).json(body).send().await.expect("request")
    }

    pub async fn chat(&self, key: &str, body: &Value) -> reqwest::Response {
        self.post("/v1/chat/completions", key, body).await
    }

    /// `POST /v1/messages` as an Anthropic client sends it.
    pub async fn messages(&self, key: &str, body: &Value) -> reqwest::Response {
        let request = self.http.post(self.url("/v1/messages")).header("x-api-key", key);
        request.header("anthropic-version", "2023-06-01").json(body).send().await.expect("request")
    }

    /// `GET path` of the admin API (with the master key), as JSON.
    pub async fn admin_get(&self, path: &str) -> Value {
        let response = self.http.get(self.url(path)).bearer_auth(MASTER).send().await.expect("admin request");
        response.json().await.expect("admin JSON")
    }

    /// Usage records (newest first) via the admin API.
    pub async fn usage(&self, query: &str) -> Vec<Value> {
        let response =
            self.http.get(self.url(&format!("/admin/usage{query}"))).bearer_auth(MASTER).send().await.expect("usage");
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("json");
        body["records"].as_array().cloned().unwrap_or_default()
    }

    /// Waits (at most 2 s, the contract) until `count` records are visible.
    pub async fn wait_usage(&self, count: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        loop {
            let records = self.usage("?limit=1000").await;
            if records.len() >= count || tokio::time::Instant::now() > deadline {
                assert_eq!(records.len(), count, "usage records: {records:#?}");
                return records;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Graceful shutdown; returns when the ledger is flushed.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("serve task").expect("serve result");
        }
    }

    /// Starts shutdown without waiting.
    pub fn begin_stop(&mut self) -> tokio::task::JoinHandle<Result<(), String>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.take().expect("running")
    }

    /// The store file, for checks after shutdown.
    pub fn db_path(&self) -> PathBuf {
        self.dir.join("llmux.db")
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

/// `(event name, data)` of each event of an SSE body with named events (Anthropic,
/// the Responses API).
pub fn sse_events(body: &str) -> Vec<(String, serde_json::Value)> {
    body.split("\n\n")
        .filter(|event| !event.trim().is_empty())
        .map(|event| {
            let name = event.lines().find_map(|line| line.strip_prefix("event: ")).unwrap_or_default().to_owned();
            let data = event.lines().find_map(|line| line.strip_prefix("data: ")).unwrap_or("null");
            (name, serde_json::from_str(data).unwrap())
        })
        .collect()
}

/// The `data:` payloads of an SSE body.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|event| event.lines().find_map(|line| line.strip_prefix("data: ")).map(str::to_owned))
        .collect()
}
