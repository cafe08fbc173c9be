//! The pin map (expiry, capacity, moves, fleet writes) and the keys pins are kept under.

use std::sync::Arc;
use std::time::Duration;

use llmux_store::{KeyRecord, TeamRecord};

use super::*;

const TTL: Duration = Duration::from_secs(3600);
const HOUR_MS: u64 = 3_600_000;

fn key(n: u32) -> PinKey {
    PinKey(u128::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835))
}

fn route(name: &str) -> RouteId {
    RouteId::of("provider", name)
}

fn caller(key_id: &str, team: Option<&str>) -> Caller {
    Caller {
        key: Arc::new(KeyRecord { id: key_id.into(), ..KeyRecord::default() }),
        team: team.map(|name| Arc::new(TeamRecord { name: name.into(), ..TeamRecord::default() })),
        region: None,
    }
}

#[test]
fn a_pin_lasts_the_ttl_after_the_last_turn() {
    let pins = Pins::new(1000);
    assert_eq!(pins.get(key(1), 1_000, TTL), None);
    pins.pin(key(1), route("a"), 1_000, TTL);
    assert_eq!(pins.get(key(1), 1_000 + HOUR_MS - 1, TTL), Some(route("a")));
    assert_eq!(pins.get(key(1), 1_000 + HOUR_MS, TTL), None, "an hour after its last turn it is gone");
    // Every answered turn starts the hour again.
    pins.pin(key(2), route("a"), 1_000, TTL);
    pins.pin(key(2), route("a"), 1_000 + HOUR_MS / 2, TTL);
    assert_eq!(pins.get(key(2), 1_000 + HOUR_MS + 1, TTL), Some(route("a")));
    // A shorter TTL (a reload) applies to pins already held.
    assert_eq!(pins.get(key(2), 1_000 + HOUR_MS + 1, Duration::from_secs(60)), None);
}

#[test]
fn a_turn_answered_elsewhere_moves_the_pin() {
    let pins = Pins::new(1000);
    pins.pin(key(1), route("a"), 10, TTL);
    // The pinned route failed (or rested, or refused); another answered.
    pins.pin(key(1), route("b"), 20, TTL);
    assert_eq!(pins.get(key(1), 30, TTL), Some(route("b")));
    assert_eq!(pins.get(key(2), 30, TTL), None, "other conversations are not pinned");
}

#[test]
fn the_fleet_hears_of_new_and_moved_pins_and_of_the_rest_once_per_eighth_of_the_ttl() {
    let pins = Pins::new(1000);
    let eighth = HOUR_MS / 8;
    assert!(pins.pin(key(1), route("a"), 10, TTL), "new");
    assert!(!pins.pin(key(1), route("a"), 20, TTL), "unchanged and just written");
    assert!(!pins.pin(key(1), route("a"), 10 + eighth - 1, TTL));
    assert!(pins.pin(key(1), route("a"), 10 + eighth, TTL), "renewed in the fleet");
    assert!(pins.pin(key(1), route("b"), 10 + eighth + 1, TTL), "moved");
    // Learned from the fleet: this instance writes it at its first answered turn.
    pins.learn(key(2), route("c"), 50);
    assert_eq!(pins.get(key(2), 60, TTL), Some(route("c")));
    assert!(pins.pin(key(2), route("c"), 70, TTL));
    assert!(!pins.pin(key(2), route("c"), 80, TTL));
}

#[test]
fn memory_is_capped_and_the_least_recently_used_pins_go_first() {
    let capacity = 320;
    let pins = Pins::new(capacity);
    let mut now = 1;
    for n in 0..10_000 {
        pins.pin(key(n), route("a"), now, TTL);
        // A conversation in use all along.
        if n % 5 == 0 {
            assert_eq!(pins.get(key(1_000_000), now, TTL).is_some(), n > 0, "at {n}");
            pins.pin(key(1_000_000), route("b"), now, TTL);
        }
        now += 1;
        assert!(pins.len() <= capacity, "{} pins held at {n}", pins.len());
    }
    assert_eq!(pins.get(key(1_000_000), now, TTL), Some(route("b")), "a pin in use survives the flood");
    assert!((9_990..10_000).all(|n| pins.get(key(n), now, TTL).is_some()), "the newest are kept");
    assert!((0..100).all(|n| pins.get(key(n), now, TTL).is_none()), "the oldest are gone");
    // A smaller capacity after a reload holds once the generations have turned over.
    pins.set_capacity(64);
    for n in 20_000..21_000 {
        pins.pin(key(n), route("a"), now, TTL);
    }
    assert!(pins.len() <= 64, "{}", pins.len());
}

#[test]
fn pins_are_scoped_to_the_tenant_and_the_public_model() {
    let alice = caller("key-alice", None);
    let base = PinKey::new(&alice, "chat", "session-1");
    assert_eq!(base, PinKey::new(&alice, "chat", "session-1"));
    assert_ne!(base, PinKey::new(&caller("key-bob", None), "chat", "session-1"), "another key");
    assert_ne!(base, PinKey::new(&alice, "code", "session-1"), "another model");
    assert_ne!(base, PinKey::new(&alice, "chat", "session-2"), "another conversation");
    // A team is one tenant: its keys share conversations; a team and a key never do.
    let (one, two) = (caller("key-1", Some("acme")), caller("key-2", Some("acme")));
    assert_eq!(PinKey::new(&one, "chat", "s"), PinKey::new(&two, "chat", "s"));
    assert_ne!(PinKey::new(&one, "chat", "s"), PinKey::new(&caller("key-1", Some("other")), "chat", "s"));
    assert_ne!(PinKey::new(&caller("acme", None), "chat", "s"), PinKey::new(&one, "chat", "s"));
    // Fields cannot run into each other.
    assert_ne!(PinKey::new(&alice, "ab", "c"), PinKey::new(&alice, "a", "bc"));
    // Only the hash goes to the fleet.
    let name = base.fleet_name();
    assert!(name.starts_with("pin:") && name.len() == 4 + 32 && !name.contains("session"), "{name}");
}

#[test]
fn route_ids_survive_the_fleet_and_nothing_else_reads_as_one() {
    let id = RouteId::of("deepseek", "deepseek-chat");
    assert_eq!(RouteId::from_i64(id.to_i64()), Some(id));
    assert!(id.to_i64() > 0);
    assert_ne!(id, RouteId::of("deepseek", "deepseek-reasoner"));
    assert_ne!(RouteId::of("ab", "c"), RouteId::of("a", "bc"));
    assert_eq!(RouteId::from_i64(0), None, "absent in Redis");
    assert_eq!(RouteId::from_i64(-3), None);
    assert_eq!(RouteId::from_i64(4), None);
}
