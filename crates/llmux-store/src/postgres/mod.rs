//! PostgreSQL store: a small pool of connections, migrations applied on open.
//!
//! Built on tokio-postgres with deadpool. Every call takes a connection from the pool
//! and runs one statement, prepared once per connection and cached; a ledger batch is
//! one `INSERT ... SELECT FROM UNNEST` of typed arrays, so it is one statement and one
//! transaction whatever its size. Lost connections (server restarted, backend
//! terminated) leave the pool as soon as a call meets one and are replaced on demand;
//! a read that meets one moves on to another connection. No call waits longer than
//! [`CALL_TIMEOUT`]: a server that is down or unreachable makes calls fail with
//! [`StoreError::Unavailable`] instead of blocking, and a connection whose call timed
//! out is closed rather than reused.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::{
    Budget, GroupBy, KeyRecord, Store, StoreError, StoredResponse, StoredUsage, TeamRecord, UsageFilter, UsageRecord,
    UsageSummaryRow,
};

/// Schema versions, applied in order; never edit one that has shipped. Version 1 is
/// SQLite's versions 1 to 3 together.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001_init.sql")),
    (2, include_str!("migrations/0002_responses.sql")),
    (3, include_str!("migrations/0003_usage_estimated.sql")),
    (4, include_str!("migrations/0004_ledger_unique.sql")),
];

/// The advisory lock held while migrating, so that instances starting together
/// migrate one after the other (`llmux` in ASCII, then 1).
const MIGRATION_LOCK: i64 = 0x6c6c_6d75_7801;
/// The advisory lock a key or team write holds from taking its change number until it
/// commits, so that change numbers become visible in order (a refresh that has seen
/// change N never misses a change below N that commits later).
const CHANGE_LOCK: i64 = 0x6c6c_6d75_7802;

/// Connections in the pool.
const POOL_SIZE: usize = 8;
/// How long establishing one connection may take, unless the URL sets `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest any call waits: for a connection, then for its statement.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Migrating may wait for another instance that is migrating.
const MIGRATE_TIMEOUT: Duration = Duration::from_secs(60);

pub struct PostgresStore {
    pool: Pool,
}

impl std::fmt::Debug for PostgresStore {
    // The pool's configuration holds the password: not shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = self.pool.status();
        f.debug_struct("PostgresStore").field("connections", &status.size).finish_non_exhaustive()
    }
}

/// TLS for `sslmode=require`: rustls on aws-lc-rs, the system's root certificates.
fn tls() -> Result<MakeRustlsConnect, StoreError> {
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if added == 0 {
        return Err(StoreError::Unavailable("sslmode=require, but this system has no root certificates".to_owned()));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|error| StoreError::Unavailable(format!("TLS: {error}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// `error` and its causes (the server's message, or why the connection failed), which
/// never include the URL or its password.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text = format!("{text}: {inner_text}");
        }
        cause = inner.source();
    }
    text
}

fn unavailable(error: tokio_postgres::Error) -> StoreError {
    StoreError::Unavailable(format!("PostgreSQL: {}", describe(&error)))
}

fn pool_unavailable(error: deadpool_postgres::PoolError) -> StoreError {
    use deadpool_postgres::PoolError;
    StoreError::Unavailable(match error {
        PoolError::Timeout(_) => "PostgreSQL: no connection became available in time".to_owned(),
        PoolError::Backend(error) => format!("PostgreSQL: {}", describe(&error)),
        error => format!("PostgreSQL connection pool: {}", describe(&error)),
    })
}

fn conflict_or_unavailable(error: tokio_postgres::Error) -> StoreError {
    if error.code() == Some(&SqlState::UNIQUE_VIOLATION) { StoreError::Conflict } else { refused_or_unavailable(error) }
}

/// The data refused (a data exception or an integrity constraint: SQLSTATE classes 22
/// and 23), or the store unavailable.
fn refused_or_unavailable(error: tokio_postgres::Error) -> StoreError {
    match error.code().map(SqlState::code) {
        Some(code) if code.starts_with("22") || code.starts_with("23") => {
            StoreError::Rejected(format!("PostgreSQL: {}", describe(&error)))
        }
        _ => unavailable(error),
    }
}

/// Whether `error` means the connection is gone (closed, or its backend terminated or
/// shutting down), rather than the statement failing.
fn connection_lost(error: &tokio_postgres::Error, client: &Object) -> bool {
    error.is_closed()
        || client.is_closed()
        || error.code().is_some_and(|code| {
            [SqlState::ADMIN_SHUTDOWN, SqlState::CRASH_SHUTDOWN, SqlState::CANNOT_CONNECT_NOW].contains(code)
        })
}

/// Takes a lost connection out of the pool at once (the pool would notice only once
/// its connection task has ended).
fn discard(client: Object) {
    drop(Object::take(client));
}

fn timed_out() -> StoreError {
    StoreError::Unavailable(format!("PostgreSQL did not answer within {} s", CALL_TIMEOUT.as_secs()))
}

type Params<'a> = [&'a (dyn ToSql + Sync)];

impl PostgresStore {
    /// Connects to the `postgres://` or `postgresql://` URL `url` and migrates the
    /// database (the schema is the connection's `search_path`, set with
    /// `options=-csearch_path=NAME` in the URL if not `public`). With `sslmode=require`
    /// the connections use TLS and the server's certificate must verify against the
    /// system's roots (`SSL_CERT_FILE` adds one); otherwise they are plain.
    pub async fn open(url: &str) -> Result<PostgresStore, StoreError> {
        // The parser's errors name the offending option, never its value.
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|error| StoreError::Unsupported(format!("invalid PostgreSQL URL: {error}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("llmux");
        }
        // Notices a dead peer on an idle connection within a minute.
        config
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .keepalives_interval(Duration::from_secs(10))
            .keepalives_retries(3);
        let recycling = ManagerConfig { recycling_method: RecyclingMethod::Fast };
        let manager = match config.get_ssl_mode() {
            SslMode::Require => Manager::from_config(config, tls()?, recycling),
            // `prefer` (the default) connects in plain text: no TLS is offered.
            _ => Manager::from_config(config, NoTls, recycling),
        };
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CALL_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|error| StoreError::Unavailable(format!("cannot build the PostgreSQL pool: {error}")))?;
        let store = PostgresStore { pool };
        match tokio::time::timeout(MIGRATE_TIMEOUT, store.migrate()).await {
            Ok(migrated) => migrated?,
            Err(_) => {
                let waited = MIGRATE_TIMEOUT.as_secs();
                return Err(StoreError::Unavailable(format!("PostgreSQL: migrating took over {waited} s")));
            }
        }
        Ok(store)
    }

    async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(pool_unavailable)
    }

    /// Applies the missing migrations in one transaction, under an advisory lock.
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(unavailable)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(unavailable)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS llmux_schema (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .await
        .map_err(unavailable)?;
        let applied: Option<i64> =
            tx.query_one("SELECT MAX(version) FROM llmux_schema", &[]).await.map_err(unavailable)?.get(0);
        for (version, sql) in MIGRATIONS {
            if applied.is_some_and(|applied| applied >= *version) {
                continue;
            }
            tx.batch_execute(sql).await.map_err(unavailable)?;
            tx.execute(
                "INSERT INTO llmux_schema (version, applied_at) VALUES ($1, EXTRACT(EPOCH FROM now())::BIGINT)",
                &[version],
            )
            .await
            .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)
    }

    /// A connection from the pool, by `deadline`.
    async fn client_by(&self, deadline: Instant) -> Result<Object, StoreError> {
        tokio::time::timeout_at(deadline, self.client()).await.unwrap_or_else(|_| Err(timed_out()))
    }

    /// Runs a read; repeated on another connection when the one it got turns out to be
    /// lost (reads are safe to repeat). After a restart every pooled connection is lost,
    /// so the retries may take each of them before a fresh one.
    async fn query(&self, sql: &str, params: &Params<'_>) -> Result<Vec<Row>, StoreError> {
        let deadline = Instant::now() + CALL_TIMEOUT;
        let mut retries = 0;
        loop {
            let client = self.client_by(deadline).await?;
            let run = async { client.query(&client.prepare_cached(sql).await?, params).await };
            match tokio::time::timeout_at(deadline, run).await {
                Err(_) => {
                    // Its statement may still be running: the connection is not reused.
                    discard(client);
                    return Err(timed_out());
                }
                Ok(Err(error)) if connection_lost(&error, &client) => {
                    discard(client);
                    if retries == POOL_SIZE {
                        return Err(unavailable(error));
                    }
                    retries += 1;
                }
                Ok(result) => return result.map_err(unavailable),
            }
        }
    }

    async fn query_opt(&self, sql: &str, params: &Params<'_>) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }

    /// Runs a write (never repeated: it may have been applied); the rows it changed.
    /// `fail` maps the statement's error.
    async fn execute(
        &self,
        sql: &str,
        params: &Params<'_>,
        fail: fn(tokio_postgres::Error) -> StoreError,
    ) -> Result<u64, StoreError> {
        let deadline = Instant::now() + CALL_TIMEOUT;
        let client = self.client_by(deadline).await?;
        let run = async { client.execute(&client.prepare_cached(sql).await?, params).await };
        let outcome = tokio::time::timeout_at(deadline, run).await;
        write_outcome(client, outcome, fail)
    }
}

/// What a write on `client` came to: one that timed out (its statement may still run)
/// or whose connection was lost leaves the pool and is Unavailable, never repeated;
/// otherwise `fail` maps the statement's error.
fn write_outcome<T>(
    client: Object,
    outcome: Result<Result<T, tokio_postgres::Error>, tokio::time::error::Elapsed>,
    fail: fn(tokio_postgres::Error) -> StoreError,
) -> Result<T, StoreError> {
    match outcome {
        Err(_) => {
            discard(client);
            Err(timed_out())
        }
        Ok(Err(error)) if connection_lost(&error, &client) => {
            discard(client);
            Err(unavailable(error))
        }
        Ok(result) => result.map_err(fail),
    }
}

impl PostgresStore {
    /// Runs a key or team write in a transaction that holds [`CHANGE_LOCK`] from
    /// before its change number is taken until it commits (never repeated).
    async fn execute_in_change_order(&self, sql: &str, params: &Params<'_>) -> Result<u64, StoreError> {
        let deadline = Instant::now() + CALL_TIMEOUT;
        let mut client = self.client_by(deadline).await?;
        let run = async {
            let statement = client.prepare_cached(sql).await?;
            let tx = client.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CHANGE_LOCK]).await?;
            let changed = tx.execute(&statement, params).await?;
            tx.commit().await?;
            Ok::<u64, tokio_postgres::Error>(changed)
        };
        let outcome = tokio::time::timeout_at(deadline, run).await;
        write_outcome(client, outcome, conflict_or_unavailable)
    }
}

const KEY_COLUMNS: &str = "id, name, key_hash, key_prefix, team, models, region, budget_nanos, budget_currency, \
     budget_period, rpm_limit, tpm_limit, expires_at, metadata, created_at, updated_at, revoked_at, change_seq";
const TEAM_COLUMNS: &str = "name, models, region, budget_nanos, budget_currency, budget_period, rpm_limit, \
     tpm_limit, metadata, created_at, updated_at, change_seq";
const USAGE_COLUMNS: &str = "request_id, key_id, team, model, provider, upstream_model, input_tokens, \
     output_tokens, cached_tokens, reasoning_tokens, cost_nanos, currency, status, error_code, attempts, \
     latency_ms, ttft_ms, created_at, attempt_log, usage_estimated, record_id";

const INSERT_KEY: &str = "INSERT INTO keys (id, name, key_hash, key_prefix, team, models, region, budget_nanos, \
     budget_currency, budget_period, rpm_limit, tpm_limit, expires_at, metadata, created_at, updated_at, revoked_at, \
     change_seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
     nextval('llmux_changes') + 0 * $18::BIGINT)";
/// A revocation is never undone: `revoked_at` keeps the stored value once set.
const UPDATE_KEY: &str = "UPDATE keys SET name = $2, team = $5, models = $6, region = $7, budget_nanos = $8, \
     budget_currency = $9, budget_period = $10, rpm_limit = $11, tpm_limit = $12, expires_at = $13, metadata = $14, \
     updated_at = $16, revoked_at = COALESCE(revoked_at, $17), change_seq = nextval('llmux_changes') \
     WHERE id = $1 AND key_hash = $3 AND key_prefix = $4 AND created_at = $15 AND change_seq = $18";
const INSERT_TEAM: &str = "INSERT INTO teams (name, models, region, budget_nanos, budget_currency, budget_period, \
     rpm_limit, tpm_limit, metadata, created_at, updated_at, change_seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, \
     $9, $10, $11, nextval('llmux_changes') + 0 * $12::BIGINT)";
const UPDATE_TEAM: &str = "UPDATE teams SET models = $2, region = $3, budget_nanos = $4, budget_currency = $5, \
     budget_period = $6, rpm_limit = $7, tpm_limit = $8, metadata = $9, updated_at = $11, \
     change_seq = nextval('llmux_changes') WHERE name = $1 AND created_at = $10 AND change_seq = $12";
/// One statement for a whole batch: the arrays are unnested in order, so ids follow
/// the batch's order.
const INSERT_USAGE: &str = "INSERT INTO usage (request_id, key_id, team, model, provider, upstream_model, \
     input_tokens, output_tokens, cached_tokens, reasoning_tokens, cost_nanos, currency, status, error_code, \
     attempts, latency_ms, ttft_ms, created_at, attempt_log, usage_estimated, record_id) \
     SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::BIGINT[], \
     $8::BIGINT[], $9::BIGINT[], $10::BIGINT[], $11::BIGINT[], $12::TEXT[], $13::BIGINT[], $14::TEXT[], \
     $15::BIGINT[], $16::BIGINT[], $17::BIGINT[], $18::BIGINT[], $19::TEXT[], $20::BOOLEAN[], $21::TEXT[]) \
     ON CONFLICT (record_id) DO NOTHING";

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn count(row: &Row, name: &str) -> u64 {
    row.get::<_, i64>(name).max(0) as u64
}

fn budget_from_row(row: &Row) -> Option<Budget> {
    let amount_nanos = row.get::<_, Option<i64>>("budget_nanos")?;
    Some(Budget {
        amount_nanos,
        currency: row.get::<_, Option<String>>("budget_currency").unwrap_or_else(|| "USD".to_owned()),
        period: row.get::<_, Option<String>>("budget_period").unwrap_or_else(|| "monthly".to_owned()),
    })
}

fn json_column<T: serde::de::DeserializeOwned>(row: &Row, name: &str) -> Option<T> {
    row.get::<_, Option<&str>>(name).and_then(|text| serde_json::from_str(text).ok())
}

fn key_from_row(row: &Row) -> KeyRecord {
    KeyRecord {
        id: row.get("id"),
        name: row.get("name"),
        key_hash: row.get("key_hash"),
        key_prefix: row.get("key_prefix"),
        team: row.get("team"),
        models: json_column(row, "models"),
        region: row.get("region"),
        budget: budget_from_row(row),
        rpm_limit: row.get::<_, Option<i64>>("rpm_limit").map(|v| v.max(0) as u64),
        tpm_limit: row.get::<_, Option<i64>>("tpm_limit").map(|v| v.max(0) as u64),
        expires_at: row.get("expires_at"),
        metadata: json_column(row, "metadata"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
        revoked_at: row.get("revoked_at"),
        change_seq: row.get("change_seq"),
    }
}

fn team_from_row(row: &Row) -> TeamRecord {
    TeamRecord {
        name: row.get("name"),
        models: json_column(row, "models"),
        region: row.get("region"),
        budget: budget_from_row(row),
        rpm_limit: row.get::<_, Option<i64>>("rpm_limit").map(|v| v.max(0) as u64),
        tpm_limit: row.get::<_, Option<i64>>("tpm_limit").map(|v| v.max(0) as u64),
        metadata: json_column(row, "metadata"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
        change_seq: row.get("change_seq"),
    }
}

fn usage_from_row(row: &Row) -> StoredUsage {
    StoredUsage {
        id: row.get("id"),
        record: UsageRecord {
            request_id: row.get("request_id"),
            key_id: row.get("key_id"),
            team: row.get("team"),
            model: row.get("model"),
            provider: row.get("provider"),
            upstream_model: row.get("upstream_model"),
            input_tokens: count(row, "input_tokens"),
            output_tokens: count(row, "output_tokens"),
            cached_tokens: count(row, "cached_tokens"),
            reasoning_tokens: count(row, "reasoning_tokens"),
            cost_nanos: row.get("cost_nanos"),
            currency: row.get("currency"),
            status: row.get::<_, i64>("status").clamp(0, 999) as u16,
            error_code: row.get("error_code"),
            attempts: row.get::<_, i64>("attempts").clamp(0, i64::from(u32::MAX)) as u32,
            latency_ms: count(row, "latency_ms"),
            ttft_ms: row.get::<_, Option<i64>>("ttft_ms").map(|v| v.max(0) as u64),
            created_at: row.get("created_at"),
            attempt_log: row.get("attempt_log"),
            usage_estimated: row.get("usage_estimated"),
            record_id: row.get::<_, Option<String>>("record_id").unwrap_or_default(),
        },
    }
}

/// The key's columns in the order of [`INSERT_KEY`] and [`UPDATE_KEY`].
struct KeyValues {
    models: Option<String>,
    metadata: Option<String>,
    rpm_limit: Option<i64>,
    tpm_limit: Option<i64>,
}

impl KeyValues {
    fn new(
        models: &Option<Vec<String>>,
        metadata: &Option<serde_json::Value>,
        rpm: Option<u64>,
        tpm: Option<u64>,
    ) -> Self {
        KeyValues {
            models: models.as_ref().map(|models| serde_json::to_string(models).unwrap_or_default()),
            metadata: metadata.as_ref().map(|metadata| metadata.to_string()),
            rpm_limit: rpm.map(to_i64),
            tpm_limit: tpm.map(to_i64),
        }
    }
}

impl PostgresStore {
    async fn write_key(&self, key: &KeyRecord, insert: bool) -> Result<u64, StoreError> {
        let values = KeyValues::new(&key.models, &key.metadata, key.rpm_limit, key.tpm_limit);
        let budget = key.budget.as_ref();
        let (amount, currency, period) = (
            budget.map(|budget| budget.amount_nanos),
            budget.map(|budget| budget.currency.as_str()),
            budget.map(|budget| budget.period.as_str()),
        );
        let name = crate::without_nul(&key.name);
        let params: [&(dyn ToSql + Sync); 18] = [
            &key.id,
            &name,
            &key.key_hash,
            &key.key_prefix,
            &key.team,
            &values.models,
            &key.region,
            &amount,
            &currency,
            &period,
            &values.rpm_limit,
            &values.tpm_limit,
            &key.expires_at,
            &values.metadata,
            &key.created_at,
            &key.updated_at,
            &key.revoked_at,
            &key.change_seq,
        ];
        self.execute_in_change_order(if insert { INSERT_KEY } else { UPDATE_KEY }, &params).await
    }

    async fn write_team(&self, team: &TeamRecord, insert: bool) -> Result<u64, StoreError> {
        let values = KeyValues::new(&team.models, &team.metadata, team.rpm_limit, team.tpm_limit);
        let budget = team.budget.as_ref();
        let (amount, currency, period) = (
            budget.map(|budget| budget.amount_nanos),
            budget.map(|budget| budget.currency.as_str()),
            budget.map(|budget| budget.period.as_str()),
        );
        let params: [&(dyn ToSql + Sync); 12] = [
            &team.name,
            &values.models,
            &team.region,
            &amount,
            &currency,
            &period,
            &values.rpm_limit,
            &values.tpm_limit,
            &values.metadata,
            &team.created_at,
            &team.updated_at,
            &team.change_seq,
        ];
        self.execute_in_change_order(if insert { INSERT_TEAM } else { UPDATE_TEAM }, &params).await
    }
}

/// `WHERE` over `created_at` for the bounds that are set, with placeholders from
/// `$first`; built from constants only (no value is ever formatted into SQL).
fn time_bounds(since: Option<i64>, until: Option<i64>, first: usize, conditions: &mut Vec<String>) -> Vec<i64> {
    let mut values = Vec::with_capacity(2);
    if let Some(since) = since {
        conditions.push(format!("created_at >= ${}", first + values.len()));
        values.push(since);
    }
    if let Some(until) = until {
        conditions.push(format!("created_at < ${}", first + values.len()));
        values.push(until);
    }
    values
}

fn where_clause(conditions: &[String]) -> String {
    if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) }
}

/// The summary for `group_by`: grouped on the raw column (days as the Unix second of
/// their UTC midnight, the same day `strftime` gives SQLite), labelled afterwards, so
/// the label is computed once per group rather than once per record.
fn summary_sql(group_by: GroupBy, filter: &str) -> String {
    let (group, label) = match group_by {
        GroupBy::Key => ("key_id", "grp"),
        GroupBy::Model => ("model", "grp"),
        GroupBy::Provider => ("provider", "grp"),
        GroupBy::Team => ("team", "grp"),
        GroupBy::Day => (
            "created_at / 1000 - MOD(MOD(created_at / 1000, 86400) + 86400, 86400)",
            "to_char(to_timestamp(grp) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
        ),
    };
    format!(
        "SELECT {label} AS grp, currency, requests, errors, input_tokens, output_tokens, cached_tokens, \
         reasoning_tokens, cost_nanos FROM (SELECT {group} AS grp, currency, COUNT(*) AS requests, \
         COUNT(*) FILTER (WHERE status >= 400) AS errors, \
         COALESCE(SUM(input_tokens), 0)::BIGINT AS input_tokens, COALESCE(SUM(output_tokens), 0)::BIGINT AS output_tokens, \
         COALESCE(SUM(cached_tokens), 0)::BIGINT AS cached_tokens, \
         COALESCE(SUM(reasoning_tokens), 0)::BIGINT AS reasoning_tokens, \
         COALESCE(SUM(cost_nanos), 0)::BIGINT AS cost_nanos FROM usage {filter} GROUP BY 1, 2) AS groups \
         ORDER BY groups.grp NULLS FIRST, currency NULLS FIRST"
    )
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.query("SELECT 1", &[]).await.map(drop)
    }

    async fn create_key(&self, key: &KeyRecord) -> Result<(), StoreError> {
        self.write_key(key, true).await.map(drop)
    }

    async fn update_key(&self, key: &KeyRecord) -> Result<bool, StoreError> {
        Ok(self.write_key(key, false).await? > 0)
    }

    async fn key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM keys WHERE id = $1");
        Ok(self.query_opt(&sql, &[&id]).await?.as_ref().map(key_from_row))
    }

    async fn key_by_hash(&self, hash: &str) -> Result<Option<KeyRecord>, StoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM keys WHERE key_hash = $1");
        Ok(self.query_opt(&sql, &[&hash]).await?.as_ref().map(key_from_row))
    }

    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM keys ORDER BY created_at, id");
        Ok(self.query(&sql, &[]).await?.iter().map(key_from_row).collect())
    }

    async fn keys_changed_since(&self, after: i64) -> Result<Vec<KeyRecord>, StoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM keys WHERE change_seq > $1 ORDER BY change_seq");
        Ok(self.query(&sql, &[&after]).await?.iter().map(key_from_row).collect())
    }

    async fn create_team(&self, team: &TeamRecord) -> Result<(), StoreError> {
        self.write_team(team, true).await.map(drop)
    }

    async fn update_team(&self, team: &TeamRecord) -> Result<bool, StoreError> {
        Ok(self.write_team(team, false).await? > 0)
    }

    async fn team(&self, name: &str) -> Result<Option<TeamRecord>, StoreError> {
        let sql = format!("SELECT {TEAM_COLUMNS} FROM teams WHERE name = $1");
        Ok(self.query_opt(&sql, &[&name]).await?.as_ref().map(team_from_row))
    }

    async fn list_teams(&self) -> Result<Vec<TeamRecord>, StoreError> {
        let sql = format!("SELECT {TEAM_COLUMNS} FROM teams ORDER BY name");
        Ok(self.query(&sql, &[]).await?.iter().map(team_from_row).collect())
    }

    async fn teams_updated_since(&self, since: i64) -> Result<Vec<TeamRecord>, StoreError> {
        let sql = format!("SELECT {TEAM_COLUMNS} FROM teams WHERE updated_at >= $1 ORDER BY updated_at, name");
        Ok(self.query(&sql, &[&since]).await?.iter().map(team_from_row).collect())
    }

    async fn delete_team(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self.execute("DELETE FROM teams WHERE name = $1", &[&name], unavailable).await? > 0)
    }

    async fn insert_usage(&self, records: Arc<[UsageRecord]>) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        fn column<'a, T>(records: &'a [UsageRecord], value: impl FnMut(&'a UsageRecord) -> T) -> Vec<T> {
            records.iter().map(value).collect()
        }
        let records = &records[..];
        use crate::without_nul as text;
        // PostgreSQL's text cannot hold NUL: such a record is written with U+FFFD in
        // its place rather than failing its whole batch.
        let request_id = column(records, |r| text(&r.request_id));
        let key_id = column(records, |r| r.key_id.as_deref().map(text));
        let team = column(records, |r| r.team.as_deref().map(text));
        let model = column(records, |r| text(&r.model));
        let provider = column(records, |r| r.provider.as_deref().map(text));
        let upstream_model = column(records, |r| r.upstream_model.as_deref().map(text));
        let input_tokens = column(records, |r| to_i64(r.input_tokens));
        let output_tokens = column(records, |r| to_i64(r.output_tokens));
        let cached_tokens = column(records, |r| to_i64(r.cached_tokens));
        let reasoning_tokens = column(records, |r| to_i64(r.reasoning_tokens));
        let cost_nanos = column(records, |r| r.cost_nanos);
        let currency = column(records, |r| r.currency.as_deref().map(text));
        let status = column(records, |r| i64::from(r.status));
        let error_code = column(records, |r| r.error_code.as_deref().map(text));
        let attempts = column(records, |r| i64::from(r.attempts));
        let latency_ms = column(records, |r| to_i64(r.latency_ms));
        let ttft_ms = column(records, |r| r.ttft_ms.map(to_i64));
        let created_at = column(records, |r| r.created_at);
        let attempt_log = column(records, |r| r.attempt_log.as_deref().map(text));
        let usage_estimated = column(records, |r| r.usage_estimated);
        // No id (records not from the ledger writer): NULL, never a conflict.
        let record_id = column(records, |r| Some(r.record_id.as_str()).filter(|id| !id.is_empty()).map(text));
        let params: [&(dyn ToSql + Sync); 21] = [
            &request_id,
            &key_id,
            &team,
            &model,
            &provider,
            &upstream_model,
            &input_tokens,
            &output_tokens,
            &cached_tokens,
            &reasoning_tokens,
            &cost_nanos,
            &currency,
            &status,
            &error_code,
            &attempts,
            &latency_ms,
            &ttft_ms,
            &created_at,
            &attempt_log,
            &usage_estimated,
            &record_id,
        ];
        self.execute(INSERT_USAGE, &params, refused_or_unavailable).await.map(drop)
    }

    async fn usage(&self, filter: &UsageFilter) -> Result<Vec<StoredUsage>, StoreError> {
        // Only the filters that are set: each combination is its own cached statement
        // with a plan that uses the right index.
        let mut conditions = Vec::new();
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        for (column, value) in [("key_id", &filter.key_id), ("model", &filter.model), ("provider", &filter.provider)] {
            if let Some(value) = value {
                params.push(value);
                conditions.push(format!("{column} = ${}", params.len()));
            }
        }
        let bounds = time_bounds(filter.since, filter.until, params.len() + 1, &mut conditions);
        params.extend(bounds.iter().map(|bound| bound as &(dyn ToSql + Sync)));
        let limit = i64::from(filter.limit);
        params.push(&limit);
        let sql = format!(
            "SELECT id, {USAGE_COLUMNS} FROM usage {} ORDER BY id DESC LIMIT ${}",
            where_clause(&conditions),
            params.len()
        );
        Ok(self.query(&sql, &params).await?.iter().map(usage_from_row).collect())
    }

    async fn usage_summary(
        &self,
        group_by: GroupBy,
        since: Option<i64>,
        until: Option<i64>,
    ) -> Result<Vec<UsageSummaryRow>, StoreError> {
        let mut conditions = Vec::new();
        let bounds = time_bounds(since, until, 1, &mut conditions);
        let params: Vec<&(dyn ToSql + Sync)> = bounds.iter().map(|bound| bound as &(dyn ToSql + Sync)).collect();
        let sql = summary_sql(group_by, &where_clause(&conditions));
        let rows = self.query(&sql, &params).await?;
        Ok(rows
            .iter()
            .map(|row| UsageSummaryRow {
                group: row.get::<_, Option<String>>("grp").unwrap_or_else(|| "(none)".to_owned()),
                currency: row.get("currency"),
                requests: count(row, "requests"),
                errors: count(row, "errors"),
                input_tokens: count(row, "input_tokens"),
                output_tokens: count(row, "output_tokens"),
                cached_tokens: count(row, "cached_tokens"),
                reasoning_tokens: count(row, "reasoning_tokens"),
                cost_nanos: row.get("cost_nanos"),
            })
            .collect())
    }

    async fn key_spend(&self, key_id: &str, currency: &str, since: i64) -> Result<i64, StoreError> {
        let sql = "SELECT COALESCE(SUM(cost_nanos), 0)::BIGINT FROM usage \
                   WHERE key_id = $1 AND currency = $2 AND created_at >= $3";
        let row = self.query_opt(sql, &[&key_id, &currency, &since]).await?;
        Ok(row.map_or(0, |row| row.get(0)))
    }

    async fn team_spend(&self, team: &str, currency: &str, since: i64) -> Result<i64, StoreError> {
        let sql = "SELECT COALESCE(SUM(cost_nanos), 0)::BIGINT FROM usage \
                   WHERE team = $1 AND currency = $2 AND created_at >= $3";
        let row = self.query_opt(sql, &[&team, &currency, &since]).await?;
        Ok(row.map_or(0, |row| row.get(0)))
    }

    async fn put_response(&self, response: &StoredResponse) -> Result<(), StoreError> {
        let sql = "INSERT INTO responses (id, key_id, created_at, expires_at, response, input_items) \
                   VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET key_id = EXCLUDED.key_id, \
                   created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at, \
                   response = EXCLUDED.response, input_items = EXCLUDED.input_items";
        let StoredResponse { id, key_id, created_at, expires_at, response, input_items } = response;
        self.execute(sql, &[id, key_id, created_at, expires_at, response, input_items], unavailable).await.map(drop)
    }

    async fn response(&self, id: &str, now: i64) -> Result<Option<StoredResponse>, StoreError> {
        let sql = "SELECT id, key_id, created_at, expires_at, response, input_items FROM responses \
                   WHERE id = $1 AND expires_at >= $2";
        Ok(self.query_opt(sql, &[&id, &now]).await?.map(|row| StoredResponse {
            id: row.get(0),
            key_id: row.get(1),
            created_at: row.get(2),
            expires_at: row.get(3),
            response: row.get(4),
            input_items: row.get(5),
        }))
    }

    async fn delete_response(&self, id: &str, key_id: &str) -> Result<bool, StoreError> {
        let sql = "DELETE FROM responses WHERE id = $1 AND key_id = $2";
        Ok(self.execute(sql, &[&id, &key_id], unavailable).await? > 0)
    }

    async fn purge_responses(&self, now: i64) -> Result<u64, StoreError> {
        self.execute("DELETE FROM responses WHERE expires_at < $1", &[&now], unavailable).await
    }
}
