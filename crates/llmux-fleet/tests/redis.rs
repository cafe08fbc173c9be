//! Against a real Redis: the one of `llmux_testkit::services::redis_url`
//! (`LLMUX_TEST_REDIS_URL`, else the local one; the tests fail without one). Each test
//! works under its own random prefix, deleting its keys at the end.

use std::time::{Duration, Instant};

use llmux_fleet::{Fleet, FleetError, FleetEvent, FleetMessage, FleetOptions};
use llmux_testkit::services::redis_url;
use tokio::sync::broadcast;

fn unique_prefix() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    format!("llmux-test:{:016x}:", u64::from_le_bytes(bytes))
}

fn options(prefix: &str) -> FleetOptions {
    FleetOptions { prefix: prefix.to_owned(), health_interval: Duration::from_millis(100), ..FleetOptions::default() }
}

async fn admin(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap()
}

async fn cleanup(url: &str, prefix: &str) {
    let mut conn = admin(url).await;
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut conn).await.unwrap();
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL").arg(keys).query_async(&mut conn).await.unwrap();
    }
}

async fn pttl(url: &str, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query_async(&mut admin(url).await).await.unwrap()
}

async fn exists(url: &str, key: &str) -> bool {
    redis::cmd("EXISTS").arg(key).query_async::<i64>(&mut admin(url).await).await.unwrap() == 1
}

async fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Next message that is not a `Resubscribed` notice.
async fn next_event(rx: &mut broadcast::Receiver<FleetMessage>) -> FleetMessage {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(3), rx.recv())
            .await
            .expect("an event within 3 s")
            .expect("receiver open");
        if message.event != FleetEvent::Resubscribed {
            return message;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_grant_exactly_the_limit() {
    let url = redis_url();
    let prefix = unique_prefix();
    let fleets: Vec<Fleet> = (0..3).map(|_| Fleet::new(&url, options(&prefix)).unwrap()).collect();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let fleet = fleets[i % 3].clone();
        tasks.push(tokio::spawn(async move { fleet.claim("rpm:k1:minute", 50, 1, 60_000).await.unwrap() }));
    }
    let mut granted = 0;
    for task in tasks {
        let got = task.await.unwrap();
        assert!(got == 0 || got == 1);
        granted += got;
    }
    assert_eq!(granted, 50);
    assert_eq!(fleets[0].get_many(&["rpm:k1:minute".to_owned()]).await.unwrap(), vec![50]);
    assert!(fleets.iter().all(Fleet::is_up));
    cleanup(&url, &prefix).await;
}

#[tokio::test]
async fn partial_grants_and_release() {
    let url = redis_url();
    let prefix = unique_prefix();
    let fleet = Fleet::new(&url, options(&prefix)).unwrap();
    let c = "budget:team-a";
    assert_eq!(fleet.claim(c, 50, 30, 60_000).await.unwrap(), 30);
    assert_eq!(fleet.claim(c, 50, 30, 60_000).await.unwrap(), 20);
    assert_eq!(fleet.claim(c, 50, 30, 60_000).await.unwrap(), 0);
    assert_eq!(fleet.claim(c, 50, 0, 60_000).await.unwrap(), 0);
    fleet.release(c, 25).await.unwrap();
    assert_eq!(fleet.get_many(&[c.to_owned()]).await.unwrap(), vec![25]);
    assert_eq!(fleet.claim(c, 50, 10, 60_000).await.unwrap(), 10);
    // A lower limit than what is outstanding grants nothing and leaves the counter alone.
    assert_eq!(fleet.claim(c, 20, 10, 60_000).await.unwrap(), 0);
    assert_eq!(fleet.get_many(&[c.to_owned()]).await.unwrap(), vec![35]);
    // Never below zero.
    fleet.release(c, 1_000).await.unwrap();
    assert_eq!(fleet.get_many(&[c.to_owned()]).await.unwrap(), vec![0]);
    // Releasing into an absent (expired) counter does not create it.
    fleet.release("budget:gone", 5).await.unwrap();
    assert!(!exists(&url, &format!("{prefix}budget:gone")).await);
    // An exhausted claim on an absent counter with limit 0 does not create it either.
    assert_eq!(fleet.claim("rpm:zero", 0, 5, 0).await.unwrap(), 0);
    assert!(!exists(&url, &format!("{prefix}rpm:zero")).await);
    cleanup(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_from_seeds_the_counter_once() {
    let url = redis_url();
    let prefix = unique_prefix();
    let fleets: Vec<Fleet> = (0..3).map(|_| Fleet::new(&url, options(&prefix)).unwrap()).collect();
    // Ledger says 40 of 100 already spent; 60 concurrent first claims of 5 each.
    let mut tasks = Vec::new();
    for i in 0..60 {
        let fleet = fleets[i % 3].clone();
        tasks.push(tokio::spawn(
            async move { fleet.claim_from("budget:key9:2026-11", 40, 100, 5, 60_000).await.unwrap() },
        ));
    }
    let mut granted = 0;
    for task in tasks {
        granted += task.await.unwrap();
    }
    assert_eq!(granted, 60, "only the 60 left after the seed of 40");
    let c = "budget:key9:2026-11".to_owned();
    assert_eq!(fleets[1].get_many(&[c]).await.unwrap(), vec![100]);
    let ttl = pttl(&url, &format!("{prefix}budget:key9:2026-11")).await;
    assert!(ttl > 0 && ttl <= 60_000, "ttl {ttl}");

    // Seed beyond the limit: nothing granted, the seed is stored so others see it too.
    assert_eq!(fleets[0].claim_from("budget:over", 120, 100, 5, 0).await.unwrap(), 0);
    assert_eq!(fleets[2].get_many(&["budget:over".to_owned()]).await.unwrap(), vec![120]);
    // Later claim_from with another seed does not re-seed an existing counter.
    fleets[1].release("budget:over", 30).await.unwrap();
    assert_eq!(fleets[1].claim_from("budget:over", 0, 100, 50, 0).await.unwrap(), 10);
    cleanup(&url, &prefix).await;
}

#[tokio::test]
async fn expiry_is_set_when_a_counter_is_created_and_only_then() {
    let url = redis_url();
    let prefix = unique_prefix();
    let fleet = Fleet::new(&url, options(&prefix)).unwrap();
    fleet.claim("w1", 100, 1, 5_000).await.unwrap();
    let first = pttl(&url, &format!("{prefix}w1")).await;
    assert!(first > 0 && first <= 5_000, "ttl {first}");
    fleet.claim("w1", 100, 1, 900_000).await.unwrap();
    assert!(pttl(&url, &format!("{prefix}w1")).await <= 5_000);

    fleet.claim("forever", 100, 1, 0).await.unwrap();
    assert_eq!(pttl(&url, &format!("{prefix}forever")).await, -1);

    let totals = fleet.add_many(&[("t1".to_owned(), 7, 3_000), ("forever".to_owned(), 2, 3_000)]).await.unwrap();
    assert_eq!(totals, vec![7, 3]);
    let t1 = pttl(&url, &format!("{prefix}t1")).await;
    assert!(t1 > 0 && t1 <= 3_000, "ttl {t1}");
    // An existing counter keeps having no expiry.
    assert_eq!(pttl(&url, &format!("{prefix}forever")).await, -1);

    // Counters really expire.
    fleet.claim("short", 100, 4, 50).await.unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(fleet.get_many(&["short".to_owned()]).await.unwrap(), vec![0]);
    cleanup(&url, &prefix).await;
}

#[tokio::test]
async fn add_many_and_get_many() {
    let url = redis_url();
    let prefix = unique_prefix();
    let fleet = Fleet::new(&url, options(&prefix)).unwrap();
    let other = Fleet::new(&url, options(&prefix)).unwrap();
    assert_eq!(fleet.add_many(&[]).await.unwrap(), Vec::<i64>::new());
    assert_eq!(fleet.get_many(&[]).await.unwrap(), Vec::<i64>::new());
    let totals = fleet
        .add_many(&[
            ("tokens:a".to_owned(), 5, 60_000),
            ("tokens:b".to_owned(), -3, 60_000),
            ("tokens:a".to_owned(), 2, 60_000),
        ])
        .await
        .unwrap();
    assert_eq!(totals, vec![5, -3, 7]);
    // Another instance's batch sees the fleet-wide total.
    let big = 1_i64 << 40;
    let totals =
        other.add_many(&[("tokens:a".to_owned(), 10, 60_000), ("spend:n".to_owned(), big, 60_000)]).await.unwrap();
    assert_eq!(totals, vec![17, big]);
    let read = fleet
        .get_many(&["tokens:a".to_owned(), "tokens:b".to_owned(), "missing".to_owned(), "spend:n".to_owned()])
        .await
        .unwrap();
    assert_eq!(read, vec![17, -3, 0, big]);

    // Seeded adds: only the call that creates a counter seeds it, and it gets the expiry.
    let totals = fleet
        .add_many_from(&[("cost:k".to_owned(), 5, 100, 60_000), ("cost:k".to_owned(), 1, 100, 60_000)])
        .await
        .unwrap();
    assert_eq!(totals, vec![105, 106]);
    assert_eq!(other.add_many_from(&[("cost:k".to_owned(), 4, 999, 60_000)]).await.unwrap(), vec![110]);
    let ttl = pttl(&url, &format!("{prefix}cost:k")).await;
    assert!(ttl > 0 && ttl <= 60_000, "ttl {ttl}");
    // A seed beyond 2^53 stays exact in the counter.
    let huge = (1_i64 << 53) + 1;
    other.add_many_from(&[("cost:huge".to_owned(), 0, huge, 0)]).await.unwrap();
    let exact: String =
        redis::cmd("GET").arg(format!("{prefix}cost:huge")).query_async(&mut admin(&url).await).await.unwrap();
    assert_eq!(exact, huge.to_string());

    // A counter holding something else is a Redis error, not an outage.
    let _: () =
        redis::cmd("SET").arg(format!("{prefix}text")).arg("abc").query_async(&mut admin(&url).await).await.unwrap();
    let err = fleet.add_many(&[("text".to_owned(), 1, 0)]).await.unwrap_err();
    assert!(matches!(err, FleetError::Redis(_)), "{err:?}");
    assert!(fleet.is_up());
    cleanup(&url, &prefix).await;
}

#[tokio::test]
async fn set_many_replaces_values_with_their_expiry() {
    let url = redis_url();
    let prefix = unique_prefix();
    let fleet = Fleet::new(&url, options(&prefix)).unwrap();
    let other = Fleet::new(&url, options(&prefix)).unwrap();
    fleet.set_many(&[]).await.unwrap();
    fleet.set_many(&[("pin:a".to_owned(), 41, 60_000), ("pin:b".to_owned(), -7, 60_000)]).await.unwrap();
    other.set_many(&[("pin:a".to_owned(), 42, 30_000)]).await.unwrap();
    let read = fleet.get_many(&["pin:a".to_owned(), "pin:b".to_owned(), "pin:c".to_owned()]).await.unwrap();
    assert_eq!(read, vec![42, -7, 0]);
    // The last write's expiry holds.
    let ttl = pttl(&url, &format!("{prefix}pin:a")).await;
    assert!(ttl > 0 && ttl <= 30_000, "ttl {ttl}");
    fleet.set_many(&[("pin:forever".to_owned(), 1, 0)]).await.unwrap();
    assert_eq!(pttl(&url, &format!("{prefix}pin:forever")).await, -1);
    cleanup(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_every_instance_with_the_sender_id() {
    let url = redis_url();
    let prefix = unique_prefix();
    let a = Fleet::new(&url, options(&prefix)).unwrap();
    let b = Fleet::new(&url, options(&prefix)).unwrap();
    let elsewhere = Fleet::new(&url, options(&unique_prefix())).unwrap();
    assert_ne!(a.instance_id(), b.instance_id());
    let mut ra = a.subscribe();
    let mut rb = b.subscribe();
    let mut re = elsewhere.subscribe();
    wait_until("subscriptions", Duration::from_secs(3), || {
        a.is_subscribed() && b.is_subscribed() && elsewhere.is_subscribed()
    })
    .await;

    let changed = FleetEvent::KeyChanged { key_id: "key-42".into() };
    a.publish(&changed).await.unwrap();
    let at_b = next_event(&mut rb).await;
    assert_eq!(at_b.event, changed);
    assert_eq!(at_b.from, a.instance_id());
    assert!(!at_b.from_self);
    let at_a = next_event(&mut ra).await;
    assert_eq!(at_a.event, changed);
    assert!(at_a.from_self);

    let resting = FleetEvent::RouteResting {
        provider: "anthropic".into(),
        upstream_model: "claude-x".into(),
        until_ms: 1_798_000_000_000,
    };
    let team = FleetEvent::TeamChanged { team: "research".into() };
    b.publish(&resting).await.unwrap();
    b.publish(&team).await.unwrap();
    assert_eq!(next_event(&mut ra).await.event, resting);
    assert_eq!(next_event(&mut ra).await.event, team);
    let own = next_event(&mut rb).await;
    assert!(own.from_self && own.event == resting);

    // Another prefix is another fleet.
    assert!(tokio::time::timeout(Duration::from_millis(200), re.recv()).await.is_err());
    assert!(matches!(a.publish(&FleetEvent::Resubscribed).await, Err(FleetError::Invalid(_))));
}

#[tokio::test]
async fn unreachable_redis_fails_fast() {
    // No Redis needed: port 1 refuses connections.
    let fleet = Fleet::new(
        "redis://127.0.0.1:1",
        FleetOptions { op_timeout: Duration::from_millis(200), ..FleetOptions::default() },
    )
    .unwrap();
    assert!(!fleet.is_up());
    let start = Instant::now();
    let err = fleet.claim("c", 10, 1, 1_000).await.unwrap_err();
    assert!(matches!(err, FleetError::Unavailable(_)), "{err:?}");
    assert!(start.elapsed() < Duration::from_millis(600), "{:?}", start.elapsed());
    assert!(!fleet.is_up());
    // While down, every operation fails at once.
    let start = Instant::now();
    for _ in 0..100 {
        assert!(matches!(fleet.add_many(&[("c".to_owned(), 1, 0)]).await, Err(FleetError::Unavailable(_))));
        assert!(matches!(fleet.get_many(&["c".to_owned()]).await, Err(FleetError::Unavailable(_))));
        assert!(matches!(
            fleet.publish(&FleetEvent::TeamChanged { team: "t".into() }).await,
            Err(FleetError::Unavailable(_))
        ));
        assert!(matches!(fleet.release("c", 1).await, Err(FleetError::Unavailable(_))));
    }
    assert!(start.elapsed() < Duration::from_millis(100), "{:?}", start.elapsed());
    assert!(fleet.failures() >= 401);
    assert!(!fleet.is_subscribed());
}

#[tokio::test]
async fn silent_server_is_bounded_by_the_op_timeout() {
    // Accepts connections and never answers: the worst case, a hang.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let fleet = Fleet::new(
        &format!("redis://127.0.0.1:{port}"),
        FleetOptions { op_timeout: Duration::from_millis(150), fail_fast_while_down: false, ..FleetOptions::default() },
    )
    .unwrap();
    for _ in 0..3 {
        let start = Instant::now();
        let err = fleet.claim("c", 10, 1, 1_000).await.unwrap_err();
        let took = start.elapsed();
        assert!(matches!(err, FleetError::Unavailable(_)), "{err:?}");
        assert!(took < Duration::from_millis(400), "{took:?}");
        assert!(!fleet.is_up());
    }
    holder.abort();
}

#[test]
fn malformed_url_and_missing_runtime() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let err = runtime
        .block_on(async { Fleet::new("redis://user:s3cret@host:notaport", FleetOptions::default()).unwrap_err() });
    assert!(matches!(err, FleetError::InvalidUrl(_)), "{err:?}");
    assert!(!err.to_string().contains("s3cret"));
    let err = runtime.block_on(async { Fleet::new("http://host", FleetOptions::default()).unwrap_err() });
    assert!(matches!(err, FleetError::InvalidUrl(_)), "{err:?}");
    assert!(matches!(Fleet::new("redis://127.0.0.1:6379", FleetOptions::default()), Err(FleetError::NoRuntime)));
}

/// Ids of the server's clients with the given name.
async fn clients_named(url: &str, name: &str) -> Vec<i64> {
    let list: String = redis::cmd("CLIENT").arg("LIST").query_async(&mut admin(url).await).await.unwrap();
    list.lines()
        .filter(|line| line.split(' ').any(|f| f == format!("name={name}")))
        .filter_map(|line| line.split(' ').find_map(|f| f.strip_prefix("id=")).and_then(|id| id.parse().ok()))
        .collect()
}

async fn kill(url: &str, id: i64) {
    let killed: i64 =
        redis::cmd("CLIENT").arg("KILL").arg("ID").arg(id).query_async(&mut admin(url).await).await.unwrap();
    assert_eq!(killed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_after_its_connections_are_killed() {
    let url = redis_url();
    let prefix = unique_prefix();
    let a = Fleet::new(&url, options(&prefix)).unwrap();
    let b = Fleet::new(&url, options(&prefix)).unwrap();
    let mut ra = a.subscribe();
    wait_until("subscriptions", Duration::from_secs(3), || a.is_subscribed() && b.is_subscribed()).await;
    assert_eq!(a.claim("c", 1_000, 1, 60_000).await.unwrap(), 1);
    let cmd_name = a.client_name().to_owned();
    let sub_name = format!("{cmd_name}:sub");
    let cmd_ids = clients_named(&url, &cmd_name).await;
    let sub_ids = clients_named(&url, &sub_name).await;
    assert_eq!(cmd_ids.len(), 1, "{cmd_name}");
    assert_eq!(sub_ids.len(), 1, "{sub_name}");

    for round in 0..2 {
        let cmd_ids = clients_named(&url, &cmd_name).await;
        let sub_ids = clients_named(&url, &sub_name).await;
        kill(&url, cmd_ids[0]).await;
        kill(&url, sub_ids[0]).await;

        // Operations succeed again after the reconnect, within a couple of seconds.
        let start = Instant::now();
        let mut failures = 0;
        loop {
            match a.claim("c", 1_000, 1, 60_000).await {
                Ok(granted) => {
                    assert_eq!(granted, 1);
                    break;
                }
                Err(FleetError::Unavailable(e)) => {
                    if failures < 3 {
                        eprintln!("{e}");
                    }
                    failures += 1
                }
                Err(other) => panic!("{other:?}"),
            }
            assert!(start.elapsed() < Duration::from_secs(3), "round {round}: no recovery");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(a.is_up());
        eprintln!("round {round}: {failures} failed operations, recovered in {:?}", start.elapsed());

        // The subscription comes back, says so, and delivers again.
        let notice =
            tokio::time::timeout(Duration::from_secs(3), ra.recv()).await.expect("a resubscribe notice").unwrap();
        assert_eq!(notice.event, FleetEvent::Resubscribed);
        assert!(a.is_subscribed());
        let event = FleetEvent::KeyChanged { key_id: format!("k{round}") };
        b.publish(&event).await.unwrap();
        let got = next_event(&mut ra).await;
        assert_eq!(got.event, event);
        assert_eq!(got.from, b.instance_id());

        // Both connections carry their names again, so they can be found (and killed) again.
        let start = Instant::now();
        while clients_named(&url, &cmd_name).await.len() != 1 || clients_named(&url, &sub_name).await.len() != 1 {
            assert!(start.elapsed() < Duration::from_secs(3), "names not restored");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(a.get_many(&["c".to_owned()]).await.unwrap(), vec![3], "every grant counted once");
    cleanup(&url, &prefix).await;
}

/// What the stand-in between the fleet and Redis does with connections.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ProxyMode {
    /// Pass bytes through to Redis.
    Forward,
    /// Accept and close at once, like a Redis that is down.
    Refuse,
    /// Answer every command with `-LOADING`, like a Redis restarting with a large dataset.
    Loading,
}

/// A TCP stand-in for Redis whose mode can be switched; switching closes every open connection.
struct Proxy {
    port: u16,
    mode: tokio::sync::watch::Sender<ProxyMode>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (mode, watch) = tokio::sync::watch::channel(ProxyMode::Forward);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mut watch = watch.clone();
                let current = *watch.borrow_and_update();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let serve = async {
                        match current {
                            ProxyMode::Refuse => {}
                            ProxyMode::Forward => {
                                if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                                    let mut client = client;
                                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                                }
                            }
                            ProxyMode::Loading => answer_loading(client).await,
                        }
                    };
                    tokio::select! {
                        () = serve => {}
                        _ = watch.changed() => {}
                    }
                });
            }
        });
        Proxy { port, mode, task }
    }

    fn set(&self, mode: ProxyMode) {
        self.mode.send_replace(mode);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads RESP commands and answers each with a LOADING error.
async fn answer_loading(mut socket: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let Ok(n) = socket.read(&mut chunk).await else { return };
        if n == 0 {
            return;
        }
        buffer.extend_from_slice(&chunk[..n]);
        while let Some(used) = complete_command(&buffer) {
            buffer.drain(..used);
            if socket.write_all(b"-LOADING Redis is loading the dataset in memory\r\n").await.is_err() {
                return;
            }
        }
    }
}

/// Length of the first complete RESP array of bulk strings in `buf`, if there is one.
fn complete_command(buf: &[u8]) -> Option<usize> {
    fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
        let end = buf.get(at..)?.windows(2).position(|w| w == b"\r\n")? + at;
        Some((&buf[at..end], end + 2))
    }
    let (head, mut at) = line(buf, 0)?;
    let count: usize = std::str::from_utf8(head.strip_prefix(b"*")?).ok()?.parse().ok()?;
    for _ in 0..count {
        let (len, next) = line(buf, at)?;
        let len: usize = std::str::from_utf8(len.strip_prefix(b"$")?).ok()?.parse().ok()?;
        at = next + len + 2;
        if buf.len() < at {
            return None;
        }
    }
    Some(at)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comes_back_after_redis_was_down_and_loading() {
    let url = redis_url();
    // The stand-in needs a plain `redis://host:port` URL (no password, no database).
    let Some(upstream) = url.strip_prefix("redis://").map(|rest| rest.trim_end_matches('/').to_owned()) else {
        eprintln!("skipping: the proxy test needs a plain redis:// URL");
        return;
    };
    if upstream.contains(['@', '/', '?']) {
        eprintln!("skipping: the proxy test needs a plain redis://host:port URL");
        return;
    }
    let proxy = Proxy::start(upstream).await;
    let prefix = unique_prefix();
    // Database 1, so that connecting runs SELECT, which fails while Redis is loading.
    let through_proxy = format!("redis://127.0.0.1:{}/1", proxy.port);
    let a = Fleet::new(&through_proxy, options(&prefix)).unwrap();
    let b = Fleet::new(&format!("{url}/1"), options(&prefix)).unwrap();
    let mut ra = a.subscribe();
    wait_until("subscriptions", Duration::from_secs(3), || a.is_subscribed() && b.is_subscribed()).await;
    assert_eq!(a.claim("c", 100, 5, 60_000).await.unwrap(), 5);
    assert!(a.is_up());

    // Redis goes away.
    proxy.set(ProxyMode::Refuse);
    // Let the stand-in close the open connections first: a claim racing the close could be
    // applied with its answer lost, which is the documented ambiguity of a failed operation.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let start = Instant::now();
    let err = a.claim("c", 100, 5, 60_000).await.unwrap_err();
    assert!(matches!(err, FleetError::Unavailable(_)), "{err:?}");
    assert!(start.elapsed() < Duration::from_millis(400));
    assert!(!a.is_up());
    wait_until("subscription lost", Duration::from_secs(3), || !a.is_subscribed()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!a.is_up());

    // Redis restarts and loads its dataset for a while.
    proxy.set(ProxyMode::Loading);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!a.is_up());
    assert!(matches!(a.claim("c", 100, 5, 60_000).await, Err(FleetError::Unavailable(_))));

    // Redis is ready again: the fleet picks it up by itself.
    proxy.set(ProxyMode::Forward);
    let start = Instant::now();
    wait_until("up again", Duration::from_secs(5), || a.is_up()).await;
    eprintln!("up again {:?} after Redis was ready", start.elapsed());
    assert_eq!(a.claim("c", 100, 5, 60_000).await.unwrap(), 5);
    let notice = tokio::time::timeout(Duration::from_secs(5), ra.recv()).await.expect("resubscribed").unwrap();
    assert_eq!(notice.event, FleetEvent::Resubscribed);
    let event = FleetEvent::TeamChanged { team: "ops".into() };
    b.publish(&event).await.unwrap();
    assert_eq!(next_event(&mut ra).await.event, event);
    assert_eq!(b.get_many(&["c".to_owned()]).await.unwrap(), vec![10]);
    cleanup(&format!("{url}/1"), &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_instance_notices_an_outage_and_the_return() {
    let url = redis_url();
    let Some(upstream) = url.strip_prefix("redis://").map(|rest| rest.trim_end_matches('/').to_owned()) else {
        eprintln!("skipping: the proxy test needs a plain redis:// URL");
        return;
    };
    if upstream.contains(['@', '/', '?']) {
        eprintln!("skipping: the proxy test needs a plain redis://host:port URL");
        return;
    }
    let proxy = Proxy::start(upstream).await;
    let fleet = Fleet::new(
        &format!("redis://127.0.0.1:{}", proxy.port),
        FleetOptions { idle_check_interval: Duration::from_millis(200), ..options(&unique_prefix()) },
    )
    .unwrap();
    // No operation at all: the background check alone finds Redis, loses it, finds it again.
    wait_until("up", Duration::from_secs(3), || fleet.is_up()).await;
    proxy.set(ProxyMode::Refuse);
    wait_until("down", Duration::from_secs(3), || !fleet.is_up()).await;
    proxy.set(ProxyMode::Forward);
    wait_until("up again", Duration::from_secs(3), || fleet.is_up()).await;
    assert!(fleet.failures() >= 1);
}
