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

#[tokio::test]
async fn key_lists_and_usage_summaries_come_a_page_at_a_time() {
    let gateway = TestGateway::start(
        "[[providers]]\nname = \"mock\"\nkind = \"mock\"\n\n\
         [[models]]\nname = \"a\"\nroutes = [{ provider = \"mock\", model = \"mock\" }]\n\n\
         [[models]]\nname = \"b\"\nroutes = [{ provider = \"mock\", model = \"mock\" }]\n\n\
         [[models]]\nname = \"c\"\nroutes = [{ provider = \"mock\", model = \"mock\" }]\n",
    )
    .await;
    let mut ids = Vec::new();
    for index in 0..5 {
        ids.push(gateway.create_key(json!({"name": format!("k{index}")})).await.1);
    }
    let mut seen = Vec::new();
    let mut query = "/admin/keys?limit=2".to_owned();
    loop {
        let page = gateway.admin_get(&query).await;
        let keys = page["keys"].as_array().unwrap();
        assert!(keys.len() <= 2);
        seen.extend(keys.iter().map(|key| key["id"].as_str().unwrap().to_owned()));
        if page["has_more"] == false {
            break;
        }
        query = format!("/admin/keys?limit=2&after={}", page["last_id"].as_str().unwrap());
    }
    let all = gateway.admin_get("/admin/keys").await;
    assert_eq!(all["has_more"], false);
    let listed: Vec<String> =
        all["keys"].as_array().unwrap().iter().map(|key| key["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(seen, listed, "the pages hold the whole list, in its order");
    let (mut seen, mut ids) = (seen, ids);
    seen.sort();
    ids.sort();
    assert_eq!(seen, ids, "every key once");
    let unknown =
        gateway.http.get(gateway.url("/admin/keys?after=nope")).bearer_auth(crate::MASTER).send().await.unwrap();
    assert_eq!(unknown.status(), 400);

    let key = gateway.key().await;
    for model in ["a", "b", "c"] {
        assert_eq!(gateway.chat(&key, &json!({"model": model, "messages": crate::user("x")})).await.status(), 200);
    }
    gateway.wait_usage(3).await;
    let first = gateway.admin_get("/admin/usage/summary?group_by=model&limit=2").await;
    let groups =
        |page: &Value| page["rows"].as_array().unwrap().iter().map(|row| row["group"].clone()).collect::<Vec<_>>();
    assert_eq!((groups(&first), &first["has_more"]), (vec![json!("a"), json!("b")], &json!(true)));
    let second = gateway.admin_get("/admin/usage/summary?group_by=model&limit=2&offset=2").await;
    assert_eq!((groups(&second), &second["has_more"]), (vec![json!("c")], &json!(false)));
    gateway.stop().await;
}
