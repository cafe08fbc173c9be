//! The real binary, as an operator uses it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::{base_config, temp_dir, user};

const BIN: &str = env!("CARGO_BIN_EXE_llmux");

fn config_in(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("llmux.toml");
    std::fs::write(
        &path,
        format!(
            "{}[[providers]]\nname = \"mock\"\nkind = \"mock\"\n\n[[models]]\nname = \"chat\"\nroutes = [{{ provider = \"mock\", model = \"echo\" }}]\n",
            base_config(dir)
        ),
    )
    .unwrap();
    path
}

fn run(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(BIN).args(args).output().expect("run llmux");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn check_prints_the_routing_table_and_reports_errors() {
    let dir = temp_dir("check");
    let config = config_in(&dir);
    let (ok, stdout, _) = run(&["check", "--config", config.to_str().unwrap()]);
    assert!(ok);
    assert!(stdout.contains("chat (strategy priority)"), "{stdout}");
    assert!(stdout.contains("1. mock -> echo"), "{stdout}");
    assert!(stdout.contains("no redis (limits and budgets per instance)"), "{stdout}");
    assert!(stdout.contains("route health: no running instance answered at 127.0.0.1:0"), "{stdout}");

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[[providers]]\nname = \"a\"\nkind = \"deepseek\"\n\n[[models]]\nname = \"m\"\nroutes = [{ provider = \"b\", model = \"x\" }]\n").unwrap();
    let (ok, _, stderr) = run(&["check", "--config", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("providers[0].api_key"), "{stderr}");
    assert!(stderr.contains("models[0].routes[0].provider: unknown provider `b`"), "{stderr}");
    let (ok, stdout, _) = run(&["version"]);
    assert!(ok && stdout.starts_with("llmux "));
}

#[test]
fn keys_are_managed_from_the_cli() {
    let dir = temp_dir("keys");
    let config = config_in(&dir);
    let config = config.to_str().unwrap();
    let (ok, stdout, stderr) = run(&[
        "keys",
        "create",
        "--config",
        config,
        "--name",
        "ci",
        "--models",
        "chat,other",
        "--budget",
        "10",
        "--budget-period",
        "weekly",
        "--rpm",
        "5",
        "--region",
        "CN",
    ]);
    assert!(ok, "{stderr}");
    let mut lines = stdout.lines();
    let key = lines.next().unwrap();
    assert!(key.starts_with("sk-llmux-"));
    let id = lines.next().unwrap().strip_prefix("id: ").unwrap().to_owned();
    assert!(stderr.contains("shown only once"));

    let (ok, stdout, _) = run(&["keys", "list", "--config", config, "--json"]);
    assert!(ok);
    let list: Value = serde_json::from_str(&stdout).unwrap();
    let listed = &list["keys"][0];
    assert_eq!(listed["id"], id.as_str());
    assert_eq!(listed["models"], json!(["chat", "other"]));
    assert_eq!(listed["budget"], json!({"amount": 10, "currency": "USD", "period": "weekly"}));
    assert_eq!(listed["rpm_limit"], 5);
    assert_eq!(listed["region"], "CN");
    assert!(!stdout.contains(key), "the plain key is never listed");
    let db = std::fs::read(dir.join("llmux.db")).unwrap();
    assert!(!db.windows(key.len()).any(|w| w == key.as_bytes()), "the plain key is not stored");

    let (ok, stdout, _) = run(&["keys", "revoke", "--config", config, &id]);
    assert!(ok && stdout.contains("revoked"));
    let (ok, stdout, _) = run(&["keys", "show", "--config", config, &id]);
    assert!(ok);
    let shown = serde_json::from_str::<Value>(&stdout).unwrap();
    assert_eq!(shown["status"], "revoked");
    // `show` adds the period's standing from the ledger (nothing spent yet).
    assert_eq!((shown["budget"]["spent"].clone(), shown["budget"]["remaining"].clone()), (json!(0), json!(10)));
    let (ok, _, stderr) = run(&["keys", "revoke", "--config", config, "key_missing"]);
    assert!(!ok && stderr.contains("no key with id"));
}

/// A running `llmux serve`, killed if a test fails before stopping it.
pub struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl std::ops::Deref for Running {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

/// Starts the binary on a free port; returns the child and its address.
pub fn serve(config: &str) -> (Running, String) {
    let mut child = Command::new(BIN)
        .args(["serve", "--config", config, "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start llmux serve");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    // Keep reading so the child never writes into a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let address = first
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("address in banner")
        .to_owned();
    (Running(child), address)
}

#[tokio::test]
async fn sigterm_drains_the_ledger_and_usage_reports_it() {
    let dir = temp_dir("sigterm");
    let config = config_in(&dir);
    let config = config.to_str().unwrap().to_owned();
    let (ok, stdout, _) = run(&["keys", "create", "--config", &config, "--name", "ops"]);
    assert!(ok);
    let key = stdout.lines().next().unwrap().to_owned();
    let (mut child, address) = serve(&config);
    let http = reqwest::Client::new();
    for _ in 0..5 {
        let response = http
            .post(format!("http://{address}/v1/chat/completions"))
            .bearer_auth(&key)
            .json(&json!({"model": "chat", "messages": user("one two")}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "llmux did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}");
    let (ok, stdout, _) = run(&["usage", "--config", &config, "--by", "model", "--json"]);
    assert!(ok);
    let rows: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(rows[0]["group"], "chat");
    assert_eq!(rows[0]["requests"], 5);
    assert_eq!(rows[0]["output_tokens"], 10);
    let (ok, stdout, _) = run(&["usage", "--config", &config, "--by", "day"]);
    assert!(ok && stdout.lines().count() == 2, "{stdout}");
}

#[tokio::test]
async fn sighup_reloads_the_config_file() {
    let dir = temp_dir("sighup");
    let config = config_in(&dir);
    let config_text = std::fs::read_to_string(&config).unwrap();
    let config = config.to_str().unwrap().to_owned();
    let (ok, stdout, _) = run(&["keys", "create", "--config", &config, "--name", "ops"]);
    assert!(ok);
    let key = stdout.lines().next().unwrap().to_owned();
    let (mut child, address) = serve(&config);
    let http = reqwest::Client::new();
    let status = |model: &'static str| {
        let http = http.clone();
        let key = key.clone();
        let address = address.clone();
        async move {
            http.post(format!("http://{address}/v1/chat/completions"))
                .bearer_auth(&key)
                .json(&json!({"model": model, "messages": user("x")}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status("added").await, 404);
    std::fs::write(
        &config,
        format!(
            "{config_text}\n[[models]]\nname = \"added\"\nroutes = [{{ provider = \"mock\", model = \"mock\" }}]\n"
        ),
    )
    .unwrap();
    assert!(Command::new("kill").args(["-HUP", &child.id().to_string()]).status().unwrap().success());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while status("added").await != 200 {
        assert!(std::time::Instant::now() < deadline, "SIGHUP reload not applied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A broken file is refused; the running config keeps serving.
    std::fs::write(&config, "[server\n").unwrap();
    assert!(Command::new("kill").args(["-HUP", &child.id().to_string()]).status().unwrap().success());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(status("added").await, 200);
    assert!(child.try_wait().unwrap().is_none(), "a bad reload must not stop the server");
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
}

#[tokio::test]
async fn check_shows_the_live_route_health_of_the_running_instance() {
    let gateway = crate::TestGateway::start(
        "[[providers]]\nname = \"mock\"\nkind = \"mock\"\n\n[[models]]\nname = \"chat\"\nroutes = [{ provider = \"mock\", model = \"echo\" }]\n",
    )
    .await;
    let key = gateway.key().await;
    assert_eq!(gateway.chat(&key, &json!({"model": "chat", "messages": user("hi")})).await.status(), 200);
    let dir = temp_dir("check-live");
    let config = dir.join("llmux.toml");
    let listen = gateway.url("").trim_start_matches("http://").to_owned();
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"{listen}\"\nmaster_key = \"{}\"\n\n[[providers]]\nname = \"mock\"\nkind = \"mock\"\n\n[[models]]\nname = \"chat\"\nroutes = [{{ provider = \"mock\", model = \"echo\" }}]\n",
            crate::MASTER
        ),
    )
    .unwrap();
    let path = config.to_str().unwrap().to_owned();
    let (ok, stdout, stderr) = tokio::task::spawn_blocking(move || run(&["check", "--config", &path])).await.unwrap();
    assert!(ok, "{stderr}");
    assert!(stdout.contains(&format!("route health (from the instance at {listen}):")), "{stdout}");
    assert!(stdout.contains("chat via mock -> echo: available, 0 consecutive failures"), "{stdout}");
    assert!(!stdout.contains(crate::MASTER), "the master key is never printed");
}

#[test]
fn teams_are_managed_from_the_cli_and_keys_join_them() {
    let dir = temp_dir("teams");
    let config = config_in(&dir);
    let config = config.to_str().unwrap();
    let (ok, stdout, stderr) = run(&[
        "teams",
        "create",
        "--config",
        config,
        "--name",
        "search",
        "--rpm",
        "50",
        "--budget",
        "12.5",
        "--budget-period",
        "weekly",
        "--models",
        "chat",
    ]);
    assert!(ok, "{stderr}");
    let team: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(team["budget"], json!({"amount": 12.5, "currency": "USD", "period": "weekly"}));
    assert_eq!((team["rpm_limit"].clone(), team["models"].clone()), (json!(50), json!(["chat"])));
    let (ok, _, stderr) = run(&["teams", "create", "--config", config, "--name", "search"]);
    assert!(!ok && stderr.contains("exists already"), "{stderr}");

    let (ok, stdout, _) = run(&["keys", "create", "--config", config, "--name", "member", "--team", "search"]);
    assert!(ok);
    let id = stdout.lines().nth(1).unwrap().trim_start_matches("id: ").to_owned();
    let (ok, _, stderr) = run(&["keys", "create", "--config", config, "--name", "stray", "--team", "nope"]);
    assert!(!ok && stderr.contains("no team named `nope`"), "{stderr}");

    let (ok, stdout, _) = run(&["teams", "update", "--config", config, "search", "--tpm", "9000", "--models", "*"]);
    assert!(ok);
    let team: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!((team["tpm_limit"].clone(), team["models"].clone()), (json!(9000), Value::Null));
    let (ok, stdout, _) = run(&["teams", "list", "--config", config]);
    assert!(ok && stdout.lines().nth(1).unwrap().starts_with("search"), "{stdout}");
    let (ok, stdout, _) = run(&["teams", "show", "--config", config, "search"]);
    assert!(ok);
    let shown: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!((shown["budget"]["spent"].clone(), shown["budget"]["remaining"].clone()), (json!(0), json!(12.5)));

    let (ok, _, stderr) = run(&["teams", "delete", "--config", config, "search"]);
    assert!(!ok && stderr.contains("1 active key"), "{stderr}");
    assert!(run(&["keys", "revoke", "--config", config, &id]).0);
    assert!(run(&["teams", "delete", "--config", config, "search"]).0);
    let (ok, _, stderr) = run(&["teams", "show", "--config", config, "search"]);
    assert!(!ok && stderr.contains("no team named"), "{stderr}");
}
