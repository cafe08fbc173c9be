//! Team management shared by the admin API and the CLI: create, update, delete, and
//! the JSON view of a team.
//!
//! A team owns keys (a key names it in `team`) and limits them together: its budget,
//! requests and tokens per minute are shared by all its keys, its model list and
//! region apply to each of them. A key's effective limits are therefore the tighter of
//! its own and its team's.

use llmux_store::{Store, StoreError, TeamRecord};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::accounts::{
    BudgetInput, KeyError, add_spend, decimal, nullable, validated_budget, validated_models, validated_region,
};
use crate::clock;

/// `POST /admin/teams` body (and the CLI's flags).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTeam {
    pub name: String,
    pub models: Option<Vec<String>>,
    pub budget: Option<BudgetInput>,
    pub rpm_limit: Option<u64>,
    pub tpm_limit: Option<u64>,
    pub region: Option<String>,
    pub metadata: Option<Value>,
}

/// `PATCH /admin/teams/{name}` body: present fields change, `null` clears.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamPatch {
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
    pub metadata: Option<Option<Value>>,
}

#[derive(Debug, thiserror::Error)]
pub enum TeamError {
    #[error(transparent)]
    Invalid(#[from] KeyError),
    #[error("no team named `{0}`")]
    NotFound(String),
    #[error("a team named `{0}` exists already")]
    Exists(String),
    #[error("team `{team}` still has {keys} active key(s); revoke them or move them to another team first")]
    InUse { team: String, keys: usize },
}

impl From<StoreError> for TeamError {
    fn from(error: StoreError) -> TeamError {
        TeamError::Invalid(KeyError::Store(error))
    }
}

/// Team names: what keys refer to; letters, digits, `-`, `_` and `.`.
fn name(value: &str) -> Result<String, TeamError> {
    let value = value.trim();
    let valid = !value.is_empty()
        && value.len() <= 64
        && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid {
        return Err(TeamError::Invalid(KeyError::Invalid {
            field: "name",
            message: "must be 1 to 64 letters, digits, `-`, `_` or `.`".to_owned(),
        }));
    }
    Ok(value.to_owned())
}

pub async fn create(store: &dyn Store, new: NewTeam) -> Result<TeamRecord, TeamError> {
    let name = name(&new.name)?;
    let now = clock::wall_ms();
    let record = TeamRecord {
        name: name.clone(),
        models: new.models.map(validated_models).transpose()?,
        region: new.region.as_deref().map(validated_region).transpose()?,
        budget: new.budget.as_ref().map(validated_budget).transpose()?,
        rpm_limit: new.rpm_limit,
        tpm_limit: new.tpm_limit,
        metadata: new.metadata.filter(|value| !value.is_null()),
        created_at: now,
        updated_at: now,
        change_seq: 0,
    };
    match store.create_team(&record).await {
        // As stored, with the store's change number.
        Ok(()) => Ok(store.team(&name).await?.unwrap_or(record)),
        Err(StoreError::Conflict) => Err(TeamError::Exists(name)),
        Err(error) => Err(error.into()),
    }
}

/// Applies a patch: only the fields it names change, by compare-and-set on the version
/// read (repeated on the new version if another writer came in between).
pub async fn update(store: &dyn Store, team_name: &str, patch: TeamPatch) -> Result<TeamRecord, TeamError> {
    let not_found = || TeamError::NotFound(team_name.to_owned());
    for _ in 0..crate::keys::CAS_ATTEMPTS {
        let team = store.team(team_name).await?.ok_or_else(not_found)?;
        let patched = patched(team, patch.clone())?;
        if store.update_team(&patched).await? {
            return store.team(team_name).await?.ok_or_else(not_found);
        }
    }
    Err(StoreError::Unavailable(format!("team `{team_name}` kept changing under this update; try again")).into())
}

fn patched(mut team: TeamRecord, patch: TeamPatch) -> Result<TeamRecord, TeamError> {
    if let Some(value) = patch.models {
        team.models = value.map(validated_models).transpose()?;
    }
    if let Some(value) = patch.budget {
        team.budget = value.as_ref().map(validated_budget).transpose()?;
    }
    if let Some(value) = patch.rpm_limit {
        team.rpm_limit = value;
    }
    if let Some(value) = patch.tpm_limit {
        team.tpm_limit = value;
    }
    if let Some(value) = patch.region {
        team.region = value.as_deref().map(validated_region).transpose()?;
    }
    if let Some(value) = patch.metadata {
        team.metadata = value;
    }
    team.updated_at = clock::wall_ms().max(team.updated_at + 1);
    Ok(team)
}

/// Deletes a team that no active key belongs to.
pub async fn delete(store: &dyn Store, team_name: &str) -> Result<(), TeamError> {
    if store.team(team_name).await?.is_none() {
        return Err(TeamError::NotFound(team_name.to_owned()));
    }
    let keys = store
        .list_keys()
        .await?
        .iter()
        .filter(|key| key.team.as_deref() == Some(team_name) && key.revoked_at.is_none())
        .count();
    if keys > 0 {
        return Err(TeamError::InUse { team: team_name.to_owned(), keys });
    }
    if store.delete_team(team_name).await? { Ok(()) } else { Err(TeamError::NotFound(team_name.to_owned())) }
}

/// Fails unless team `name` exists (keys may only name existing teams).
pub async fn require(store: &dyn Store, team_name: &str) -> Result<(), KeyError> {
    match store.team(team_name).await? {
        Some(_) => Ok(()),
        None => Err(KeyError::Invalid { field: "team", message: format!("no team named `{team_name}`") }),
    }
}

/// The public view of a team.
/// The view of team `name` with its budget's standing in the current period
/// (`GET /admin/teams/{name}`, `llmux teams show`).
pub async fn show(store: &dyn Store, name: &str) -> Result<Value, TeamError> {
    let team = store.team(name).await?.ok_or_else(|| TeamError::NotFound(name.to_owned()))?;
    let mut view = view(&team);
    add_spend(&mut view, team.budget.as_ref(), async |currency, start| {
        store.team_spend(&team.name, currency, start).await
    })
    .await;
    Ok(view)
}

pub fn view(team: &TeamRecord) -> Value {
    json!({
        "name": team.name,
        "models": team.models,
        "region": team.region,
        "budget": team.budget.as_ref().map(|budget| json!({
            "amount": decimal(budget.amount_nanos),
            "currency": budget.currency,
            "period": budget.period,
        })),
        "rpm_limit": team.rpm_limit,
        "tpm_limit": team.tpm_limit,
        "metadata": team.metadata,
        "created_at": clock::rfc3339(team.created_at),
        "updated_at": clock::rfc3339(team.updated_at),
    })
}
