//! Key management shared by the admin API and the CLI: create, update, revoke, and
//! the JSON view of a key (never its hash).

use llmux_store::{KeyRecord, Store};
use serde::Deserialize;
use serde_json::{Value, json};

pub use crate::accounts::{BudgetInput, KeyError, decimal};
use crate::accounts::{invalid, nullable, validated_budget, validated_models, validated_region};
use crate::auth::{generate_key, generate_key_id, hash_key, key_prefix};
use crate::clock;

/// `POST /admin/keys` body (and the CLI's flags).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub name: String,
    pub models: Option<Vec<String>>,
    pub budget: Option<BudgetInput>,
    pub rpm_limit: Option<u64>,
    pub tpm_limit: Option<u64>,
    pub region: Option<String>,
    pub team: Option<String>,
    /// RFC 3339, a date, or Unix seconds.
    pub expires_at: Option<Value>,
    pub metadata: Option<Value>,
}

/// `PATCH /admin/keys/{id}` body: present fields change, `null` clears.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPatch {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub models: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    pub budget: Option<Option<BudgetInput>>,
    #[serde(default, deserialize_with = "nullable")]
    pub rpm_limit: Option<Option<u64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub tpm_limit: Option<Option<u64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub region: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub team: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub expires_at: Option<Option<Value>>,
    #[serde(default, deserialize_with = "nullable")]
    pub metadata: Option<Option<Value>>,
}

fn expiry(value: &Value) -> Result<i64, KeyError> {
    let parsed = match value {
        Value::Number(number) => number.as_i64().and_then(|seconds| seconds.checked_mul(1000)),
        Value::String(text) => clock::parse_time(text),
        _ => None,
    };
    parsed.ok_or_else(|| invalid("expires_at", "must be an RFC 3339 time, a YYYY-MM-DD date or Unix seconds"))
}

/// Creates a key. Returns the record and the plain key, which exists only here.
pub async fn create(store: &dyn Store, new: NewKey) -> Result<(KeyRecord, String), KeyError> {
    let name = new.name.trim().to_owned();
    if name.is_empty() {
        return Err(invalid("name", "must not be empty"));
    }
    let team = new.team.filter(|team| !team.is_empty());
    if let Some(team) = &team {
        crate::teams::require(store, team).await?;
    }
    let now = clock::wall_ms();
    let plain = generate_key();
    let record = KeyRecord {
        id: generate_key_id(),
        name,
        key_hash: hash_key(&plain),
        key_prefix: key_prefix(&plain),
        team,
        models: new.models.map(validated_models).transpose()?,
        region: new.region.as_deref().map(validated_region).transpose()?,
        budget: new.budget.as_ref().map(validated_budget).transpose()?,
        rpm_limit: new.rpm_limit,
        tpm_limit: new.tpm_limit,
        expires_at: new.expires_at.as_ref().filter(|value| !value.is_null()).map(expiry).transpose()?,
        metadata: new.metadata.filter(|value| !value.is_null()),
        created_at: now,
        updated_at: now,
        revoked_at: None,
        change_seq: 0,
    };
    store.create_key(&record).await?;
    // As stored, with the store's change number.
    let record = store.key(&record.id).await?.unwrap_or(record);
    Ok((record, plain))
}

/// How often a compare-and-set write is tried again after another writer changed the
/// same record in between.
pub(crate) const CAS_ATTEMPTS: usize = 16;

/// Applies a patch: only the fields it names change. The write is a compare-and-set on
/// the version read, repeated on the new version if another writer (a revocation)
/// came in between, so a concurrent change is never overwritten, and a revocation is
/// never undone (the store keeps `revoked_at` once set in any case).
pub async fn update(store: &dyn Store, id: &str, patch: KeyPatch) -> Result<KeyRecord, KeyError> {
    for _ in 0..CAS_ATTEMPTS {
        let key = store.key(id).await?.ok_or_else(|| KeyError::NotFound(id.to_owned()))?;
        let patched = patched(store, key, patch.clone()).await?;
        if store.update_key(&patched).await? {
            return store.key(id).await?.ok_or_else(|| KeyError::NotFound(id.to_owned()));
        }
    }
    Err(KeyError::Store(llmux_store::StoreError::Unavailable(format!(
        "key `{id}` kept changing under this update; try again"
    ))))
}

async fn patched(store: &dyn Store, mut key: KeyRecord, patch: KeyPatch) -> Result<KeyRecord, KeyError> {
    if let Some(name) = patch.name {
        if name.trim().is_empty() {
            return Err(invalid("name", "must not be empty"));
        }
        key.name = name.trim().to_owned();
    }
    if let Some(value) = patch.models {
        key.models = value.map(validated_models).transpose()?;
    }
    if let Some(value) = patch.budget {
        key.budget = value.as_ref().map(validated_budget).transpose()?;
    }
    if let Some(value) = patch.rpm_limit {
        key.rpm_limit = value;
    }
    if let Some(value) = patch.tpm_limit {
        key.tpm_limit = value;
    }
    if let Some(value) = patch.region {
        key.region = value.as_deref().map(validated_region).transpose()?;
    }
    if let Some(value) = patch.team {
        let value = value.filter(|team| !team.is_empty());
        if let Some(team) = &value {
            crate::teams::require(store, team).await?;
        }
        key.team = value;
    }
    if let Some(value) = patch.expires_at {
        key.expires_at = value.as_ref().filter(|value| !value.is_null()).map(expiry).transpose()?;
    }
    if let Some(value) = patch.metadata {
        key.metadata = value;
    }
    key.updated_at = clock::wall_ms().max(key.updated_at + 1);
    Ok(key)
}

/// Revokes a key (idempotent). The record stays for the audit trail.
pub async fn revoke(store: &dyn Store, id: &str) -> Result<KeyRecord, KeyError> {
    for _ in 0..CAS_ATTEMPTS {
        let mut key = store.key(id).await?.ok_or_else(|| KeyError::NotFound(id.to_owned()))?;
        if key.revoked_at.is_some() {
            return Ok(key);
        }
        let now = clock::wall_ms().max(key.updated_at + 1);
        key.revoked_at = Some(now);
        key.updated_at = now;
        if store.update_key(&key).await? {
            return store.key(id).await?.ok_or_else(|| KeyError::NotFound(id.to_owned()));
        }
    }
    Err(KeyError::Store(llmux_store::StoreError::Unavailable(format!(
        "key `{id}` kept changing under this revocation; try again"
    ))))
}

/// The public view of a key.
pub fn view(key: &KeyRecord) -> Value {
    let now = clock::wall_ms();
    let status = if key.revoked_at.is_some() {
        "revoked"
    } else if key.expires_at.is_some_and(|at| at <= now) {
        "expired"
    } else {
        "active"
    };
    json!({
        "id": key.id,
        "name": key.name,
        "key_prefix": key.key_prefix,
        "status": status,
        "team": key.team,
        "models": key.models,
        "region": key.region,
        "budget": key.budget.as_ref().map(|budget| json!({
            "amount": decimal(budget.amount_nanos),
            "currency": budget.currency,
            "period": budget.period,
        })),
        "rpm_limit": key.rpm_limit,
        "tpm_limit": key.tpm_limit,
        "expires_at": key.expires_at.map(clock::rfc3339),
        "metadata": key.metadata,
        "created_at": clock::rfc3339(key.created_at),
        "updated_at": clock::rfc3339(key.updated_at),
        "revoked_at": key.revoked_at.map(clock::rfc3339),
    })
}

/// The view of key `id` with its budget's standing in the current period
/// (`GET /admin/keys/{id}`, `llmux keys show`).
pub async fn show(store: &dyn Store, id: &str) -> Result<Value, KeyError> {
    let key = store.key(id).await?.ok_or_else(|| KeyError::NotFound(id.to_owned()))?;
    let mut view = view(&key);
    crate::accounts::add_spend(&mut view, key.budget.as_ref(), async |currency, start| {
        store.key_spend(&key.id, currency, start).await
    })
    .await;
    Ok(view)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn patches_racing_a_revocation_never_undo_it() {
        let store = llmux_store::open("sqlite::memory:").await.unwrap();
        for round in 0..5 {
            let (key, _) =
                create(store.as_ref(), NewKey { name: format!("k{round}"), ..NewKey::default() }).await.unwrap();
            let mut tasks = Vec::new();
            for n in 0..8 {
                let (patcher, id) = (store.clone(), key.id.clone());
                tasks.push(tokio::spawn(async move {
                    let patch = KeyPatch {
                        name: Some(format!("patched {n}")),
                        rpm_limit: Some(Some(n)),
                        ..KeyPatch::default()
                    };
                    update(patcher.as_ref(), &id, patch).await.map(drop)
                }));
                if n == 3 {
                    let (revoker, id) = (store.clone(), key.id.clone());
                    tasks.push(tokio::spawn(async move { revoke(revoker.as_ref(), &id).await.map(drop) }));
                }
            }
            for task in tasks {
                task.await.unwrap().unwrap();
            }
            let stored = store.key(&key.id).await.unwrap().unwrap();
            assert!(stored.revoked_at.is_some(), "round {round}: the revocation stands");
            // Each patch is applied whole: name and limit come from the same one.
            let n = stored.rpm_limit.unwrap();
            assert_eq!(stored.name, format!("patched {n}"));
        }
    }
}
