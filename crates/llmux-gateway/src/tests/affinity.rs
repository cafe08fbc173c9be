//! Conversation affinity through planning and failover: a conversation sticks to the
//! route that answered its last turn over a strategy that spreads, moves at once when
//! that route fails, and is never shared between tenants. Attempts are scripted.

use std::borrow::Cow;
use std::future::Future;
use std::sync::Mutex;

use bytes::Bytes;
use llmux_providers::{ErrorKind, UpstreamError};

use super::{caller, gateway, key, meta, settlement};
use crate::Gateway;
use crate::affinity::ConversationName;
use crate::attempt::Success;
use crate::auth::Caller;
use crate::dialect::{self, ClientDialect};
use crate::failover::{Attempts, Plan};
use crate::route::Candidate;
use crate::router::{self, TokenEstimate};

/// Three providers, one model over them, equal weights: without a pin, turns spread.
fn config(server: &str) -> String {
    let mut text = format!("[server]\n{server}\n");
    for name in ["a", "b", "c"] {
        text.push_str(&format!(
            "[[providers]]\nname = \"{name}\"\nkind = \"openai-compatible\"\nbase_url = \"http://127.0.0.1:9/v1\"\n\n"
        ));
    }
    text.push_str(
        "[[models]]\nname = \"m\"\nstrategy = \"weighted\"\nroutes = [\n  { provider = \"a\", model = \"m-a\" },\n  \
         { provider = \"b\", model = \"m-b\" },\n  { provider = \"c\", model = \"m-c\" },\n]\n",
    );
    text
}

/// Routes (by index) that fail with `kind`; the others answer. Records the routes tried.
struct Failing {
    routes: Vec<usize>,
    kind: ErrorKind,
    tried: Mutex<Vec<usize>>,
}

impl Failing {
    fn new(routes: &[usize], kind: ErrorKind) -> Failing {
        Failing { routes: routes.to_vec(), kind, tried: Mutex::default() }
    }

    fn none() -> Failing {
        Failing::new(&[], ErrorKind::Server)
    }
}

impl Attempts for Failing {
    fn run(&self, candidate: Candidate) -> impl Future<Output = Result<Success, UpstreamError>> + Send {
        self.tried.lock().unwrap().push(candidate.route);
        let outcome = if self.routes.contains(&candidate.route) {
            Err(UpstreamError::new(self.kind))
        } else {
            Ok(Success::Full { body: Bytes::from_static(b"{}"), usage: None, output: 0 })
        };
        std::future::ready(outcome)
    }
}

/// One turn of conversation `name` by `caller`, as the lifecycle plans and fails over;
/// the route that answered.
async fn turn(gateway: &Gateway, caller: &Caller, name: &str, attempts: &Failing) -> usize {
    let runtime = gateway.runtime();
    let meta = meta();
    let named = ConversationName { this: Some(Cow::Borrowed(name)), next: None };
    let conversation = gateway.conversation(&runtime, caller, "m", named).await;
    let pinned = conversation.as_ref().and_then(|conversation| conversation.pinned);
    let candidates = router::plan_pinned(&runtime, 0, None, TokenEstimate::default(), pinned).expect("routes");
    let plan = Plan { candidates, region: None, conversation, caller: None };
    let outcome = gateway.fail_over(&runtime, &meta, plan, settlement(gateway, caller, &meta), attempts).await;
    let provider = outcome.expect("answered").provider.expect("a provider");
    ["a", "b", "c"].iter().position(|name| **name == provider).expect("a known provider")
}

#[tokio::test]
async fn a_conversation_sticks_to_the_route_that_answered_and_moves_when_it_fails() {
    let (gateway, _background) = gateway(&config("")).await;
    let alice = caller(key());
    let pinned = turn(&gateway, &alice, "session-1", &Failing::none()).await;
    for _ in 0..9 {
        assert_eq!(turn(&gateway, &alice, "session-1", &Failing::none()).await, pinned);
    }
    // The pinned route fails: tried first, the turn fails over, and the pin moves.
    let failing = Failing::new(&[pinned], ErrorKind::Server);
    let moved = turn(&gateway, &alice, "session-1", &failing).await;
    assert_ne!(moved, pinned);
    assert_eq!(failing.tried.lock().unwrap()[..], [pinned, moved]);
    // It sticks to the new route: the failed one is not tried again (its circuit is
    // still closed, so only the pin keeps it away).
    for _ in 0..9 {
        let failing = Failing::new(&[pinned], ErrorKind::Server);
        assert_eq!(turn(&gateway, &alice, "session-1", &failing).await, moved);
        assert_eq!(failing.tried.lock().unwrap()[..], [moved]);
    }
    let metrics = gateway.metrics.render();
    for line in [
        r#"llmux_affinity_total{model="m",outcome="hit"} 18"#,
        r#"llmux_affinity_total{model="m",outcome="miss"} 1"#,
        r#"llmux_affinity_total{model="m",outcome="moved"} 1"#,
    ] {
        assert!(metrics.contains(line), "missing `{line}` in\n{metrics}");
    }
}

#[tokio::test]
async fn a_rate_limited_pinned_route_gives_way_and_the_conversation_stays_where_it_moved() {
    let (gateway, _background) = gateway(&config("")).await;
    let alice = caller(key());
    let pinned = turn(&gateway, &alice, "s", &Failing::none()).await;
    let limited = Failing::new(&[pinned], ErrorKind::RateLimited);
    let moved = turn(&gateway, &alice, "s", &limited).await;
    assert_ne!(moved, pinned);
    for _ in 0..5 {
        assert_eq!(turn(&gateway, &alice, "s", &Failing::none()).await, moved);
    }
}

#[tokio::test]
async fn other_tenants_and_other_conversations_do_not_share_a_pin() {
    let (gateway, _background) = gateway(&config("")).await;
    let runtime = gateway.runtime();
    let alice = caller(key());
    turn(&gateway, &alice, "shared-name", &Failing::none()).await;
    let lookup = |caller: Caller, name: &'static str| {
        let (gateway, runtime) = (gateway.clone(), runtime.clone());
        async move {
            let named = ConversationName { this: Some(Cow::Borrowed(name)), next: None };
            gateway.conversation(&runtime, &caller, "m", named).await.expect("a conversation").pinned
        }
    };
    assert!(lookup(alice.clone(), "shared-name").await.is_some());
    assert_eq!(lookup(alice, "another").await, None);
    let bob = caller(llmux_store::KeyRecord { id: "key-2".into(), ..key() });
    assert_eq!(lookup(bob, "shared-name").await, None, "another key");
}

#[tokio::test]
async fn without_affinity_the_turns_of_a_conversation_spread() {
    let (gateway, _background) = gateway(&config("affinity_ttl_s = 0")).await;
    let alice = caller(key());
    let mut served = [0; 3];
    for _ in 0..30 {
        served[turn(&gateway, &alice, "session-1", &Failing::none()).await] += 1;
    }
    // Each route is drawn a third of the time; all 30 on one would be (1/3)^29.
    assert!(served.iter().filter(|count| **count > 0).count() >= 2, "{served:?}");
    assert!(!gateway.metrics.render().contains("llmux_affinity_total{"));
}

#[test]
fn conversations_are_named_by_what_clients_already_send() {
    let name = |named: ConversationName<'_>| (named.this.map(Cow::into_owned), named.next.map(str::to_owned));
    let (plain, mut headers) = (meta(), meta());
    headers.session = Some("header-session".into());
    headers.claude_code_session = Some("claude-session".into());

    // Chat Completions: `prompt_cache_key`, else a session header, else `user`.
    let chat = dialect::OpenAi { endpoint: llmux_wire::openai::peek::Endpoint::ChatCompletions };
    let body =
        |extra: &str| Bytes::from(format!(r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}]{extra}}}"#));
    let keyed = body(r#","prompt_cache_key":"pck","user":"u""#);
    let request = chat.parse(&keyed).unwrap();
    assert_eq!(name(chat.conversation(&request, &headers)), (Some("pck".into()), None));
    let user = body(r#","user":"u""#);
    let request = chat.parse(&user).unwrap();
    assert_eq!(name(chat.conversation(&request, &headers)).0.as_deref(), Some("header-session"));
    assert_eq!(name(chat.conversation(&request, &plain)).0.as_deref(), Some("u"));
    let nothing = body("");
    assert_eq!(name(chat.conversation(&chat.parse(&nothing).unwrap(), &plain)), (None, None));
    let embeddings = dialect::OpenAi { endpoint: llmux_wire::openai::peek::Endpoint::Embeddings };
    let embed = Bytes::from_static(br#"{"model":"e","input":"x","user":"u"}"#);
    assert_eq!(name(embeddings.conversation(&embeddings.parse(&embed).unwrap(), &plain)), (None, None));

    // Anthropic: Claude Code's session header, else a session header, else the whole
    // `metadata.user_id`.
    let user_id = r#"{\"device_id\":\"d1\",\"session_id\":\"s1\"}"#;
    let messages = Bytes::from(format!(
        r#"{{"model":"m","max_tokens":8,"metadata":{{"user_id":"{user_id}"}},"messages":[{{"role":"user","content":"hi"}}]}}"#
    ));
    let request = dialect::Anthropic.parse(&messages).unwrap();
    assert_eq!(name(dialect::Anthropic.conversation(&request, &headers)).0.as_deref(), Some("claude-session"));
    let generic = crate::RequestMeta { claude_code_session: None, ..headers.clone() };
    assert_eq!(name(dialect::Anthropic.conversation(&request, &generic)).0.as_deref(), Some("header-session"));
    let whole = name(dialect::Anthropic.conversation(&request, &plain)).0;
    assert_eq!(whole.as_deref(), Some(r#"{"device_id":"d1","session_id":"s1"}"#));

    // Responses: `prompt_cache_key`, else `previous_response_id`; a stored response names
    // the next turn by its id.
    let mut responses = llmux_wire::responses::decode::ResponsesRequest {
        previous_response_id: Some("resp_previous".into()),
        store: true,
        ..Default::default()
    };
    let named = dialect::responses_conversation(&responses, "resp_this", &plain);
    assert_eq!(name(named), (Some("resp_previous".into()), Some("resp_this".into())));
    responses
        .chat
        .extensions
        .insert("prompt_cache_key".into(), serde_json::value::to_raw_value("codex-session").unwrap());
    responses.store = false;
    let named = dialect::responses_conversation(&responses, "resp_this", &plain);
    assert_eq!(name(named), (Some("codex-session".into()), None));
}
