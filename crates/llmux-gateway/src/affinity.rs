//! Conversation affinity, so that prompt caches stay warm: the turns of one conversation
//! go to the route (provider and upstream model) that served its previous turn, instead
//! of being spread over a model's routes, each with a cold cache.
//!
//! - **Names**: a conversation is named by what clients already send (each dialect's
//!   `ClientDialect::conversation`). The name is scoped to the caller's tenant (its team,
//!   else its key) and the public model and kept only as a 128-bit hash ([`PinKey`]): two
//!   tenants never share a pin, and no client text is stored.
//! - **Pin**: the router puts the pinned route first while it is available and among the
//!   routes the plan starts with (see `router`). Whichever route answers becomes the pin
//!   ([`Gateway::served`]), so a pin gives way at once when its route fails, rests (an
//!   open circuit, a 429) or refuses the region: the next turn finds the route that
//!   took over.
//! - **Lifetime and memory**: a pin lasts `server.affinity_ttl_s` after the
//!   conversation's last answered turn (default an hour: provider prompt caches live
//!   five minutes to an hour; a pin outliving its cache costs little, one ending before
//!   it loses hits); 0 turns affinity off. At most `server.affinity_max_conversations`
//!   pins (rounded up to a multiple of 32) are held: each of [`SHARDS`] shards keeps two
//!   generations and drops the older when the newer fills, so the least recently used
//!   pins go first and a flood of new names can push pins out but never grow memory.
//! - **Fleet** (Redis): a pin is written through in the background, batched, when its
//!   route changes and otherwise at most once per eighth of the TTL (which also renews its
//!   expiry in Redis); a conversation this instance does not know is read from Redis,
//!   waiting at most [`FLEET_READ_TIMEOUT`]. Without Redis, or while it is down, each
//!   instance pins alone and no request waits for it.

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::auth::Caller;
use crate::route::{Candidate, RouteId};
use crate::{FastMap, Gateway, Runtime, clock};

/// Shards of the pin map (each behind its own lock).
pub const SHARDS: usize = 16;
/// How long a request waits for Redis to say where a conversation this instance does not
/// know is pinned; past it, the request is planned as if it had no pin.
pub const FLEET_READ_TIMEOUT: Duration = Duration::from_millis(50);
/// Pin writes waiting for Redis; beyond this they are dropped (the pin holds here).
const FLEET_QUEUE: usize = 4096;
/// Pin writes sent to Redis in one round trip.
const FLEET_BATCH: usize = 256;

/// How a request names its conversation, as its dialect reads it.
#[derive(Debug, Default)]
pub struct ConversationName<'r> {
    /// The name this turn carries: its pin is looked up, and moved to the route that answers.
    pub this: Option<Cow<'r, str>>,
    /// A name the next turn will carry instead (the Responses API: this response's own
    /// id, which a next turn sends as `previous_response_id`): pinned too.
    pub next: Option<&'r str>,
}

/// A conversation scoped to its tenant and public model, hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PinKey(u128);

impl PinKey {
    /// The key of `conversation` for `caller`'s tenant (its team, else its key) and the
    /// public `model`.
    pub fn new(caller: &Caller, model: &str, conversation: &str) -> PinKey {
        let mut hash = Sha256::new();
        let field = |hash: &mut Sha256, text: &str| {
            hash.update((text.len() as u64).to_le_bytes());
            hash.update(text.as_bytes());
        };
        match &caller.team {
            Some(team) => {
                hash.update(b"team");
                field(&mut hash, &team.name);
            }
            None => {
                hash.update(b"key");
                field(&mut hash, &caller.key.id);
            }
        }
        field(&mut hash, model);
        field(&mut hash, conversation);
        let digest = hash.finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        PinKey(u128::from_le_bytes(bytes))
    }

    /// Its counter in the fleet (under the fleet's prefix).
    fn fleet_name(self) -> String {
        format!("pin:{:032x}", self.0)
    }

    fn shard(self) -> usize {
        (self.0 % SHARDS as u128) as usize
    }
}

/// A request's conversation, for planning and for pinning what answers.
#[derive(Debug)]
pub(crate) struct Conversation {
    /// The public model (for the metric).
    model: usize,
    this: Option<PinKey>,
    next: Option<PinKey>,
    /// Where the conversation was pinned when the request came.
    pub pinned: Option<RouteId>,
}

/// How a served request stood to its conversation's pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinOutcome {
    /// The pinned route answered.
    Hit,
    /// No pin was known: the route that answered is pinned now.
    Miss,
    /// Another route answered (the pinned one failed, rested, refused, or was not in the
    /// leading group): the pin moved to it.
    Moved,
}

impl PinOutcome {
    pub const ALL: [PinOutcome; 3] = [PinOutcome::Hit, PinOutcome::Miss, PinOutcome::Moved];

    pub fn label(self) -> &'static str {
        match self {
            PinOutcome::Hit => "hit",
            PinOutcome::Miss => "miss",
            PinOutcome::Moved => "moved",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Pin {
    route: RouteId,
    /// When the conversation last had a turn answered here (monotonic ms).
    used: u64,
    /// When this instance last wrote it to the fleet (0: never).
    written: u64,
}

#[derive(Debug, Default)]
struct Shard {
    current: FastMap<PinKey, Pin>,
    previous: FastMap<PinKey, Pin>,
}

impl Shard {
    /// The pin of `key`, moved into the current generation if it was in the previous one.
    fn get_mut(&mut self, key: PinKey, generation: usize) -> Option<&mut Pin> {
        if !self.current.contains_key(&key) {
            let pin = self.previous.remove(&key)?;
            self.insert(key, pin, generation);
        }
        self.current.get_mut(&key)
    }

    fn insert(&mut self, key: PinKey, pin: Pin, generation: usize) {
        if self.current.len() >= generation && !self.current.contains_key(&key) {
            // The older generation goes; its map's memory is reused.
            std::mem::swap(&mut self.current, &mut self.previous);
            self.current.clear();
        }
        self.current.insert(key, pin);
    }

    fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}

/// Conversations' pinned routes on this instance: a capped map with expiry.
#[derive(Debug)]
pub struct Pins {
    shards: [Mutex<Shard>; SHARDS],
    /// Pins per generation per shard.
    generation: AtomicUsize,
}

impl Pins {
    /// A map holding at most `capacity` pins (rounded up to a multiple of `2 * SHARDS`).
    pub fn new(capacity: usize) -> Pins {
        let pins = Pins { shards: std::array::from_fn(|_| Mutex::default()), generation: AtomicUsize::new(1) };
        pins.set_capacity(capacity);
        pins
    }

    /// A reload may change the capacity; maps shrink as their generations turn over.
    pub fn set_capacity(&self, capacity: usize) {
        self.generation.store(capacity.div_ceil(2 * SHARDS).max(1), Ordering::Relaxed);
    }

    /// The route `key` is pinned to, if its last turn was less than `ttl` ago.
    pub fn get(&self, key: PinKey, now: u64, ttl: Duration) -> Option<RouteId> {
        let generation = self.generation.load(Ordering::Relaxed);
        let mut shard = self.shards[key.shard()].lock();
        let pin = shard.get_mut(key, generation)?;
        (now.saturating_sub(pin.used) < millis(ttl)).then_some(pin.route)
    }

    /// A turn of `key` was answered by `route` at `now`. Returns whether the fleet should
    /// hear of it: the route changed, or this instance has not written it for an eighth
    /// of `ttl`.
    pub fn pin(&self, key: PinKey, route: RouteId, now: u64, ttl: Duration) -> bool {
        let generation = self.generation.load(Ordering::Relaxed);
        let ttl = millis(ttl);
        let mut shard = self.shards[key.shard()].lock();
        if let Some(pin) = shard.get_mut(key, generation) {
            let fresh =
                pin.written != 0 && now.saturating_sub(pin.written) < ttl / 8 && now.saturating_sub(pin.used) < ttl;
            if pin.route == route && fresh {
                pin.used = now;
                return false;
            }
            *pin = Pin { route, used: now, written: now };
            return true;
        }
        shard.insert(key, Pin { route, used: now, written: now }, generation);
        true
    }

    /// The fleet says `key` is pinned to `route` (this instance has not written it).
    pub fn learn(&self, key: PinKey, route: RouteId, now: u64) {
        let generation = self.generation.load(Ordering::Relaxed);
        self.shards[key.shard()].lock().insert(key, Pin { route, used: now, written: 0 }, generation);
    }

    /// Pins held (expired ones included until their generation goes).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.lock().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// A pin on its way to the fleet.
#[derive(Debug)]
struct FleetPin {
    key: PinKey,
    route: RouteId,
    ttl_ms: u64,
}

/// The gateway's pins and their way to the fleet.
#[derive(Debug)]
pub(crate) struct Affinity {
    pins: Pins,
    /// Drained by [`write_to_fleet`]; `None` without Redis.
    to_fleet: Option<mpsc::Sender<FleetPin>>,
}

impl Affinity {
    /// Pins for `server`'s settings; with a fleet, the task writing pins to it.
    pub(crate) fn start(server: &llmux_config::ServerConfig, fleet: Option<&llmux_fleet::Fleet>) -> Affinity {
        let to_fleet = fleet.map(|fleet| {
            let (sender, receiver) = mpsc::channel(FLEET_QUEUE);
            tokio::spawn(write_to_fleet(fleet.clone(), receiver));
            sender
        });
        Affinity { pins: Pins::new(server.affinity_max_conversations), to_fleet }
    }

    pub(crate) fn reload(&self, server: &llmux_config::ServerConfig) {
        self.pins.set_capacity(server.affinity_max_conversations);
    }
}

/// Writes pins to the fleet as they come, in batches of what has queued meanwhile, until
/// the gateway is gone. A failed batch is dropped: its pins hold on this instance.
async fn write_to_fleet(fleet: llmux_fleet::Fleet, mut pins: mpsc::Receiver<FleetPin>) {
    let mut batch = Vec::with_capacity(FLEET_BATCH);
    while pins.recv_many(&mut batch, FLEET_BATCH).await > 0 {
        let values: Vec<(String, i64, u64)> =
            batch.drain(..).map(|pin| (pin.key.fleet_name(), pin.route.to_i64(), pin.ttl_ms)).collect();
        if let Err(error) = fleet.set_many(&values).await {
            tracing::debug!(%error, pins = values.len(), "Could not write conversation pins to the fleet.");
        }
    }
}

impl Gateway {
    /// The request's conversation, if it names one and affinity is on: its keys and where
    /// it is pinned (known here, else read from the fleet).
    pub(crate) async fn conversation(
        &self,
        runtime: &Runtime,
        caller: &Caller,
        model: &str,
        name: ConversationName<'_>,
    ) -> Option<Conversation> {
        let ttl = runtime.config.server.affinity_ttl?;
        if name.this.is_none() && name.next.is_none() {
            return None;
        }
        let model_index = runtime.model_index(model)?;
        let this = name.this.map(|name| PinKey::new(caller, model, &name));
        let next = name.next.map(|name| PinKey::new(caller, model, name));
        let mut pinned = None;
        if let Some(key) = this {
            let now = clock::monotonic_ms();
            pinned = self.affinity.pins.get(key, now, ttl);
            if pinned.is_none() {
                pinned = self.fleet_pin(key).await;
                if let Some(route) = pinned {
                    self.affinity.pins.learn(key, route, now);
                }
            }
        }
        Some(Conversation { model: model_index, this, next, pinned })
    }

    /// Where the fleet says `key` is pinned, if Redis answers in time.
    async fn fleet_pin(&self, key: PinKey) -> Option<RouteId> {
        self.affinity.to_fleet.as_ref()?;
        let fleet = self.fleet_up()?;
        // Boxed: only a conversation unknown here waits for it.
        let read = Box::pin(tokio::time::timeout(FLEET_READ_TIMEOUT, fleet.get_many(&[key.fleet_name()]))).await;
        match read {
            Ok(Ok(values)) => values.first().copied().and_then(RouteId::from_i64),
            Ok(Err(error)) => {
                tracing::debug!(%error, "Could not read a conversation's pin from the fleet.");
                None
            }
            Err(_) => None,
        }
    }

    /// `winner` answered a turn of `conversation`: the conversation is pinned to it, here
    /// and (in the background) in the fleet.
    pub(crate) fn served(&self, runtime: &Runtime, conversation: &Conversation, winner: Candidate) {
        let Some(ttl) = runtime.config.server.affinity_ttl else { return };
        let route = runtime.route_id(winner);
        if conversation.this.is_some() {
            let outcome = match conversation.pinned {
                None => PinOutcome::Miss,
                Some(pinned) if pinned == route => PinOutcome::Hit,
                Some(_) => PinOutcome::Moved,
            };
            self.metrics.observe_affinity(&runtime.config.models[conversation.model].name, outcome);
        }
        let now = clock::monotonic_ms();
        for key in [conversation.this, conversation.next].into_iter().flatten() {
            if self.affinity.pins.pin(key, route, now, ttl)
                && let Some(to_fleet) = &self.affinity.to_fleet
                && self.fleet_up().is_some()
            {
                let _ = to_fleet.try_send(FleetPin { key, route, ttl_ms: millis(ttl) });
            }
        }
    }
}

#[cfg(test)]
#[path = "affinity_tests.rs"]
mod tests;
