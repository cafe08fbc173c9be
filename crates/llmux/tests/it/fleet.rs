//! Several gateways sharing one store and one Redis (`storage.redis`): fleet-wide rate
//! limits and budgets, key revocation within a second, route rest hints, and what
//! happens while Redis is away. Against the Redis of `llmux_testkit::services::redis_url`
//! (`LLMUX_TEST_REDIS_URL`, else the local one); they fail without one.

use std::time::{Duration, Instant};

use llmux_testkit::services::redis_url;
use llmux_testkit::{FakeUpstream, FaultProxy, Reply};
use serde_json::{Value, json};

use crate::{MASTER, TestGateway, base_config, early_in_a_minute, fake_provider, temp_dir};

/// `count` gateways on one SQLite file and one Redis, under a prefix of their own.
/// Key changes reach the others only through Redis (the key refresh is a minute).
async fn fleet(count: usize, redis: &str, rest: &str) -> Vec<TestGateway> {
    fleet_with_prefix(count, redis, rest, &format!("{:016x}", fastrand::u64(..)), "").await
}

/// Like [`fleet`], with a Redis prefix of the caller's and `server` lines added to the
/// `[server]` table.
async fn fleet_with_prefix(count: usize, redis: &str, rest: &str, prefix: &str, server: &str) -> Vec<TestGateway> {
    let dir = temp_dir("fleet");
    let path = dir.join("llmux.toml");
    let config = base_config(&dir)
        .replace("key_refresh_ms = 100", &format!("key_refresh_ms = 60000\n{server}"))
        .replace("[storage]\n", &format!("[storage]\nredis = \"{redis}\"\nredis_prefix = \"llmux-it-{prefix}:\"\n"));
    std::fs::write(&path, format!("{config}{rest}")).unwrap();
    let mut gateways = Vec::new();
    for _ in 0..count {
        let gateway = TestGateway::start_with(dir.clone(), path.clone()).await;
        wait_redis(&gateway, true).await;
        gateways.push(gateway);
    }
    gateways
}

async fn redis_up(gateway: &TestGateway) -> Option<bool> {
    let metrics = gateway.http.get(gateway.url("/metrics")).send().await.ok()?.text().await.ok()?;
    let line = metrics.lines().find(|line| line.starts_with("llmux_redis_up "))?;
    Some(line.ends_with(" 1"))
}

async fn wait_redis(gateway: &TestGateway, up: bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while redis_up(gateway).await != Some(up) {
        assert!(Instant::now() < deadline, "llmux_redis_up never became {up}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn chat_model(fake: &FakeUpstream, price: &str) -> String {
    format!(
        "{}[[models]]\nname = \"chat\"\nroutes = [{{ provider = \"fake\", model = \"m\"{price} }}]\n",
        fake_provider("fake", &fake.base_url())
    )
}

fn ask() -> Value {
    json!({"model": "chat", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]})
}

/// Sends one chat request with `key` once `gateway` knows it (it learns of keys created
/// elsewhere through Redis: 401 until then, two seconds at most); returns its status.
async fn chat_once_known(gateway: &TestGateway, key: &str) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let status = gateway.chat(key, &ask()).await.status().as_u16();
        if status != 401 {
            return status;
        }
        assert!(Instant::now() < deadline, "the instance never learned the key");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends `count` requests spread over `gateways` at once; returns their statuses.
async fn burst(gateways: &[TestGateway], key: &str, count: usize) -> Vec<u16> {
    let requests = (0..count).map(|index| {
        let gateway = &gateways[index % gateways.len()];
        async move { gateway.chat(key, &ask()).await.status().as_u16() }
    });
    futures_util::future::join_all(requests).await
}

#[tokio::test]
async fn one_rpm_limit_and_one_budget_hold_across_the_fleet() {
    let redis = redis_url();
    let fake = FakeUpstream::start().await;
    fake.always(Reply::chat("ok", 9, 4));
    // 1000 USD per million tokens: a request reserves about 0.024 and costs 0.013.
    let gateways = fleet(3, &redis, &chat_model(&fake, ", price = { input = 1000, output = 1000 }")).await;

    let (limited, _) = gateways[0].create_key(json!({"name": "rpm", "rpm_limit": 10})).await;
    early_in_a_minute().await;
    let statuses = burst(&gateways, &limited, 36).await;
    assert_eq!(statuses.iter().filter(|status| **status == 200).count(), 10, "{statuses:?}");
    assert!(statuses.iter().all(|status| *status == 200 || *status == 429), "{statuses:?}");

    // A team's limit holds across the fleet over all of its keys, whichever instances
    // their requests reach.
    let created = gateways[2]
        .http
        .post(gateways[2].url("/admin/teams"))
        .bearer_auth(crate::MASTER)
        .json(&json!({"name": "fleet-team", "rpm_limit": 6}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let (first, _) = gateways[2].create_key(json!({"name": "a", "team": "fleet-team"})).await;
    let (second, _) = gateways[2].create_key(json!({"name": "b", "team": "fleet-team"})).await;
    let (first_statuses, second_statuses) =
        tokio::join!(burst(&gateways, &first, 12), burst(&gateways[1..], &second, 12));
    let statuses = [first_statuses, second_statuses].concat();
    assert_eq!(statuses.iter().filter(|status| **status == 200).count(), 6, "{statuses:?}");
    assert!(statuses.iter().all(|status| *status == 200 || *status == 429), "{statuses:?}");

    let (budgeted, budgeted_id) =
        gateways[1].create_key(json!({"name": "budget", "budget": {"amount": 0.13, "period": "daily"}})).await;
    let statuses = burst(&gateways, &budgeted, 48).await;
    let admitted = statuses.iter().filter(|status| **status == 200).count();
    assert!((5..=10).contains(&admitted), "{admitted} admitted: {statuses:?}");
    let deadline = Instant::now() + Duration::from_secs(3);
    let spent = loop {
        let records = gateways[2].usage(&format!("?key_id={budgeted_id}&limit=1000")).await;
        if records.len() == 48 || Instant::now() > deadline {
            assert_eq!(records.len(), 48);
            break records.iter().filter_map(|record| record["cost"].as_f64()).sum::<f64>();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(spent <= 0.13 + 1e-9, "the fleet spent {spent} of 0.13");
}

#[tokio::test]
async fn a_key_revoked_through_one_instance_is_refused_by_the_others_within_a_second() {
    let redis = redis_url();
    let fake = FakeUpstream::start().await;
    fake.always(Reply::chat("ok", 9, 4));
    let gateways = fleet(3, &redis, &chat_model(&fake, "")).await;
    let (key, id) = gateways[0].create_key(json!({"name": "soon revoked"})).await;
    for gateway in &gateways {
        assert_eq!(gateway.chat(&key, &ask()).await.status(), 200);
    }
    let response =
        gateways[0].http.post(gateways[0].url(&format!("/admin/keys/{id}/revoke"))).bearer_auth(MASTER).send().await;
    assert_eq!(response.unwrap().status(), 200);
    let revoked = Instant::now();
    for gateway in &gateways[1..] {
        loop {
            let status = gateway.chat(&key, &ask()).await.status();
            if status == 401 {
                break;
            }
            assert!(revoked.elapsed() < Duration::from_secs(1), "still {status} after a second");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test]
async fn a_route_resting_on_one_instance_rests_on_the_others() {
    let redis = redis_url();
    let (failing, spare) = (FakeUpstream::start().await, FakeUpstream::start().await);
    failing.always(Reply::status(503, "{\"error\":{\"message\":\"overloaded\"}}"));
    spare.always(Reply::chat("spare", 9, 4));
    let rest = format!(
        "{}{}[[models]]\nname = \"chat\"\nroutes = [{{ provider = \"failing\", model = \"m\" }}, {{ provider = \"spare\", model = \"m\", priority = 1 }}]\n",
        fake_provider("failing", &failing.base_url()),
        fake_provider("spare", &spare.base_url())
    );
    let gateways = fleet(2, &redis, &rest).await;
    let key = gateways[0].key().await;
    // Five failures open the circuit on the first instance (default circuit_failures).
    for _ in 0..5 {
        assert_eq!(gateways[0].chat(&key, &ask()).await.headers()["x-llmux-provider"], "spare");
    }
    assert_eq!(failing.received().len(), 5);
    // The second instance never tried the failing route, yet rests it now.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let response = gateways[1].chat(&key, &ask()).await;
        assert_eq!(response.status(), 200);
        if response.headers()["x-llmux-attempts"] == "1" {
            break;
        }
        assert!(Instant::now() < deadline, "the hint did not arrive");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(failing.received().len() <= 6);
}

#[tokio::test]
async fn while_redis_is_away_requests_go_on_under_local_limits_and_redis_is_picked_up_again() {
    let redis = redis_url();
    let target = redis.trim_start_matches("redis://").trim_end_matches('/').to_owned();
    let proxy = FaultProxy::start(&target).await;
    let fake = FakeUpstream::start().await;
    fake.always(Reply::chat("ok", 9, 4));
    let gateways = fleet(1, &format!("redis://{}", proxy.addr()), &chat_model(&fake, "")).await;
    let gateway = &gateways[0];
    let (key, _) = gateway.create_key(json!({"name": "limited", "rpm_limit": 30})).await;
    early_in_a_minute().await;
    assert_eq!(gateway.chat(&key, &ask()).await.status(), 200);

    proxy.cut();
    wait_redis(gateway, false).await;
    // The instance goes on alone: its own window still holds the key to 30.
    let statuses = burst(&gateways, &key, 40).await;
    assert_eq!(statuses.iter().filter(|status| **status == 200).count(), 29, "{statuses:?}");
    assert!(statuses.iter().all(|status| *status == 200 || *status == 429));

    proxy.restore();
    wait_redis(gateway, true).await;
    let (fresh, _) = gateway.create_key(json!({"name": "after", "rpm_limit": 30})).await;
    assert_eq!(gateway.chat(&fresh, &ask()).await.status(), 200);
    assert_eq!(fake.received().len(), 31);
}

#[tokio::test]
async fn an_instance_that_stops_gives_its_unused_leases_back_to_the_fleet() {
    let redis = redis_url();
    let fake = FakeUpstream::start().await;
    fake.always(Reply::chat("ok", 9, 4));
    let prefix = format!("{:016x}", fastrand::u64(..));
    let mut gateways = fleet_with_prefix(1, &redis, &chat_model(&fake, ""), &prefix, "").await;
    let (key, key_id) = gateways[0].create_key(json!({"name": "leased", "rpm_limit": 64})).await;
    early_in_a_minute().await;
    // The first request claims a lease of 4 (a sixteenth of 64) and uses one.
    assert_eq!(gateways[0].chat(&key, &ask()).await.status(), 200);
    let minute = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() / 60_000;
    let counter = format!("rpm:{key_id}:{minute}");
    let options = llmux_fleet::FleetOptions { prefix: format!("llmux-it-{prefix}:"), ..Default::default() };
    let reader = llmux_fleet::Fleet::new(&redis, options).unwrap();
    assert_eq!(reader.get_many(std::slice::from_ref(&counter)).await.unwrap(), [4]);
    // A graceful stop gives the three unused requests back.
    gateways.pop().unwrap().stop().await;
    assert_eq!(reader.get_many(std::slice::from_ref(&counter)).await.unwrap(), [1]);
}

#[tokio::test]
async fn a_budget_alert_goes_by_the_fleets_spend_and_fires_once() {
    let redis = redis_url();
    let (fake, hooks) = (FakeUpstream::start().await, FakeUpstream::start().await);
    fake.always(Reply::chat("ok", 9, 4));
    hooks.always(Reply::status(204, ""));
    let server = format!("budget_alert_thresholds = [10]\nbudget_alert_webhook = \"{}/hooks\"\n", hooks.base_url());
    let rest = chat_model(&fake, ", price = { input = 1000, output = 1000 }");
    let prefix = format!("{:016x}", fastrand::u64(..));
    let gateways = fleet_with_prefix(3, &redis, &rest, &prefix, &server).await;
    let (key, key_id) = gateways[0].create_key(json!({"name": "alerted", "budget": {"amount": 0.5}})).await;
    // 0.013 a request, spread over the three: the fourth brings the fleet to 0.052, past
    // 10 % of 0.5, while no instance alone has spent more than 0.039 by the seventh.
    for index in 0..7 {
        assert_eq!(chat_once_known(&gateways[index % 3], &key).await, 200);
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while hooks.received().is_empty() {
        assert!(Instant::now() < deadline, "no alert: the fleet spent 0.091 of 0.5");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Three more syncs: nobody else reports the same crossing.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let posted = hooks.received();
    assert_eq!(posted.len(), 1, "{:?}", posted.iter().map(|hook| hook.json()).collect::<Vec<_>>());
    let alert = posted[0].json();
    assert_eq!((alert["key_id"].as_str(), alert["threshold_percent"].as_u64()), (Some(key_id.as_str()), Some(10)));
    let spent = alert["spent"].as_f64().unwrap();
    assert!((0.05..=0.091 + 1e-9).contains(&spent), "the fleet's spend when it crossed: {spent}");
    let mut counted = 0;
    for gateway in &gateways {
        let metrics = gateway.http.get(gateway.url("/metrics")).send().await.unwrap().text().await.unwrap();
        counted += usize::from(metrics.contains("llmux_budget_alerts_total{scope=\"key\",threshold=\"10\"} 1"));
    }
    assert_eq!(counted, 1, "one instance reports it");
}

#[tokio::test]
async fn instances_holding_parts_of_a_budget_give_them_back_instead_of_all_refusing() {
    let redis = redis_url();
    let fake = FakeUpstream::start().await;
    fake.always(Reply::chat("ok", 9, 4));
    // A request reserves about 0.024 and costs 0.013: after each one, its instance keeps
    // 0.011 of its lease, too little for the next estimate.
    let gateways = fleet(3, &redis, &chat_model(&fake, ", price = { input = 1000, output = 1000 }")).await;
    let (key, key_id) =
        gateways[0].create_key(json!({"name": "budget", "budget": {"amount": 0.1, "period": "daily"}})).await;
    let mut statuses = Vec::new();
    for index in 0..15 {
        statuses.push(chat_once_known(&gateways[index % 3], &key).await);
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    let records = loop {
        let records = gateways[0].usage(&format!("?key_id={key_id}&limit=100")).await;
        if records.len() == 15 {
            break records;
        }
        assert!(Instant::now() < deadline, "{} records", records.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let spent: f64 = records.iter().filter_map(|record| record["cost"].as_f64()).sum();
    assert!(spent <= 0.1 + 1e-9, "spent {spent}");
    // One instance alone stops once the spend leaves less than an estimate (0.076 + 0.024
    // would exceed 0.1 only after the sixth request). Three instances keeping their
    // 0.011 each stopped at 0.065 with 0.035 unused; giving short leases back lets the
    // fleet go as far as one instance.
    assert!(spent > 0.07, "the fleet stopped at {spent} of 0.1: {statuses:?}");
    assert!(statuses.iter().all(|status| *status == 200 || *status == 429), "{statuses:?}");
}
