//! A Gemini upstream (provider kind `gemini`) behind both client surfaces.

use llmux_testkit::{FakeUpstream, Reply};
use serde_json::{Value, json};

use crate::{TestGateway, fake_provider};

const PROVIDER: &str = "[[providers]]\nname = \"google\"\nkind = \"gemini\"\nbase_url = \"http://{addr}\"\napi_key = \"gm-upstream-secret\"\n\n";

async fn gemini_gateway(fake: &FakeUpstream, extra: &str) -> TestGateway {
    TestGateway::start(&format!(
        "{}{extra}[[models]]\nname = \"flash\"\nroutes = [{{ provider = \"google\", model = \"gemini-2.5-flash\" }}]\n",
        PROVIDER.replace("{addr}", &fake.addr.to_string())
    ))
    .await
}

/// A Gemini answer: thought, text, then a function call carrying its signature.
fn gemini_tool_answer() -> Reply {
    Reply::status(
        200,
        &json!({
            "candidates": [{
                "content": {"role": "model", "parts": [
                    {"text": "The user wants weather.", "thought": true},
                    {"text": "Checking."},
                    {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2lnLWdlbWluaQ=="}
                ]},
                "finishReason": "STOP", "index": 0
            }],
            "usageMetadata": {"promptTokenCount": 20, "candidatesTokenCount": 8, "thoughtsTokenCount": 12, "cachedContentTokenCount": 10, "totalTokenCount": 40},
            "modelVersion": "gemini-2.5-flash", "responseId": "resp-1"
        })
        .to_string(),
    )
}

fn gemini_stream() -> Reply {
    let chunks = [
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Let me ", "thought": false}]}, "index": 0}],
               "usageMetadata": {"promptTokenCount": 15, "candidatesTokenCount": 2, "totalTokenCount": 17}, "responseId": "r-s"}),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "check."}]}, "index": 0}],
               "usageMetadata": {"promptTokenCount": 15, "candidatesTokenCount": 3, "totalTokenCount": 18}}),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}]},
               "finishReason": "STOP", "index": 0}],
               "usageMetadata": {"promptTokenCount": 15, "candidatesTokenCount": 9, "thoughtsTokenCount": 4, "totalTokenCount": 28}}),
    ];
    // Google frames with CRLF and ends the body without a terminator.
    Reply::RawSse(chunks.iter().map(|chunk| format!("data: {chunk}\r\n\r\n")).collect())
}

#[tokio::test]
async fn an_openai_client_reaches_gemini_with_tools_thinking_and_billing_of_thoughts() {
    let fake = FakeUpstream::start().await;
    fake.push(gemini_tool_answer());
    let gateway = gemini_gateway(&fake, "").await;
    let key = gateway.key().await;
    let response = gateway
        .chat(
            &key,
            &json!({
                "model": "flash", "max_tokens": 300, "stop": ["END"], "user": "u-1",
                "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Paris?"}],
                "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "properties": {"city": {"type": "string"}}}}}],
                "tool_choice": "required"
            }),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-llmux-provider"], "google");
    assert_eq!(response.headers()["x-llmux-dropped-params"], "user");
    let completion: Value = response.json().await.unwrap();
    assert!(
        completion["created"].as_u64().is_some_and(|created| created > 1_700_000_000),
        "Gemini gives no time: llmux's"
    );
    let choice = &completion["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "Gemini says STOP; the function call decides");
    assert_eq!(choice["message"]["content"], "Checking.");
    assert_eq!(choice["message"]["reasoning_content"], "The user wants weather.");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap(),
        json!({"city": "Paris"})
    );
    assert!(call["id"].as_str().is_some_and(|id| !id.is_empty()));
    // Gemini's signature, where Google's own OpenAI-compatible endpoint puts it.
    assert_eq!(call["extra_content"], json!({"google": {"thought_signature": "c2lnLWdlbWluaQ=="}}));
    // Thinking tokens are output tokens.
    assert_eq!(completion["usage"]["prompt_tokens"], 20);
    assert_eq!(completion["usage"]["completion_tokens"], 20);
    assert_eq!(completion["usage"]["completion_tokens_details"]["reasoning_tokens"], 12);
    assert_eq!(completion["usage"]["prompt_tokens_details"]["cached_tokens"], 10);

    let sent = fake.last();
    assert_eq!(sent.path, "/v1beta/models/gemini-2.5-flash:generateContent");
    assert_eq!(sent.query, None);
    assert_eq!(sent.header("x-goog-api-key"), Some("gm-upstream-secret"));
    assert_eq!(sent.header("authorization"), None);
    let body = sent.json();
    assert!(body.get("model").is_none(), "the model is in the URL: {body}");
    assert_eq!(body["systemInstruction"], json!({"parts": [{"text": "Be brief."}]}));
    assert_eq!(body["contents"], json!([{"role": "user", "parts": [{"text": "Weather in Paris?"}]}]));
    assert_eq!(body["generationConfig"]["maxOutputTokens"], 300);
    assert_eq!(body["generationConfig"]["stopSequences"], json!(["END"]));
    assert_eq!(body["toolConfig"]["functionCallingConfig"]["mode"], "ANY");
    let declaration = &body["tools"][0]["functionDeclarations"][0];
    assert_eq!(declaration["name"], "get_weather");
    assert!(declaration["parametersJsonSchema"].get("$schema").is_none(), "{declaration}");
    assert_eq!(declaration["parametersJsonSchema"]["properties"]["city"]["type"], "string");

    let records = gateway.wait_usage(1).await;
    assert_eq!(records[0]["provider"], "google");
    assert_eq!(records[0]["upstream_model"], "gemini-2.5-flash");
    assert_eq!(records[0]["output_tokens"], 20);
    assert_eq!(records[0]["reasoning_tokens"], 12);
    assert_eq!(records[0]["currency"], "USD");
    // Built-in price: 0.30 input, 2.50 output, 0.03 cached per million tokens.
    // 10 uncached × 0.30 + 10 cached × 0.03 + 20 output × 2.50 = 53.3 µUSD.
    assert_eq!(records[0]["cost"].to_string(), "0.0000533", "{}", records[0]);
}

#[tokio::test]
async fn a_tool_loop_sends_gemini_function_responses_named_after_their_calls() {
    let fake = FakeUpstream::start().await;
    fake.push(Reply::status(
        200,
        &json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Sunny."}]}, "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": 30, "candidatesTokenCount": 2}})
        .to_string(),
    ));
    let gateway = gemini_gateway(&fake, "").await;
    let key = gateway.key().await;
    let response = gateway
        .chat(
            &key,
            &json!({"model": "flash", "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_7", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
                  "extra_content": {"google": {"thought_signature": "c2lnLWdlbWluaQ=="}}}]},
                {"role": "tool", "tool_call_id": "call_7", "content": "{\"sky\":\"clear\"}"}
            ]}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let completion: Value = response.json().await.unwrap();
    assert_eq!(completion["choices"][0]["message"]["content"], "Sunny.");
    let contents = &fake.last().json()["contents"];
    assert_eq!(contents[1]["role"], "model");
    assert_eq!(
        contents[1]["parts"][0]["functionCall"],
        json!({"id": "call_7", "name": "get_weather", "args": {"city": "Paris"}})
    );
    assert_eq!(contents[1]["parts"][0]["thoughtSignature"], "c2lnLWdlbWluaQ==", "the signature went back");
    assert_eq!(contents[2]["role"], "user");
    assert_eq!(
        contents[2]["parts"][0]["functionResponse"],
        json!({"id": "call_7", "name": "get_weather", "response": {"sky": "clear"}})
    );
}

#[tokio::test]
async fn an_anthropic_client_streams_from_gemini() {
    let fake = FakeUpstream::start().await;
    fake.push(gemini_stream());
    let gateway = gemini_gateway(&fake, "").await;
    let key = gateway.key().await;
    let body = json!({"model": "flash", "max_tokens": 100, "stream": true, "messages": [{"role": "user", "content": "weather?"}],
                      "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}]});
    let response = gateway.messages(&key, &body).await;
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    let events: Vec<(String, Value)> = body
        .split("\n\n")
        .filter(|event| !event.trim().is_empty())
        .map(|event| {
            let name = event.lines().find_map(|line| line.strip_prefix("event: ")).unwrap_or_default().to_owned();
            let data = event.lines().find_map(|line| line.strip_prefix("data: ")).unwrap_or("null");
            (name, serde_json::from_str(data).unwrap())
        })
        .collect();
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names.last(), Some(&"message_stop"));
    let text: String = events
        .iter()
        .filter(|(_, data)| data["delta"]["type"] == "text_delta")
        .map(|(_, data)| data["delta"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, "Let me check.");
    let tool = events.iter().find(|(_, data)| data["content_block"]["type"] == "tool_use").expect("a tool_use block");
    assert_eq!(tool.1["content_block"]["name"], "get_weather");
    let input: String = events
        .iter()
        .filter(|(_, data)| data["delta"]["type"] == "input_json_delta")
        .map(|(_, data)| data["delta"]["partial_json"].as_str().unwrap())
        .collect();
    assert_eq!(serde_json::from_str::<Value>(&input).unwrap(), json!({"city": "Oslo"}));
    let delta = events.iter().find(|(name, _)| name == "message_delta").unwrap();
    assert_eq!(delta.1["delta"]["stop_reason"], "tool_use");
    assert_eq!(delta.1["usage"]["output_tokens"], 13, "candidates 9 + thoughts 4");

    let sent = fake.last();
    assert_eq!(sent.path, "/v1beta/models/gemini-2.5-flash:streamGenerateContent");
    assert_eq!(sent.query.as_deref(), Some("alt=sse"));
    let records = gateway.wait_usage(1).await;
    assert_eq!(records[0]["status"], 200);
    assert_eq!(records[0]["input_tokens"], 15);
    assert_eq!(records[0]["output_tokens"], 13);
}

#[tokio::test]
async fn a_gemini_rate_limit_or_region_refusal_fails_over_and_a_bad_request_does_not() {
    // A fresh gateway per case: each upstream failure also changes the route's health.
    async fn case(google_reply: Reply) -> (reqwest::Response, FakeUpstream, FakeUpstream) {
        let google = FakeUpstream::start().await;
        let backup = FakeUpstream::start().await;
        let gateway = TestGateway::start(&format!(
            "{}{}[[models]]\nname = \"flash\"\nroutes = [{{ provider = \"google\", model = \"gemini-2.5-flash\" }}, {{ provider = \"backup\", model = \"backup-chat\" }}]\n",
            PROVIDER.replace("{addr}", &google.addr.to_string()),
            fake_provider("backup", &backup.base_url()),
        ))
        .await;
        let (key, _) = gateway.create_key(json!({"name": "t", "region": "DE"})).await;
        google.push(google_reply);
        backup.push(Reply::chat("from backup", 3, 2));
        let ask = json!({"model": "flash", "messages": [{"role": "user", "content": "hi"}]});
        (gateway.chat(&key, &ask).await, google, backup)
    }

    let (response, _, _) = case(Reply::status(
        429,
        r#"{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"30s"}]}}"#,
    ))
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-llmux-provider"], "backup");
    assert_eq!(response.headers()["x-llmux-attempts"], "2");

    let (response, _, _) = case(Reply::status(
        400,
        r#"{"error":{"code":400,"message":"User location is not supported for the API use.","status":"FAILED_PRECONDITION"}}"#,
    ))
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-llmux-provider"], "backup");

    let (response, _, backup) = case(Reply::status(
        400,
        r#"{"error":{"code":400,"message":"Invalid value at 'contents[0].parts[0]'","status":"INVALID_ARGUMENT"}}"#,
    ))
    .await;
    assert_eq!(response.status(), 400, "a caller fault is not retried elsewhere");
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert!(backup.received().is_empty());
}

#[tokio::test]
async fn a_blocked_prompt_is_a_content_filter_finish() {
    let fake = FakeUpstream::start().await;
    fake.push(Reply::status(
        200,
        &json!({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7}})
            .to_string(),
    ));
    let gateway = gemini_gateway(&fake, "").await;
    let key = gateway.key().await;
    let response = gateway.chat(&key, &json!({"model": "flash", "messages": [{"role": "user", "content": "…"}]})).await;
    assert_eq!(response.status(), 200);
    let completion: Value = response.json().await.unwrap();
    assert_eq!(completion["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(completion["usage"]["prompt_tokens"], 7);
}
