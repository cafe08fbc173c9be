//! State shared by a fleet of llmux gateway instances, kept in Redis.
//!
//! # Leases
//! Instances admit requests from memory and never make a Redis round trip per request.
//! For a shared quota (a key's requests this minute, a team's budget this month) an instance
//! [claims](Fleet::claim) a chunk atomically — say 1/16 of the limit — admits requests from it
//! locally, claims again when the chunk is used up, and [releases](Fleet::release) what it did
//! not use when it goes idle. The counter in Redis is the sum of all outstanding chunks plus
//! what was consumed, so the fleet never admits more than the limit; it may admit less while
//! chunks sit unused on idle instances. [`Fleet::claim_from`] seeds an absent counter with what
//! is already known to be spent (from the ledger) so that exactly one instance seeds it.
//! Counters known only after the fact (tokens, money) are added in batches by a background
//! tick with [`Fleet::add_many`], which also returns the fleet-wide totals; [`Fleet::get_many`]
//! reads totals. A counter's window is in its name (e.g. `rpm:<key>:<minute>`) and its expiry
//! (`ttl_ms`) is set when it is created. Values are plain `i64` in the caller's units. Values
//! one instance decides for all (a conversation's pinned route) are written with
//! [`Fleet::set_many`], which sets the expiry anew, and read back with `get_many`.
//!
//! # Events
//! [`Fleet::publish`] broadcasts a [`FleetEvent`] on the channel `<prefix>events`; every
//! instance, including the sender, receives it through [`Fleet::subscribe`] as a
//! [`FleetMessage`] that says who sent it. The subscription has its own connection, which
//! reconnects and resubscribes by itself and then delivers a local
//! [`FleetEvent::Resubscribed`], since events published in the gap are lost.
//!
//! # Failures
//! [`Fleet::new`] never waits for Redis and fails only on a malformed URL. Every operation is
//! bounded by [`FleetOptions::op_timeout`] and fails with [`FleetError::Unavailable`] on a
//! timeout or a connection problem. The first such failure marks the fleet down
//! ([`Fleet::is_up`] is false, one `warn` log); while down, operations fail at once without
//! touching the network (unless [`FleetOptions::fail_fast_while_down`] is off) and a background
//! check retries every [`FleetOptions::health_interval`]; its first success marks the fleet up
//! again (one `info` log). The caller falls back to local limits meanwhile. The URL, which may
//! hold a password, is never logged.
//!
//! A failed operation may still have been applied when only its answer was lost (the
//! connection dropped after sending). A lost claim keeps its units counted until the counter
//! expires, so the fleet then admits less, never more; a batch of `add_many` kept for the next
//! tick may then be counted twice. Nothing is retried here.
//!
//! Counters are exact up to 2^53 (Lua numbers are doubles on the server); `rediss://` uses
//! rustls with aws-lc-rs. Redis 6 or newer is needed (the subscription uses RESP3); Redis
//! Cluster is not supported (`add_many` and `get_many` touch several keys at once).

mod events;
mod scripts;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, ErrorKind, PushKind, RedisError, ServerErrorKind};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

pub use events::{FleetEvent, FleetMessage};

/// Settings of a [`Fleet`].
#[derive(Clone, Debug)]
pub struct FleetOptions {
    /// Prepended to every counter name and to the event channel. Default `llmux:`.
    pub prefix: String,
    /// Upper bound of every operation, connecting included. Default 250 ms.
    pub op_timeout: Duration,
    /// How often the background check retries while Redis is down. Default 500 ms.
    pub health_interval: Duration,
    /// How often the background check runs while Redis is up, so that an idle instance notices
    /// an outage too. Default 5 s.
    pub idle_check_interval: Duration,
    /// While down, fail operations at once instead of trying the network (recovery is then
    /// noticed by the background check). Default true.
    pub fail_fast_while_down: bool,
    /// This instance's id; default a random 16-hex-digit id.
    pub instance_id: Option<String>,
    /// Events buffered per subscriber before it lags. Default 1024.
    pub event_capacity: usize,
    /// For `rediss://` URLs: PEM certificate(s) of the CA that signed the server's certificate,
    /// instead of the system's trust store. Default none.
    pub tls_root_ca_pem: Option<Vec<u8>>,
}

impl Default for FleetOptions {
    fn default() -> Self {
        FleetOptions {
            prefix: "llmux:".to_owned(),
            op_timeout: Duration::from_millis(250),
            health_interval: Duration::from_millis(500),
            idle_check_interval: Duration::from_secs(5),
            fail_fast_while_down: true,
            instance_id: None,
            event_capacity: 1024,
            tls_root_ca_pem: None,
        }
    }
}

/// Why an operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FleetError {
    /// The URL could not be parsed (the URL itself is not repeated here).
    #[error("invalid Redis URL: {0}")]
    InvalidUrl(String),
    /// `Fleet::new` was called outside a Tokio runtime.
    #[error("the fleet needs a Tokio runtime")]
    NoRuntime,
    /// Redis could not be reached in time (or refuses service: loading, read-only replica,
    /// authentication); fall back to local state.
    #[error("Redis unavailable: {0}")]
    Unavailable(String),
    /// Redis answered with an error (e.g. a counter holds a non-integer value).
    #[error("Redis error: {0}")]
    Redis(String),
    /// The arguments were refused before reaching Redis.
    #[error("invalid argument: {0}")]
    Invalid(&'static str),
}

const UNKNOWN: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

/// State shared with the background tasks (which must not keep [`Inner`] alive).
struct Shared {
    instance_id: String,
    client_name: String,
    prefix: String,
    channel: String,
    options: FleetOptions,
    state: AtomicU8,
    subscribed: AtomicBool,
    failures: AtomicU64,
    /// Wakes the health check when the fleet goes down while it sleeps the long interval.
    went_down: tokio::sync::Notify,
    client: Client,
    /// The command connection; replaced by the health check when it stays unusable.
    conn: RwLock<ConnectionManager>,
}

impl Shared {
    fn conn(&self) -> ConnectionManager {
        self.conn.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn mark_up(&self) {
        let previous = self.state.swap(UP, Ordering::AcqRel);
        if previous == DOWN {
            tracing::info!(instance = %self.instance_id, "fleet: Redis reachable again, sharing limits through it");
        } else if previous == UNKNOWN {
            tracing::info!(instance = %self.instance_id, "fleet: connected to Redis");
        }
    }

    fn mark_down(&self, reason: &str) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        if self.state.swap(DOWN, Ordering::AcqRel) != DOWN {
            self.went_down.notify_one();
            tracing::warn!(instance = %self.instance_id, reason, "fleet: Redis unreachable, falling back to local limits");
        }
    }

    /// Runs one Redis call within the timeout and records its outcome.
    async fn run<T>(&self, call: impl Future<Output = Result<T, RedisError>>) -> Result<T, FleetError> {
        match tokio::time::timeout(self.options.op_timeout, call).await {
            Err(_) => {
                let reason = format!("no answer within {:?}", self.options.op_timeout);
                self.mark_down(&reason);
                Err(FleetError::Unavailable(reason))
            }
            Ok(Err(e)) => {
                // Only an outage changes the state: an error answer proves neither way that
                // Redis is usable (it may come from setting up a connection).
                let error = classify(&e);
                if let FleetError::Unavailable(reason) = &error {
                    self.mark_down(reason);
                }
                Err(error)
            }
            Ok(Ok(value)) => {
                self.mark_up();
                Ok(value)
            }
        }
    }
}

fn classify(e: &RedisError) -> FleetError {
    let unavailable = e.is_io_error()
        || e.is_unrecoverable_error()
        || matches!(
            e.kind(),
            ErrorKind::AuthenticationFailed
                | ErrorKind::Server(
                    ServerErrorKind::BusyLoading
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::ClusterDown
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::ReadOnly
                        | ServerErrorKind::NoPerm
                )
        );
    if unavailable { FleetError::Unavailable(e.to_string()) } else { FleetError::Redis(e.to_string()) }
}

struct Inner {
    shared: Arc<Shared>,
    events: broadcast::Sender<FleetMessage>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Handle to the fleet's shared state in Redis; cheap to clone. Dropping the last clone stops
/// the background tasks and closes the connections.
#[derive(Clone)]
pub struct Fleet {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("instance_id", &self.inner.shared.instance_id)
            .field("prefix", &self.inner.shared.prefix)
            .field("up", &self.is_up())
            .finish()
    }
}

impl Fleet {
    /// Parses the URL (`redis://[user:password@]host[:port][/db]`, `rediss://…` for TLS,
    /// `unix://…`) and starts connecting in the background. Fails only on a malformed URL or
    /// outside a Tokio runtime, never because Redis is down.
    pub fn new(url: &str, options: FleetOptions) -> Result<Fleet, FleetError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(FleetError::NoRuntime);
        }
        let client = match &options.tls_root_ca_pem {
            None => Client::open(url),
            Some(pem) => {
                Client::build_with_tls(url, redis::TlsCertificates { client_tls: None, root_cert: Some(pem.clone()) })
            }
        }
        .map_err(|e| FleetError::InvalidUrl(e.category().into()))?;
        let instance_id = options.instance_id.clone().unwrap_or_else(random_id);
        let prefix = options.prefix.clone();
        let name_prefix: String = prefix.chars().map(|c| if c.is_ascii_graphic() { c } else { '_' }).collect();
        let instance_name: String = instance_id.chars().map(|c| if c.is_ascii_graphic() { c } else { '_' }).collect();
        let conn = new_manager(&client, options.op_timeout).map_err(|e| FleetError::InvalidUrl(e.category().into()))?;
        let shared = Arc::new(Shared {
            client_name: format!("{name_prefix}fleet:{instance_name}"),
            channel: format!("{prefix}events"),
            prefix,
            instance_id,
            state: AtomicU8::new(UNKNOWN),
            subscribed: AtomicBool::new(false),
            failures: AtomicU64::new(0),
            went_down: tokio::sync::Notify::new(),
            client: client.clone(),
            conn: RwLock::new(conn),
            options,
        });
        let (events, _) = broadcast::channel(shared.options.event_capacity.max(1));

        // Pub/sub rides on RESP3 pushes so that the connection can be named and pinged.
        let sub_info = client.get_connection_info().clone();
        let sub_redis = sub_info.redis_settings().clone().set_protocol(redis::ProtocolVersion::RESP3);
        let sub_client = Client::open(sub_info.set_redis_settings(sub_redis))
            .map_err(|e| FleetError::InvalidUrl(e.category().into()))?;

        let tasks = vec![
            tokio::spawn(health_task(shared.clone())),
            tokio::spawn(subscriber_task(shared.clone(), sub_client, events.clone())),
        ];
        Ok(Fleet { inner: Arc::new(Inner { shared, events, tasks }) })
    }

    /// Whether the last Redis operation or background check succeeded (false until the first
    /// one has).
    pub fn is_up(&self) -> bool {
        self.inner.shared.state.load(Ordering::Acquire) == UP
    }

    /// Whether the event subscription is currently established.
    pub fn is_subscribed(&self) -> bool {
        self.inner.shared.subscribed.load(Ordering::Acquire)
    }

    /// Operations that failed for lack of Redis since start (for a metric).
    pub fn failures(&self) -> u64 {
        self.inner.shared.failures.load(Ordering::Relaxed)
    }

    /// This instance's id, carried in every event it publishes.
    pub fn instance_id(&self) -> &str {
        &self.inner.shared.instance_id
    }

    /// The `CLIENT SETNAME` of the command connection; the subscription's is this plus `:sub`.
    pub fn client_name(&self) -> &str {
        &self.inner.shared.client_name
    }

    fn key(&self, counter: &str) -> String {
        format!("{}{counter}", self.inner.shared.prefix)
    }

    async fn run<T>(&self, call: impl Future<Output = Result<T, RedisError>>) -> Result<T, FleetError> {
        let shared = &self.inner.shared;
        if shared.options.fail_fast_while_down && shared.state.load(Ordering::Acquire) == DOWN {
            shared.failures.fetch_add(1, Ordering::Relaxed);
            return Err(FleetError::Unavailable("Redis is down; waiting for the background check".into()));
        }
        shared.run(call).await
    }

    /// Atomically grants up to `want` units of quota `counter` whose total may not exceed
    /// `limit`; returns the units granted (0 when exhausted, fewer than `want` near the limit).
    /// An absent counter is created with expiry `ttl_ms` (0 = none).
    pub async fn claim(&self, counter: &str, limit: i64, want: i64, ttl_ms: u64) -> Result<i64, FleetError> {
        self.claim_from(counter, 0, limit, want, ttl_ms).await
    }

    /// Like [`claim`](Self::claim), but an absent counter first starts at `initial` (e.g. what
    /// the ledger says was spent this period), in the same atomic step, so that concurrent
    /// first claims seed it once.
    pub async fn claim_from(
        &self,
        counter: &str,
        initial: i64,
        limit: i64,
        want: i64,
        ttl_ms: u64,
    ) -> Result<i64, FleetError> {
        if want <= 0 {
            return Ok(0);
        }
        let key = self.key(counter);
        let mut conn = self.inner.shared.conn();
        self.run(async move {
            scripts::CLAIM.key(key).arg(initial).arg(limit).arg(want).arg(ttl_ms).invoke_async(&mut conn).await
        })
        .await
    }

    /// Gives back `units` previously claimed; the counter never goes below zero, and one that
    /// has expired stays absent.
    pub async fn release(&self, counter: &str, units: i64) -> Result<(), FleetError> {
        if units <= 0 {
            return Ok(());
        }
        let key = self.key(counter);
        let mut conn = self.inner.shared.conn();
        self.run(async move { scripts::RELEASE.key(key).arg(units).invoke_async::<i64>(&mut conn).await })
            .await
            .map(drop)
    }

    /// Adds `(counter, delta, ttl_ms)` deltas in one atomic round trip, setting the expiry on
    /// the counters it creates; returns each counter's new total, in order.
    pub async fn add_many(&self, deltas: &[(String, i64, u64)]) -> Result<Vec<i64>, FleetError> {
        self.add(deltas.iter().map(|(counter, delta, ttl_ms)| (counter.as_str(), *delta, 0, *ttl_ms))).await
    }

    /// Like [`add_many`](Self::add_many) with `(counter, delta, initial, ttl_ms)`: a counter
    /// this call creates first starts at `initial` (e.g. what the ledger says was spent), in
    /// the same atomic step, so concurrent first adds seed it once.
    pub async fn add_many_from(&self, deltas: &[(String, i64, i64, u64)]) -> Result<Vec<i64>, FleetError> {
        self.add(deltas.iter().map(|(counter, delta, initial, ttl_ms)| (counter.as_str(), *delta, *initial, *ttl_ms)))
            .await
    }

    async fn add<'a>(
        &self,
        deltas: impl ExactSizeIterator<Item = (&'a str, i64, i64, u64)>,
    ) -> Result<Vec<i64>, FleetError> {
        if deltas.len() == 0 {
            return Ok(Vec::new());
        }
        let mut invocation = scripts::ADD_MANY.prepare_invoke();
        for (counter, delta, initial, ttl_ms) in deltas {
            invocation.key(self.key(counter)).arg(delta).arg(ttl_ms).arg(initial);
        }
        let mut conn = self.inner.shared.conn();
        self.run(async move { invocation.invoke_async(&mut conn).await }).await
    }

    /// Reads counters in one round trip; an absent counter reads 0.
    pub async fn get_many(&self, counters: &[String]) -> Result<Vec<i64>, FleetError> {
        if counters.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = counters.iter().map(|c| self.key(c)).collect();
        let mut conn = self.inner.shared.conn();
        let values: Vec<Option<i64>> =
            self.run(async move { redis::cmd("MGET").arg(keys).query_async(&mut conn).await }).await?;
        Ok(values.into_iter().map(Option::unwrap_or_default).collect())
    }

    /// Sets `(counter, value, ttl_ms)` triples in one round trip, each counter replacing what
    /// it held and expiring `ttl_ms` from now (0: never): for values one instance decides and
    /// others read back with [`get_many`](Self::get_many), such as the route a conversation
    /// is pinned to. Not atomic as a whole (a pipeline).
    pub async fn set_many(&self, values: &[(String, i64, u64)]) -> Result<(), FleetError> {
        if values.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (counter, value, ttl_ms) in values {
            pipe.cmd("SET").arg(self.key(counter)).arg(*value);
            if *ttl_ms > 0 {
                pipe.arg("PX").arg(*ttl_ms);
            }
            pipe.ignore();
        }
        let mut conn = self.inner.shared.conn();
        self.run(async move { pipe.query_async::<()>(&mut conn).await }).await
    }

    /// Broadcasts `event` to every instance, this one included (its message has
    /// `from_self` set). [`FleetEvent::Resubscribed`] is local only and refused.
    pub async fn publish(&self, event: &FleetEvent) -> Result<(), FleetError> {
        if matches!(event, FleetEvent::Resubscribed) {
            return Err(FleetError::Invalid("Resubscribed is a local event"));
        }
        let payload = events::encode(&self.inner.shared.instance_id, event);
        let channel = self.inner.shared.channel.clone();
        let mut conn = self.inner.shared.conn();
        self.run(async move { redis::cmd("PUBLISH").arg(channel).arg(payload).query_async::<i64>(&mut conn).await })
            .await
            .map(drop)
    }

    /// Events from the fleet. A receiver that falls behind gets `RecvError::Lagged`, which
    /// (like [`FleetEvent::Resubscribed`]) means events were missed.
    pub fn subscribe(&self) -> broadcast::Receiver<FleetMessage> {
        self.inner.events.subscribe()
    }
}

fn random_id() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        // Not expected on supported platforms; fall back to time and process id.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default();
        bytes = (nanos ^ (u64::from(std::process::id()) << 32)).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lazily connecting command connection, bounded by the op timeout.
fn new_manager(client: &Client, timeout: Duration) -> Result<ConnectionManager, RedisError> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(200));
    ConnectionManager::new_lazy_with_config(client.clone(), config)
}

/// Failed checks in a row after which the command connection is replaced: the manager only
/// reconnects by itself after I/O errors, not when setting up a connection was refused (e.g.
/// `SELECT` while Redis is still loading its dataset).
const CHECKS_BEFORE_REBUILD: u32 = 4;

/// Checks Redis every `health_interval` while down (every `idle_check_interval` while up) with
/// `CLIENT SETNAME`, which also renames the command connection after a reconnect.
async fn health_task(shared: Arc<Shared>) {
    let mut failed_in_a_row = 0u32;
    loop {
        let name = shared.client_name.clone();
        let mut conn = shared.conn();
        let check = shared
            .run(async move { redis::cmd("CLIENT").arg("SETNAME").arg(name).query_async::<()>(&mut conn).await })
            .await;
        match check {
            Ok(()) => failed_in_a_row = 0,
            Err(e) => {
                if !matches!(e, FleetError::Unavailable(_)) {
                    shared.mark_down(&e.to_string());
                }
                failed_in_a_row += 1;
                if failed_in_a_row.is_multiple_of(CHECKS_BEFORE_REBUILD)
                    && let Ok(fresh) = new_manager(&shared.client, shared.options.op_timeout)
                {
                    tracing::debug!(instance = %shared.instance_id, "fleet: replacing the command connection");
                    *shared.conn.write().unwrap_or_else(PoisonError::into_inner) = fresh;
                }
            }
        }
        if shared.state.load(Ordering::Acquire) == UP {
            tokio::select! {
                () = tokio::time::sleep(shared.options.idle_check_interval) => {}
                () = shared.went_down.notified() => {}
            }
        }
        // Also after a wake-up, so that a reconnect has a moment to happen.
        tokio::time::sleep(shared.options.health_interval).await;
    }
}

async fn connect_subscriber(
    shared: &Shared,
    client: &Client,
) -> Result<(MultiplexedConnection, tokio::sync::mpsc::UnboundedReceiver<redis::PushInfo>), RedisError> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let timeout = shared.options.op_timeout;
    let config = AsyncConnectionConfig::new()
        .set_push_sender(tx)
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    let mut conn = client.get_multiplexed_async_connection_with_config(&config).await?;
    redis::cmd("CLIENT").arg("SETNAME").arg(format!("{}:sub", shared.client_name)).query_async::<()>(&mut conn).await?;
    conn.subscribe(&shared.channel).await?;
    Ok((conn, rx))
}

/// Keeps one subscription to `<prefix>events`, reconnecting every `health_interval` after a
/// loss, and forwards decoded events to the broadcast channel.
async fn subscriber_task(shared: Arc<Shared>, client: Client, events: broadcast::Sender<FleetMessage>) {
    let mut first_attempt = true;
    // Log one failed attempt per outage, not one every `health_interval`.
    let mut failure_logged = false;
    loop {
        let attempt = tokio::time::timeout(shared.options.op_timeout * 4, connect_subscriber(&shared, &client)).await;
        match attempt {
            Ok(Ok((mut conn, mut pushes))) => {
                shared.subscribed.store(true, Ordering::Release);
                failure_logged = false;
                tracing::debug!(instance = %shared.instance_id, "fleet: subscribed to events");
                if !first_attempt {
                    let _ = events.send(FleetMessage {
                        from: shared.instance_id.clone(),
                        from_self: true,
                        event: FleetEvent::Resubscribed,
                    });
                }
                let mut keepalive = tokio::time::interval(shared.options.idle_check_interval);
                keepalive.tick().await;
                loop {
                    tokio::select! {
                        push = pushes.recv() => match push {
                            Some(push) if push.kind == PushKind::Message => {
                                if let Some(msg) = redis::Msg::from_push_info(push)
                                    && let Some(message) =
                                        events::decode(msg.get_payload_bytes(), &shared.instance_id)
                                {
                                    let _ = events.send(message);
                                }
                            }
                            Some(push) if push.kind == PushKind::Disconnection => break,
                            Some(_) => {}
                            None => break,
                        },
                        _ = keepalive.tick() => {
                            let ping = tokio::time::timeout(
                                shared.options.op_timeout,
                                redis::cmd("PING").query_async::<()>(&mut conn),
                            )
                            .await;
                            if !matches!(ping, Ok(Ok(()))) {
                                break;
                            }
                        }
                    }
                }
                shared.subscribed.store(false, Ordering::Release);
                tracing::debug!(instance = %shared.instance_id, "fleet: event subscription lost");
            }
            Ok(Err(e)) if !failure_logged => {
                failure_logged = true;
                tracing::debug!(instance = %shared.instance_id, error = %e, "fleet: subscribing failed, retrying");
            }
            Err(_) if !failure_logged => {
                failure_logged = true;
                tracing::debug!(instance = %shared.instance_id, "fleet: subscribing timed out, retrying");
            }
            Ok(Err(_)) | Err(_) => {}
        }
        first_attempt = false;
        tokio::time::sleep(shared.options.health_interval).await;
    }
}
