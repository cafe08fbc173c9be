//! Three `llmux serve` processes on loopback sharing PostgreSQL (a schema of their
//! own) and Redis (a prefix of their own), as a fleet behind a load balancer would:
//! one fleet-wide RPM limit and one budget, a revocation through one instance refused
//! by the others within a second, and an instance stopped mid-load losing no usage
//! record of a request that completed. Two instances in process: a conversation pinned
//! by one goes to the same route on the other. Against the PostgreSQL and Redis of
//! `llmux_testkit::services` (`LLMUX_TEST_POSTGRES_URL` and `LLMUX_TEST_REDIS_URL`, else
//! the local ones); they fail without them.

use std::time::{Duration, Instant};

use llmux_testkit::services::{postgres_url, redis_url};
use llmux_testkit::{FakeUpstream, Reply};
use serde_json::{Value, json};

use crate::cli::{Running, serve};
use crate::{MASTER, early_in_a_minute, fake_provider, temp_dir};

struct Schema {
    admin: tokio_postgres::Client,
    name: String,
    url: String,
}

impl Schema {
    async fn create(base: &str) -> Schema {
        let (admin, connection) = tokio_postgres::connect(base, tokio_postgres::NoTls).await.expect("PostgreSQL");
        tokio::spawn(connection);
        let name = format!("llmux_it_{:016x}", fastrand::u64(..));
        admin.batch_execute(&format!("CREATE SCHEMA {name}")).await.unwrap();
        let separator = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{separator}options=-csearch_path%3D{name}");
        Schema { admin, name, url }
    }

    /// A relay the test can cut between the gateway and this schema's server, and the
    /// schema's URL through it.
    async fn behind_proxy(&self) -> (llmux_testkit::FaultProxy, String) {
        let rest = self.url.split_once("://").map_or(self.url.as_str(), |(_, rest)| rest);
        let authority = rest.split(['/', '?']).next().unwrap_or(rest);
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
        let target = if host_port.contains(':') { host_port.to_owned() } else { format!("{host_port}:5432") };
        let proxy = llmux_testkit::FaultProxy::start(&target).await;
        let url = self.url.replacen(host_port, &proxy.addr().to_string(), 1);
        (proxy, url)
    }

    async fn drop(self) {
        let _ = self.admin.batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name)).await;
    }
}

/// Writes `dir/llmux.toml`: the test configuration with `storage` in place of its SQLite
/// URL and a model `chat` served by `fake` (`route` is added to the route's fields).
fn config_on(dir: &std::path::Path, storage: &str, fake: &FakeUpstream, route: &str) -> std::path::PathBuf {
    let path = dir.join("llmux.toml");
    let base = crate::base_config(dir).replace(&format!("url = \"sqlite://{}/llmux.db\"\n", dir.display()), storage);
    let provider = fake_provider("fake", &fake.base_url());
    let models = format!("[[models]]\nname = \"chat\"\nroutes = [{{ provider = \"fake\", model = \"m\"{route} }}]\n");
    std::fs::write(&path, format!("{base}{provider}{models}")).unwrap();
    path
}

fn ask() -> Value {
    json!({"model": "chat", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]})
}

struct Instance {
    process: Running,
    address: String,
}

impl Instance {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }
}

#[tokio::test]
async fn three_processes_share_limits_budgets_revocations_and_the_ledger() {
    let (postgres, redis) = (postgres_url(), redis_url());
    let schema = Schema::create(&postgres).await;
    let fake = FakeUpstream::start().await;
    fake.always(Reply::chat("ok", 9, 4));
    let dir = temp_dir("multi");
    let config = dir.join("llmux.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nmaster_key = \"{MASTER}\"\nkey_refresh_ms = 60000\nshutdown_grace_ms = 10000\n\n\
             [storage]\nurl = \"{}\"\nredis = \"{redis}\"\nredis_prefix = \"llmux-it-{}:\"\nflush_interval_ms = 50\nspill_dir = \"{}/spill\"\n\n\
             {}[[models]]\nname = \"chat\"\nroutes = [{{ provider = \"fake\", model = \"m\", price = {{ input = 1000, output = 1000 }} }}]\n",
            schema.url,
            schema.name,
            dir.display(),
            fake_provider("fake", &fake.base_url())
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap().to_owned();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let mut instances = Vec::new();
    for _ in 0..3 {
        let (process, address) = serve(&config);
        instances.push(Instance { process, address });
    }
    // Every instance up, with Redis.
    for instance in &instances {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let metrics = match http.get(instance.url("/metrics")).send().await {
                Ok(response) => response.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if metrics.contains("llmux_redis_up 1") {
                break;
            }
            assert!(Instant::now() < deadline, "instance {} never had Redis: {metrics}", instance.address);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let admin = |instance: &Instance, path: &str, body: Value| {
        http.post(instance.url(path)).bearer_auth(MASTER).json(&body).send()
    };
    let create_key = |instance: &Instance, body: Value| {
        let request = admin(instance, "/admin/keys", body);
        async move {
            let created: Value = request.await.unwrap().json().await.unwrap();
            (created["key"].as_str().unwrap().to_owned(), created["id"].as_str().unwrap().to_owned())
        }
    };
    let burst = |key: String, count: usize| {
        let requests = (0..count).map(|index| {
            let url = instances[index % 3].url("/v1/chat/completions");
            let request = http.post(url).bearer_auth(&key).json(&ask()).send();
            async move { request.await.map(|response| response.status().as_u16()).unwrap_or(0) }
        });
        futures_util::future::join_all(requests)
    };

    // One RPM limit for the fleet.
    let (limited, _) = create_key(&instances[0], json!({"name": "rpm", "rpm_limit": 12})).await;
    early_in_a_minute().await;
    let statuses = burst(limited, 45).await;
    assert_eq!(statuses.iter().filter(|status| **status == 200).count(), 12, "{statuses:?}");

    // One budget for the fleet: 0.13 at about 0.013 a request, 0.024 reserved each.
    let (budgeted, budgeted_id) =
        create_key(&instances[1], json!({"name": "budget", "budget": {"amount": 0.13, "period": "daily"}})).await;
    let statuses = burst(budgeted, 45).await;
    let admitted = statuses.iter().filter(|status| **status == 200).count();
    assert!((5..=10).contains(&admitted), "{admitted} admitted: {statuses:?}");

    // A revocation through one instance holds on the others within a second.
    let (doomed, doomed_id) = create_key(&instances[2], json!({"name": "doomed"})).await;
    for instance in &instances {
        let response = http.post(instance.url("/v1/chat/completions")).bearer_auth(&doomed).json(&ask()).send().await;
        assert_eq!(response.unwrap().status(), 200);
    }
    let response = admin(&instances[2], &format!("/admin/keys/{doomed_id}/revoke"), json!({})).await.unwrap();
    assert_eq!(response.status(), 200);
    let revoked = Instant::now();
    for instance in &instances[..2] {
        loop {
            let response =
                http.post(instance.url("/v1/chat/completions")).bearer_auth(&doomed).json(&ask()).send().await;
            if response.unwrap().status() == 401 {
                break;
            }
            assert!(revoked.elapsed() < Duration::from_secs(1), "instance {} still accepts it", instance.address);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    // An instance stopped (SIGTERM) mid-load: every request that completed has its
    // record, whichever instance served it.
    let (loaded, loaded_id) = create_key(&instances[0], json!({"name": "load"})).await;
    let mut load = tokio::task::JoinSet::new();
    for index in 0..90 {
        let url = instances[index % 3].url("/v1/chat/completions");
        let request = http.post(url).bearer_auth(&loaded).json(&ask());
        load.spawn(async move {
            tokio::time::sleep(Duration::from_millis(5 * index as u64)).await;
            match request.send().await {
                Ok(response) if response.status() == 200 => {
                    let id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
                    response.bytes().await.ok().map(|_| id)
                }
                _ => None,
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pid = instances[2].process.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let mut completed = Vec::new();
    while let Some(outcome) = load.join_next().await {
        completed.extend(outcome.unwrap());
    }
    let stopped = instances.pop().unwrap();
    let mut process = stopped.process;
    let status = tokio::task::spawn_blocking(move || process.wait().map(|status| status.success())).await.unwrap();
    assert!(status.unwrap(), "the stopped instance exits cleanly");
    assert!(completed.len() >= 60, "most of the load completed: {}", completed.len());
    let deadline = Instant::now() + Duration::from_secs(3);
    let recorded: Vec<String> = loop {
        let response = http
            .get(instances[0].url(&format!("/admin/usage?key_id={loaded_id}&limit=1000")))
            .bearer_auth(MASTER)
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        let ids: Vec<String> = body["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|record| record["request_id"].as_str().unwrap().to_owned())
            .collect();
        if completed.iter().all(|id| ids.contains(id)) || Instant::now() > deadline {
            break ids;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let missing: Vec<&String> = completed.iter().filter(|id| !recorded.contains(id)).collect();
    assert!(missing.is_empty(), "completed requests without a record: {missing:?}");

    // The budget held across the fleet, by the ledger.
    let response = http
        .get(instances[0].url(&format!("/admin/usage?key_id={budgeted_id}&limit=1000")))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    let spent: f64 = body["records"].as_array().unwrap().iter().filter_map(|record| record["cost"].as_f64()).sum();
    assert!(spent <= 0.13 + 1e-9, "the fleet spent {spent} of 0.13");
    drop(instances);
    schema.drop().await;
}

#[tokio::test]
async fn while_postgres_is_away_cached_keys_keep_working_and_no_usage_record_is_lost() {
    let postgres = postgres_url();
    let schema = Schema::create(&postgres).await;
    // The gateway reaches PostgreSQL through a relay the test can cut.
    let (proxy, through_proxy) = schema.behind_proxy().await;
    let fake = FakeUpstream::start().await;
    fake.always(Reply::chat("ok", 9, 4));
    let dir = temp_dir("pg-outage");
    let path = config_on(&dir, &format!("url = \"{through_proxy}\"\n"), &fake, "");
    let gateway = crate::TestGateway::start_with(dir.clone(), path).await;
    let (key, key_id) = gateway.create_key(json!({"name": "outage"})).await;
    assert_eq!(gateway.chat(&key, &ask()).await.status(), 200);

    proxy.cut();
    // Requests go on with the cached key; their records wait on local disk.
    let mut served = 1;
    for _ in 0..20 {
        let response = gateway.chat(&key, &ask()).await;
        assert_eq!(response.status(), 200);
        served += 1;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let spilled: usize = std::fs::read_dir(dir.join("spill"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| std::fs::read_to_string(entry.path()).unwrap_or_default().lines().count())
                .sum()
        })
        .unwrap_or(0);
    assert!(spilled >= 19, "records of the outage are on disk: {spilled}");
    // The instance stays in its load balancer, saying what is degraded.
    let response = gateway.http.get(gateway.url("/ready")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let ready: Value = response.json().await.unwrap();
    assert_eq!((ready["status"].as_str(), ready["store"].as_str()), (Some("degraded"), Some("unreachable")), "{ready}");

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ready: Value = gateway.http.get(gateway.url("/ready")).send().await.unwrap().json().await.unwrap();
        if (&ready["status"], &ready["store"], &ready["redis"]) == (&json!("ready"), &json!("ok"), &Value::Null) {
            break;
        }
        assert!(Instant::now() < deadline, "{ready}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let rows = schema
            .admin
            .query_one(&format!("SELECT COUNT(*) FROM {}.usage WHERE key_id = $1", schema.name), &[&key_id])
            .await
            .unwrap();
        let count: i64 = rows.get(0);
        if count == served {
            break;
        }
        assert!(count <= served, "{count} records for {served} requests: none twice");
        assert!(Instant::now() < deadline, "{count} of {served} records after PostgreSQL returned");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    gateway.stop().await;
    schema.drop().await;
}

#[tokio::test]
async fn while_postgres_is_away_a_budget_the_fleet_already_tracks_keeps_working_on_another_instance() {
    let (postgres, redis) = (postgres_url(), redis_url());
    let schema = Schema::create(&postgres).await;
    let (proxy, through_proxy) = schema.behind_proxy().await;
    let fake = FakeUpstream::start().await;
    fake.always(Reply::chat("ok", 9, 4));
    let dir = temp_dir("pg-outage-fleet");
    let storage =
        format!("url = \"{through_proxy}\"\nredis = \"{redis}\"\nredis_prefix = \"llmux-it-{}:\"\n", schema.name);
    let path = config_on(&dir, &storage, &fake, ", price = { input = 1000, output = 1000 }");
    let first = crate::TestGateway::start_with(dir.clone(), path.clone()).await;
    let second = crate::TestGateway::start_with(dir.clone(), path).await;
    for gateway in [&first, &second] {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ready: Value = gateway.http.get(gateway.url("/ready")).send().await.unwrap().json().await.unwrap();
            if ready["redis"] == "up" {
                break;
            }
            assert!(Instant::now() < deadline, "{ready}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let (key, _) = first.create_key(json!({"name": "budgeted", "budget": {"amount": 1, "period": "daily"}})).await;
    // The first instance starts the fleet's counter for the day (seeded from the ledger).
    assert_eq!(first.chat(&key, &ask()).await.status(), 200);
    // The second knows the key (through the fleet's notice) but has read no spend yet.
    wait_until_known(&second, &key).await;

    proxy.cut();
    // Without the ledger the second instance goes by the fleet's counter.
    let response = second.chat(&key, &ask()).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    // A key whose budget nobody has tracked yet fails closed.
    proxy.restore();
    let (fresh, _) = first.create_key(json!({"name": "untracked", "budget": {"amount": 1, "period": "daily"}})).await;
    wait_until_known(&second, &fresh).await;
    proxy.cut();
    let response = second.chat(&fresh, &ask()).await;
    assert_eq!(response.status(), 503);
    proxy.restore();
    first.stop().await;
    second.stop().await;
    schema.drop().await;
}

/// `url` (PostgreSQL or Redis) with its host and port replaced by `addr`, and the
/// original `host:port`.
fn through(url: &str, default_port: u16, addr: std::net::SocketAddr) -> (String, String) {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let target = if host_port.contains(':') { host_port.to_owned() } else { format!("{host_port}:{default_port}") };
    (url.replacen(host_port, &addr.to_string(), 1), target)
}

#[tokio::test]
async fn a_conversation_pinned_on_one_instance_goes_to_the_same_route_on_another() {
    let (postgres, redis) = (postgres_url(), redis_url());
    let schema = Schema::create(&postgres).await;
    // Both instances reach Redis through a relay the test cuts at the end.
    let (_, target) = through(&redis, 6379, "127.0.0.1:1".parse().unwrap());
    let relay = llmux_testkit::FaultProxy::start(&target).await;
    let (through_relay, _) = through(&redis, 6379, relay.addr());
    let mut providers = String::new();
    let mut fakes = Vec::new();
    for name in ["a", "b", "c"] {
        let fake = FakeUpstream::start().await;
        fake.always(Reply::chat("ok", 9, 4));
        providers.push_str(&fake_provider(name, &fake.base_url()));
        fakes.push(fake);
    }
    let dir = temp_dir("affinity-fleet");
    let path = dir.join("llmux.toml");
    let prefix = format!("llmux-it-{}:", schema.name);
    let base = crate::base_config(&dir).replace(
        &format!("url = \"sqlite://{}/llmux.db\"\n", dir.display()),
        &format!("url = \"{}\"\nredis = \"{through_relay}\"\nredis_prefix = \"{prefix}\"\n", schema.url),
    );
    let model = "[[models]]\nname = \"agent\"\nstrategy = \"weighted\"\nroutes = [\n  { provider = \"a\", model = \"m\" },\n  \
                 { provider = \"b\", model = \"m\" },\n  { provider = \"c\", model = \"m\" },\n]\n";
    std::fs::write(&path, format!("{base}{providers}{model}")).unwrap();
    let first = crate::TestGateway::start_with(dir.clone(), path.clone()).await;
    let second = crate::TestGateway::start_with(dir.clone(), path).await;
    for gateway in [&first, &second] {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ready: Value = gateway.http.get(gateway.url("/ready")).send().await.unwrap().json().await.unwrap();
            if ready["redis"] == "up" {
                break;
            }
            assert!(Instant::now() < deadline, "{ready}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let (key, _) = first.create_key(json!({"name": "agent"})).await;
    wait_until_known(&second, &key).await;
    // The route that served a turn of `conversation` on `gateway`.
    let ask = |gateway: &crate::TestGateway, conversation: &str| {
        let body = json!({"model": "agent", "prompt_cache_key": conversation, "messages": [{"role": "user", "content": "hi"}]});
        let request = gateway.http.post(gateway.url("/v1/chat/completions")).bearer_auth(&key).json(&body).send();
        async move {
            let response = request.await.unwrap();
            assert_eq!(response.status(), 200);
            response.headers()["x-llmux-provider"].to_str().unwrap().to_owned()
        }
    };
    let mut redis_admin =
        redis::Client::open(redis.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let conversations = 5;
    for n in 0..conversations {
        let conversation = format!("session-{n}");
        let pinned = ask(&first, &conversation).await;
        // The pin reaches Redis in the background.
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let pins: Vec<String> =
                redis::cmd("KEYS").arg(format!("{prefix}pin:*")).query_async(&mut redis_admin).await.unwrap();
            if pins.len() > n {
                break;
            }
            assert!(Instant::now() < deadline, "no pin in Redis for conversation {n}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(ask(&second, &conversation).await, pinned, "conversation {n} on the second instance");
        assert_eq!(ask(&first, &conversation).await, pinned, "conversation {n} back on the first");
    }
    // Each of the second instance's turns found its pin in the fleet.
    let metrics = second.http.get(second.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(&format!("llmux_affinity_total{{model=\"agent\",outcome=\"hit\"}} {conversations}")),
        "{metrics}"
    );
    assert!(!metrics.contains("outcome=\"miss\""), "{metrics}");

    // Redis goes away: every turn is still answered, and each instance keeps pinning alone.
    relay.cut();
    for n in 0..3 {
        let conversation = format!("offline-{n}");
        let pinned = ask(&second, &conversation).await;
        assert_eq!(ask(&second, &conversation).await, pinned);
    }
    let pins: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut redis_admin).await.unwrap();
    if !pins.is_empty() {
        let _: i64 = redis::cmd("DEL").arg(pins).query_async(&mut redis_admin).await.unwrap();
    }
    first.stop().await;
    second.stop().await;
    schema.drop().await;
}

#[tokio::test]
async fn a_stored_response_is_continued_read_and_deleted_through_another_instance() {
    let schema = Schema::create(&postgres_url()).await;
    let fake = FakeUpstream::start().await;
    fake.always(Reply::chat_stream(&["o", "k"], 9, 4));
    let dir = temp_dir("responses-fleet");
    let path = config_on(&dir, &format!("url = \"{}\"\n", schema.url), &fake, "");
    let first = crate::TestGateway::start_with(dir.clone(), path.clone()).await;
    let second = crate::TestGateway::start_with(dir.clone(), path).await;
    let (key, _) = first.create_key(json!({"name": "agent"})).await;
    wait_until_known(&second, &key).await;

    // A streamed turn on the first instance...
    let body = json!({"model": "chat", "input": "first turn", "stream": true});
    let response = first.http.post(first.url("/v1/responses")).bearer_auth(&key).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let events = response.text().await.unwrap();
    assert!(events.contains("event: response.completed"), "{events}");
    let created = events.lines().find_map(|line| line.strip_prefix("data: ")).unwrap();
    let id = serde_json::from_str::<Value>(created).unwrap()["response"]["id"].as_str().unwrap().to_owned();

    // ...continued at once on the second: the provider gets the whole conversation.
    fake.always(Reply::chat("fine", 9, 4));
    let body = json!({"model": "chat", "input": "second turn", "previous_response_id": id});
    let response = second.http.post(second.url("/v1/responses")).bearer_auth(&key).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    let messages = fake.last().json()["messages"].clone();
    assert_eq!(
        messages,
        json!([
            {"role": "user", "content": "first turn"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "second turn"}
        ])
    );
    let second_id = answer["id"].as_str().unwrap();

    // Read through the other instance, deleted through one, gone from both.
    let get = |gateway: &crate::TestGateway, id: &str| {
        gateway.http.get(gateway.url(&format!("/v1/responses/{id}"))).bearer_auth(&key).send()
    };
    let read: Value = get(&first, second_id).await.unwrap().json().await.unwrap();
    assert_eq!(read["output"][0]["content"][0]["text"], "fine");
    assert_eq!(read["previous_response_id"], id.as_str());
    let deleted = second.http.delete(second.url(&format!("/v1/responses/{id}"))).bearer_auth(&key).send().await;
    assert_eq!(deleted.unwrap().status(), 200);
    assert_eq!(get(&first, &id).await.unwrap().status(), 404);
    assert_eq!(get(&second, &id).await.unwrap().status(), 404);
    first.stop().await;
    second.stop().await;
    schema.drop().await;
}

/// Waits (at most two seconds) until `gateway` accepts `key`, created through another instance.
async fn wait_until_known(gateway: &crate::TestGateway, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while gateway.http.get(gateway.url("/v1/models")).bearer_auth(key).send().await.unwrap().status() != 200 {
        assert!(Instant::now() < deadline, "the instance never learned the key");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn the_tests_read_the_service_variables_llmux_documents() {
    use llmux_config::env_vars::{LLMUX_TEST_POSTGRES_URL, LLMUX_TEST_REDIS_URL};
    assert_eq!(llmux_testkit::services::POSTGRES_URL_VAR, LLMUX_TEST_POSTGRES_URL);
    assert_eq!(llmux_testkit::services::REDIS_URL_VAR, LLMUX_TEST_REDIS_URL);
}
