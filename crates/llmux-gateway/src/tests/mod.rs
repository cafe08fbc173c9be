//! Module-level tests of the lifecycle's decisions (admission, failover, hedging)
//! against a real gateway on a throwaway SQLite store, with scripted attempts in place
//! of providers.

mod admit;
mod affinity;
mod failover;

use std::sync::Arc;

use llmux_store::KeyRecord;
use tokio::time::Instant;

use crate::auth::Caller;
use crate::outcome::RequestMeta;
use crate::settle::Settlement;
use crate::{Background, Gateway};

/// A gateway on `config` (providers and models in TOML) with its own SQLite file.
pub(super) async fn gateway(config: &str) -> (Arc<Gateway>, Background) {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "llmux-gateway-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("llmux.db");
    let text = format!(
        "[storage]\nurl = \"sqlite://{}\"\nspill_dir = \"{}\"\n\n{config}",
        db.display(),
        dir.join("spill").display()
    );
    let config = llmux_config::Config::from_toml(&text, &|_| None).expect("valid test config");
    let store = llmux_store::open(&config.storage.url).await.expect("store opens");
    Gateway::start(config, store).await.expect("gateway starts")
}

/// A caller with `key`'s settings.
pub(super) fn caller(key: KeyRecord) -> Caller {
    let region = key.region.as_deref().and_then(llmux_types::Region::parse);
    Caller { key: Arc::new(key), team: None, region }
}

/// A key with no limits, for every model (id `key-1`).
pub(super) fn key() -> KeyRecord {
    KeyRecord { id: "key-1".into(), name: "test".into(), ..KeyRecord::default() }
}

pub(super) fn meta() -> RequestMeta {
    RequestMeta {
        request_id: "req-test".into(),
        api_key: None,
        region_header: None,
        claude_code_session: None,
        session: None,
        started: Instant::now(),
    }
}

pub(super) fn settlement(gateway: &Gateway, caller: &Caller, meta: &RequestMeta) -> Settlement {
    Settlement::new(gateway.ledger.clone(), gateway.metrics.clone(), &meta.request_id, caller, meta.started)
}
