use std::time::Duration;

use serde_json::{Value, json};

use crate::{MASTER, TestGateway, user};

const CONFIG: &str = "[[providers]]\nname = \"mock\"\nkind = \"mock\"\n\n\
    [[models]]\nname = \"a\"\nroutes = [{ provider = \"mock\", model = \"echo\" }]\n\n\
    [[models]]\nname = \"b\"\nroutes = [{ provider = \"mock\", model = \"echo\" }]\n";

async fn status(gateway: &TestGateway, key: &str, model: &str) -> u16 {
    gateway.chat(key, &json!({"model": model, "messages": user("hi")})).await.status().as_u16()
}

#[tokio::test]
async fn revoking_through_the_admin_api_is_immediate() {
    let gateway = TestGateway::start(CONFIG).await;
    let (key, id) = gateway.create_key(json!({"name": "soon-revoked"})).await;
    assert_eq!(status(&gateway, &key, "a").await, 200);
    let response =
        gateway.http.post(gateway.url(&format!("/admin/keys/{id}/revoke"))).bearer_auth(MASTER).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let view: Value = response.json().await.unwrap();
    assert_eq!(view["status"], "revoked");
    assert!(view.get("key").is_none() && view.get("key_hash").is_none());
    assert_eq!(status(&gateway, &key, "a").await, 401);
}

#[tokio::test]
async fn keys_changed_by_another_process_take_effect_within_the_refresh_interval() {
    let gateway = TestGateway::start(CONFIG).await;
    // Another process (the CLI, another instance) works on the same store.
    let store = llmux_store::open(&format!("sqlite://{}", gateway.db_path().display())).await.unwrap();
    let new = llmux_gateway::keys::NewKey { name: "from-cli".into(), ..Default::default() };
    let (record, plain) = llmux_gateway::keys::create(store.as_ref(), new).await.unwrap();
    assert_eq!(status(&gateway, &plain, "a").await, 200, "a new key works at once");
    llmux_gateway::keys::revoke(store.as_ref(), &record.id).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        if status(&gateway, &plain, "a").await == 401 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "revocation not picked up within 2 s");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn allow_lists_limit_models_and_the_model_list() {
    let gateway = TestGateway::start(CONFIG).await;
    let (key, id) = gateway.create_key(json!({"name": "only-a", "models": ["a"]})).await;
    assert_eq!(status(&gateway, &key, "a").await, 200);
    assert_eq!(status(&gateway, &key, "b").await, 403);
    let list: Value =
        gateway.http.get(gateway.url("/v1/models")).bearer_auth(&key).send().await.unwrap().json().await.unwrap();
    let ids: Vec<&str> = list["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["a"]);
    assert_eq!(list["object"], "list");

    let response = gateway
        .http
        .patch(gateway.url(&format!("/admin/keys/{id}")))
        .bearer_auth(MASTER)
        .json(&json!({"models": null, "metadata": {"owner": "team-x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(status(&gateway, &key, "b").await, 200);
    let shown: Value = gateway.admin_get(&format!("/admin/keys/{id}")).await;
    assert_eq!(shown["metadata"], json!({"owner": "team-x"}));
    assert!(shown["models"].is_null());
}

#[tokio::test]
async fn expired_keys_and_admin_auth() {
    let gateway = TestGateway::start(CONFIG).await;
    let (key, _) = gateway.create_key(json!({"name": "old", "expires_at": "2001-01-01T00:00:00Z"})).await;
    assert_eq!(status(&gateway, &key, "a").await, 401);

    let response = gateway.http.get(gateway.url("/admin/keys")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let response = gateway.http.get(gateway.url("/admin/keys")).bearer_auth("sk-llmux-wrong").send().await.unwrap();
    assert_eq!(response.status(), 401);
    let list: Value = gateway.admin_get("/admin/keys").await;
    assert_eq!(list["keys"].as_array().unwrap().len(), 1);

    let response = gateway
        .http
        .post(gateway.url("/admin/keys"))
        .bearer_auth(MASTER)
        .json(&json!({"name": "x", "region": "CHINA"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["param"], "region");
    // A key's team must exist.
    let response =
        gateway.http.post(gateway.url("/admin/teams")).bearer_auth(MASTER).json(&json!({"name": "ml"})).send().await;
    assert_eq!(response.unwrap().status(), 201);
    let response = gateway
        .http
        .post(gateway.url("/admin/keys"))
        .bearer_auth(MASTER)
        .json(&json!({"name": "b", "budget": {"amount": 10, "period": "monthly"}, "rpm_limit": 60, "tpm_limit": 1000, "region": "cn", "team": "ml"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["budget"], json!({"amount": 10, "currency": "USD", "period": "monthly"}));
    assert_eq!(created["region"], "CN");
    assert!(created["key"].as_str().unwrap().starts_with("sk-llmux-"));
}
