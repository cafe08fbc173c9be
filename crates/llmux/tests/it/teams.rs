//! Teams: the admin API, and limits, budgets, models and regions shared by a team's keys.

use llmux_testkit::{FakeUpstream, Reply};
use serde_json::{Value, json};

use crate::{MASTER, TestGateway, fake_provider};

async fn gateway(fake: &FakeUpstream) -> TestGateway {
    // 1000 USD per million tokens both ways: a request of 13 tokens costs 0.013.
    TestGateway::start(&format!(
        "{}[[models]]\nname = \"chat\"\nroutes = [{{ provider = \"fake\", model = \"m\", price = {{ input = 1000, output = 1000 }} }}]\n\
         [[models]]\nname = \"other\"\nroutes = [{{ provider = \"fake\", model = \"m2\" }}]\n",
        fake_provider("fake", &fake.base_url())
    ))
    .await
}

fn ask(model: &str) -> Value {
    json!({"model": model, "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]})
}

async fn admin(gateway: &TestGateway, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = gateway.http.request(method, gateway.url(path)).bearer_auth(MASTER);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn teams_are_managed_through_the_admin_api_and_keys_may_only_join_existing_ones() {
    let fake = FakeUpstream::start().await;
    let gateway = gateway(&fake).await;
    use reqwest::Method;

    let body = json!({"name": "search", "rpm_limit": 100, "budget": {"amount": 25.5, "currency": "CNY", "period": "daily"}, "metadata": {"cost_center": 42}});
    let (status, team) = admin(&gateway, Method::POST, "/admin/teams", Some(body.clone())).await;
    assert_eq!(status, 201, "{team}");
    assert_eq!(team["name"], "search");
    assert_eq!(team["budget"], json!({"amount": 25.5, "currency": "CNY", "period": "daily"}));
    assert_eq!(team["metadata"]["cost_center"], 42);
    let (status, error) = admin(&gateway, Method::POST, "/admin/teams", Some(body)).await;
    assert_eq!((status, error["error"]["code"].as_str()), (409, Some("conflict")), "{error}");
    let (status, error) = admin(&gateway, Method::POST, "/admin/teams", Some(json!({"name": "no spaces"}))).await;
    assert_eq!((status, error["error"]["param"].as_str()), (400, Some("name")), "{error}");
    let (status, error) = admin(&gateway, Method::POST, "/admin/teams", Some(json!({"name": "x", "rpm": 1}))).await;
    assert_eq!(status, 400, "unknown fields are refused: {error}");

    let (status, patched) =
        admin(&gateway, Method::PATCH, "/admin/teams/search", Some(json!({"rpm_limit": null, "tpm_limit": 5000})))
            .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!((patched["rpm_limit"].clone(), patched["tpm_limit"].clone()), (Value::Null, json!(5000)));
    let (status, shown) = admin(&gateway, Method::GET, "/admin/teams/search", None).await;
    assert_eq!((status, shown["tpm_limit"].clone()), (200, json!(5000)));
    let (_, list) = admin(&gateway, Method::GET, "/admin/teams", None).await;
    assert_eq!(list["teams"].as_array().unwrap().len(), 1);

    // Keys name existing teams only.
    let (status, error) =
        admin(&gateway, Method::POST, "/admin/keys", Some(json!({"name": "k", "team": "nope"}))).await;
    assert_eq!((status, error["error"]["param"].as_str()), (400, Some("team")), "{error}");
    let (_, key_id) = gateway.create_key(json!({"name": "k", "team": "search"})).await;
    let (status, error) =
        admin(&gateway, Method::PATCH, &format!("/admin/keys/{key_id}"), Some(json!({"team": "nope"}))).await;
    assert_eq!(status, 400, "{error}");

    // A team with active keys cannot be deleted; once they are revoked it can.
    let (status, error) = admin(&gateway, Method::DELETE, "/admin/teams/search", None).await;
    assert_eq!(status, 409, "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("1 active key"), "{error}");
    let (status, _) = admin(&gateway, Method::POST, &format!("/admin/keys/{key_id}/revoke"), None).await;
    assert_eq!(status, 200);
    let (status, _) = admin(&gateway, Method::DELETE, "/admin/teams/search", None).await;
    assert_eq!(status, 200);
    let (status, error) = admin(&gateway, Method::GET, "/admin/teams/search", None).await;
    assert_eq!((status, error["error"]["code"].as_str()), (404, Some("not_found")));
    // Without the master key, nothing.
    let response = gateway.http.get(gateway.url("/admin/teams")).bearer_auth("sk-llmux-nope").send().await.unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn a_team_shares_its_rate_limit_budget_and_model_list_among_its_keys() {
    let fake = FakeUpstream::start().await;
    fake.always(Reply::chat("ok", 9, 4));
    let gateway = gateway(&fake).await;
    let team = json!({"name": "search", "rpm_limit": 3, "models": ["chat"]});
    let (status, body) = admin(&gateway, reqwest::Method::POST, "/admin/teams", Some(team)).await;
    assert_eq!(status, 201, "{body}");
    let (first, first_id) = gateway.create_key(json!({"name": "a", "team": "search", "rpm_limit": 100})).await;
    let (second, _) = gateway.create_key(json!({"name": "b", "team": "search"})).await;
    crate::early_in_a_minute().await;

    // The team's model list applies to its keys, even one allowed every model itself
    // (and the refusal counts against the team's requests per minute).
    let response = gateway.chat(&first, &ask("other")).await;
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_not_allowed");

    // Two more requests between both keys, then the team's window is full for both.
    let mut statuses = Vec::new();
    for key in [&first, &second, &first, &second] {
        let response = gateway.chat(key, &ask("chat")).await;
        assert_eq!(response.headers()["x-ratelimit-limit-requests"], "3", "the tighter limit is shown");
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["message"], "Rate limit reached: 3 requests per minute for team search.");
        }
    }
    assert_eq!(statuses, [200, 200, 429, 429]);
    assert_eq!(fake.received().len(), 2);

    // Records carry the team; usage can be summed by team.
    let records = gateway.wait_usage(5).await;
    assert!(records.iter().all(|record| record["team"] == "search"), "{records:#?}");
    assert!(records.iter().any(|record| record["key_id"] == first_id.as_str()));
    let summary: Value = gateway.admin_get("/admin/usage/summary?group_by=team").await;
    // One row per group and currency: the refusals have none.
    let rows = summary["rows"].as_array().unwrap();
    assert!(rows.iter().all(|row| row["group"] == "search"), "{summary}");
    assert_eq!(rows.iter().map(|row| row["requests"].as_u64().unwrap()).sum::<u64>(), 5);
}

#[tokio::test]
async fn a_team_budget_stops_all_its_keys_and_counts_what_they_spent_before() {
    let fake = FakeUpstream::start().await;
    fake.always(Reply::chat("ok", 9, 4));
    let gateway = gateway(&fake).await;
    let (status, body) = admin(
        &gateway,
        reqwest::Method::POST,
        "/admin/teams",
        Some(json!({"name": "ads", "budget": {"amount": 0.05, "period": "monthly"}})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (first, _) = gateway.create_key(json!({"name": "a", "team": "ads"})).await;
    let (second, _) = gateway.create_key(json!({"name": "b", "team": "ads", "budget": {"amount": 100}})).await;
    // Each request reserves 0.024 (max 4 output + the body's estimate) and costs 0.013.
    let mut served = 0;
    let mut refusal = None;
    for round in 0..10 {
        let key = if round % 2 == 0 { &first } else { &second };
        let response = gateway.chat(key, &ask("chat")).await;
        if response.status() == 200 {
            served += 1;
            gateway.wait_usage(served).await;
        } else {
            refusal = Some((response.status().as_u16(), response.json::<Value>().await.unwrap()));
            break;
        }
    }
    let (status, body) = refusal.expect("the team budget stops the keys");
    assert_eq!(status, 429);
    assert_eq!(body["error"]["code"], "budget_exceeded");
    assert!(body["error"]["message"].as_str().unwrap().starts_with("Budget exceeded: team ads has spent"), "{body}");
    assert_eq!(served, 3, "0.013 × 3 spent; a fourth reservation of 0.024 would pass 0.05");
    let records = gateway.wait_usage(4).await;
    let spent: f64 = records.iter().filter_map(|record| record["cost"].as_f64()).sum();
    assert!((spent - 0.039).abs() < 1e-9, "{spent}");
    let (status, team) = admin(&gateway, reqwest::Method::GET, "/admin/teams/ads", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        (team["budget"]["spent"].clone(), team["budget"]["remaining"].clone()),
        (json!(0.039), json!(0.011)),
        "{team}"
    );

    // A gateway started afresh on the same store reads the team's spend from the ledger:
    // the key with room in its own budget is still held to the team's.
    let (dir, config_path) = (gateway.dir.clone(), gateway.config_path.clone());
    gateway.stop().await;
    let gateway = TestGateway::start_with(dir, config_path).await;
    let response = gateway.chat(&second, &ask("chat")).await;
    assert_eq!(response.status(), 429);
    assert_eq!(fake.received().len(), 3);
}

#[tokio::test]
async fn an_instance_that_has_not_cached_a_keys_team_reads_it_before_serving() {
    let fake = FakeUpstream::start().await;
    fake.always(Reply::chat("ok", 9, 4));
    // Two instances on one store, no Redis, and a key refresh too slow to matter: the
    // second learns of the team only when a key of it arrives.
    let dir = crate::temp_dir("teams-two");
    let path = dir.join("llmux.toml");
    let config = crate::base_config(&dir).replace("key_refresh_ms = 100", "key_refresh_ms = 60000");
    let models = format!(
        "{}[[models]]\nname = \"chat\"\nroutes = [{{ provider = \"fake\", model = \"m\" }}]\n",
        fake_provider("fake", &fake.base_url())
    );
    std::fs::write(&path, format!("{config}{models}")).unwrap();
    let first = TestGateway::start_with(dir.clone(), path.clone()).await;
    let second = TestGateway::start_with(dir, path).await;
    // Let the second's key refresh make its first pass (at start) before the team exists.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (status, body) =
        admin(&first, reqwest::Method::POST, "/admin/teams", Some(json!({"name": "late", "rpm_limit": 2}))).await;
    assert_eq!(status, 201, "{body}");
    let (key, _) = first.create_key(json!({"name": "k", "team": "late"})).await;
    crate::early_in_a_minute().await;
    let statuses: Vec<u16> = [
        second.chat(&key, &ask("chat")).await.status().as_u16(),
        second.chat(&key, &ask("chat")).await.status().as_u16(),
        second.chat(&key, &ask("chat")).await.status().as_u16(),
    ]
    .into();
    assert_eq!(statuses, [200, 200, 429], "the team's limit of 2 per minute applies");
}
