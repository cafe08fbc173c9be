use serde_json::{Value, json};

use crate::{MASTER, TestGateway, base_config, user};

const ONE: &str = "[[providers]]\nname = \"mock\"\nkind = \"mock\"\n\n[[models]]\nname = \"first\"\nroutes = [{ provider = \"mock\", model = \"echo\" }]\n";

#[tokio::test]
async fn good_reload_applies_and_bad_reload_keeps_the_old_config() {
    let gateway = TestGateway::start(ONE).await;
    let key = gateway.key().await;
    let chat = |model: &str| json!({"model": model, "messages": user("hi")});
    assert_eq!(gateway.chat(&key, &chat("second")).await.status(), 404);

    let two = format!(
        "{}{ONE}\n[[models]]\nname = \"second\"\nroutes = [{{ provider = \"mock\", model = \"mock\" }}]\n",
        base_config(&gateway.dir)
    );
    std::fs::write(&gateway.config_path, two).unwrap();
    let response = gateway.http.post(gateway.url("/admin/reload")).bearer_auth(MASTER).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(gateway.chat(&key, &chat("second")).await.status(), 200);

    std::fs::write(
        &gateway.config_path,
        format!("{}[[providers]]\nname = \"x\"\nkind = \"nonsense\"\n", base_config(&gateway.dir)),
    )
    .unwrap();
    let response = gateway.http.post(gateway.url("/admin/reload")).bearer_auth(MASTER).send().await.unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert!(error["error"]["message"].as_str().unwrap().contains("unknown provider kind `nonsense`"), "{error}");
    // The previous configuration keeps serving.
    assert_eq!(gateway.chat(&key, &chat("second")).await.status(), 200);
    assert_eq!(gateway.chat(&key, &chat("first")).await.status(), 200);
}
