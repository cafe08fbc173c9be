//! SQLite store: one file, WAL mode, migrations applied on open.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};

use crate::{Budget, GroupBy, KeyRecord, Store, StoreError, StoredUsage, UsageFilter, UsageRecord, UsageSummaryRow};

/// Schema versions, applied in order; never edit one that has shipped.
const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("migrations/0001_init.sql"))];

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

fn unavailable(error: sqlx::Error) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

impl SqliteStore {
    /// Opens `path` (`:memory:` for a private in-memory database).
    pub async fn open(path: &str) -> Result<SqliteStore, StoreError> {
        let memory = path == ":memory:" || path.is_empty();
        let options = if memory {
            SqliteConnectOptions::from_str("sqlite::memory:").map_err(unavailable)?
        } else {
            SqliteConnectOptions::new().filename(path).create_if_missing(true)
        }
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            // An in-memory database exists once per connection: keep exactly one.
            .max_connections(if memory { 1 } else { 4 })
            .min_connections(if memory { 1 } else { 0 })
            .idle_timeout(if memory { None } else { Some(Duration::from_secs(600)) })
            .max_lifetime(if memory { None } else { Some(Duration::from_secs(3600)) })
            .connect_with(options)
            .await
            .map_err(unavailable)?;
        let store = SqliteStore { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS llmux_schema (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
        )
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        let applied: Option<i64> = sqlx::query("SELECT MAX(version) AS v FROM llmux_schema")
            .fetch_one(&mut *tx)
            .await
            .map_err(unavailable)?
            .try_get("v")
            .map_err(unavailable)?;
        for (version, sql) in MIGRATIONS {
            if applied.is_some_and(|applied| applied >= *version) {
                continue;
            }
            sqlx::raw_sql(sqlx::AssertSqlSafe(*sql)).execute(&mut *tx).await.map_err(unavailable)?;
            sqlx::query("INSERT INTO llmux_schema (version, applied_at) VALUES (?, strftime('%s','now'))")
                .bind(version)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)
    }
}

/// Records per INSERT statement (17 parameters each, far below SQLite's limit).
const ROWS_PER_INSERT: usize = 64;

/// `INSERT INTO usage (...) VALUES (?, ...), (?, ...)` for `rows` rows. Built only from
/// constants: no value is ever formatted into SQL.
fn insert_usage_sql(rows: usize) -> String {
    const HEAD: &str = "INSERT INTO usage (request_id, key_id, model, provider, upstream_model, input_tokens, \
         output_tokens, cached_tokens, reasoning_tokens, cost_nanos, currency, status, error_code, attempts, \
         latency_ms, ttft_ms, created_at) VALUES ";
    const ROW: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    let mut sql = String::with_capacity(HEAD.len() + rows * (ROW.len() + 2));
    sql.push_str(HEAD);
    for index in 0..rows {
        if index > 0 {
            sql.push_str(", ");
        }
        sql.push_str(ROW);
    }
    sql
}

macro_rules! select_keys {
    ($tail:literal) => {
        concat!(
            "SELECT id, name, key_hash, key_prefix, team, models, region, budget_nanos, budget_currency, ",
            "budget_period, rpm_limit, tpm_limit, expires_at, metadata, created_at, updated_at, revoked_at FROM keys ",
            $tail
        )
    };
}

fn key_from_row(row: &SqliteRow) -> Result<KeyRecord, sqlx::Error> {
    let models: Option<String> = row.try_get("models")?;
    let metadata: Option<String> = row.try_get("metadata")?;
    let budget_nanos: Option<i64> = row.try_get("budget_nanos")?;
    let budget = match budget_nanos {
        Some(amount_nanos) => Some(Budget {
            amount_nanos,
            currency: row.try_get::<Option<String>, _>("budget_currency")?.unwrap_or_else(|| "USD".to_owned()),
            period: row.try_get::<Option<String>, _>("budget_period")?.unwrap_or_else(|| "monthly".to_owned()),
        }),
        None => None,
    };
    Ok(KeyRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        key_hash: row.try_get("key_hash")?,
        key_prefix: row.try_get("key_prefix")?,
        team: row.try_get("team")?,
        models: models.and_then(|text| serde_json::from_str(&text).ok()),
        region: row.try_get("region")?,
        budget,
        rpm_limit: row.try_get::<Option<i64>, _>("rpm_limit")?.map(|v| v.max(0) as u64),
        tpm_limit: row.try_get::<Option<i64>, _>("tpm_limit")?.map(|v| v.max(0) as u64),
        expires_at: row.try_get("expires_at")?,
        metadata: metadata.and_then(|text| serde_json::from_str(&text).ok()),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

fn usage_from_row(row: &SqliteRow) -> Result<StoredUsage, sqlx::Error> {
    let count = |name: &str| -> Result<u64, sqlx::Error> { Ok(row.try_get::<i64, _>(name)?.max(0) as u64) };
    Ok(StoredUsage {
        id: row.try_get("id")?,
        record: UsageRecord {
            request_id: row.try_get("request_id")?,
            key_id: row.try_get("key_id")?,
            model: row.try_get("model")?,
            provider: row.try_get("provider")?,
            upstream_model: row.try_get("upstream_model")?,
            input_tokens: count("input_tokens")?,
            output_tokens: count("output_tokens")?,
            cached_tokens: count("cached_tokens")?,
            reasoning_tokens: count("reasoning_tokens")?,
            cost_nanos: row.try_get("cost_nanos")?,
            currency: row.try_get("currency")?,
            status: row.try_get::<i64, _>("status")?.clamp(0, 999) as u16,
            error_code: row.try_get("error_code")?,
            attempts: row.try_get::<i64, _>("attempts")?.max(0) as u32,
            latency_ms: count("latency_ms")?,
            ttft_ms: row.try_get::<Option<i64>, _>("ttft_ms")?.map(|v| v.max(0) as u64),
            created_at: row.try_get("created_at")?,
        },
    })
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

async fn write_key(tx: &mut Transaction<'_, Sqlite>, key: &KeyRecord, insert: bool) -> Result<u64, sqlx::Error> {
    let sql = if insert {
        "INSERT INTO keys (id, name, key_hash, key_prefix, team, models, region, budget_nanos, budget_currency, \
         budget_period, rpm_limit, tpm_limit, expires_at, metadata, created_at, updated_at, revoked_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
    } else {
        "UPDATE keys SET name = ?2, team = ?5, models = ?6, region = ?7, budget_nanos = ?8, budget_currency = ?9, \
         budget_period = ?10, rpm_limit = ?11, tpm_limit = ?12, expires_at = ?13, metadata = ?14, updated_at = ?16, \
         revoked_at = ?17 WHERE id = ?1 AND key_hash = ?3 AND key_prefix = ?4 AND created_at = ?15"
    };
    let result = sqlx::query(sql)
        .bind(&key.id)
        .bind(&key.name)
        .bind(&key.key_hash)
        .bind(&key.key_prefix)
        .bind(&key.team)
        .bind(key.models.as_ref().map(|models| serde_json::to_string(models).unwrap_or_default()))
        .bind(&key.region)
        .bind(key.budget.as_ref().map(|budget| budget.amount_nanos))
        .bind(key.budget.as_ref().map(|budget| budget.currency.clone()))
        .bind(key.budget.as_ref().map(|budget| budget.period.clone()))
        .bind(key.rpm_limit.map(to_i64))
        .bind(key.tpm_limit.map(to_i64))
        .bind(key.expires_at)
        .bind(key.metadata.as_ref().map(|metadata| metadata.to_string()))
        .bind(key.created_at)
        .bind(key.updated_at)
        .bind(key.revoked_at)
        .execute(&mut **tx)
        .await?;
    Ok(result.rows_affected())
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ()).map_err(unavailable)
    }

    async fn create_key(&self, key: &KeyRecord) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        match write_key(&mut tx, key, true).await {
            Ok(_) => tx.commit().await.map_err(unavailable),
            Err(sqlx::Error::Database(error)) if error.is_unique_violation() => Err(StoreError::Conflict),
            Err(error) => Err(unavailable(error)),
        }
    }

    async fn update_key(&self, key: &KeyRecord) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let changed = write_key(&mut tx, key, false).await.map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(changed > 0)
    }

    async fn key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let row = sqlx::query(KEY_BY_ID).bind(id).fetch_optional(&self.pool).await.map_err(unavailable)?;
        row.as_ref().map(key_from_row).transpose().map_err(unavailable)
    }

    async fn key_by_hash(&self, hash: &str) -> Result<Option<KeyRecord>, StoreError> {
        let row = sqlx::query(KEY_BY_HASH).bind(hash).fetch_optional(&self.pool).await.map_err(unavailable)?;
        row.as_ref().map(key_from_row).transpose().map_err(unavailable)
    }

    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = sqlx::query(LIST_KEYS).fetch_all(&self.pool).await.map_err(unavailable)?;
        rows.iter().map(key_from_row).collect::<Result<_, _>>().map_err(unavailable)
    }

    async fn keys_updated_since(&self, since: i64) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = sqlx::query(KEYS_SINCE).bind(since).fetch_all(&self.pool).await.map_err(unavailable)?;
        rows.iter().map(key_from_row).collect::<Result<_, _>>().map_err(unavailable)
    }

    async fn insert_usage(&self, records: &[UsageRecord]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        // Multi-row inserts: one statement per ROWS_PER_INSERT records.
        for rows in records.chunks(ROWS_PER_INSERT) {
            let sql = insert_usage_sql(rows.len());
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for record in rows {
                query = query
                    .bind(&record.request_id)
                    .bind(&record.key_id)
                    .bind(&record.model)
                    .bind(&record.provider)
                    .bind(&record.upstream_model)
                    .bind(to_i64(record.input_tokens))
                    .bind(to_i64(record.output_tokens))
                    .bind(to_i64(record.cached_tokens))
                    .bind(to_i64(record.reasoning_tokens))
                    .bind(record.cost_nanos)
                    .bind(&record.currency)
                    .bind(i64::from(record.status))
                    .bind(&record.error_code)
                    .bind(i64::from(record.attempts))
                    .bind(to_i64(record.latency_ms))
                    .bind(record.ttft_ms.map(to_i64))
                    .bind(record.created_at);
            }
            query.execute(&mut *tx).await.map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)
    }

    async fn usage(&self, filter: &UsageFilter) -> Result<Vec<StoredUsage>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM usage WHERE (?1 IS NULL OR key_id = ?1) AND (?2 IS NULL OR model = ?2) \
             AND (?3 IS NULL OR provider = ?3) AND (?4 IS NULL OR created_at >= ?4) AND (?5 IS NULL OR created_at < ?5) \
             ORDER BY id DESC LIMIT ?6",
        )
        .bind(&filter.key_id)
        .bind(&filter.model)
        .bind(&filter.provider)
        .bind(filter.since)
        .bind(filter.until)
        .bind(i64::from(filter.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter().map(usage_from_row).collect::<Result<_, _>>().map_err(unavailable)
    }

    async fn usage_summary(
        &self,
        group_by: GroupBy,
        since: Option<i64>,
        until: Option<i64>,
    ) -> Result<Vec<UsageSummaryRow>, StoreError> {
        let sql = match group_by {
            GroupBy::Key => SUMMARY_BY_KEY,
            GroupBy::Model => SUMMARY_BY_MODEL,
            GroupBy::Provider => SUMMARY_BY_PROVIDER,
            GroupBy::Day => SUMMARY_BY_DAY,
        };
        let rows = sqlx::query(sql).bind(since).bind(until).fetch_all(&self.pool).await.map_err(unavailable)?;
        rows.iter()
            .map(|row| -> Result<UsageSummaryRow, sqlx::Error> {
                let count = |name: &str| -> Result<u64, sqlx::Error> { Ok(row.try_get::<i64, _>(name)?.max(0) as u64) };
                Ok(UsageSummaryRow {
                    group: row.try_get::<Option<String>, _>("grp")?.unwrap_or_else(|| "(none)".to_owned()),
                    currency: row.try_get("currency")?,
                    requests: count("requests")?,
                    errors: count("errors")?,
                    input_tokens: count("input_tokens")?,
                    output_tokens: count("output_tokens")?,
                    cached_tokens: count("cached_tokens")?,
                    reasoning_tokens: count("reasoning_tokens")?,
                    cost_nanos: row.try_get("cost_nanos")?,
                })
            })
            .collect::<Result<_, _>>()
            .map_err(unavailable)
    }
}

const LIST_KEYS: &str = select_keys!("ORDER BY created_at, id");
const KEYS_SINCE: &str = select_keys!("WHERE updated_at >= ?");
const KEY_BY_ID: &str = select_keys!("WHERE id = ?");
const KEY_BY_HASH: &str = select_keys!("WHERE key_hash = ?");

macro_rules! summary_sql {
    ($group:literal) => {
        concat!(
            "SELECT ", $group, " AS grp, currency, COUNT(*) AS requests, SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END) AS errors, ",
            "COALESCE(SUM(input_tokens), 0) AS input_tokens, COALESCE(SUM(output_tokens), 0) AS output_tokens, ",
            "COALESCE(SUM(cached_tokens), 0) AS cached_tokens, COALESCE(SUM(reasoning_tokens), 0) AS reasoning_tokens, ",
            "COALESCE(SUM(cost_nanos), 0) AS cost_nanos FROM usage ",
            "WHERE (?1 IS NULL OR created_at >= ?1) AND (?2 IS NULL OR created_at < ?2) ",
            "GROUP BY grp, currency ORDER BY grp, currency"
        )
    };
}

const SUMMARY_BY_KEY: &str = summary_sql!("key_id");
const SUMMARY_BY_MODEL: &str = summary_sql!("model");
const SUMMARY_BY_PROVIDER: &str = summary_sql!("provider");
const SUMMARY_BY_DAY: &str = summary_sql!("strftime('%Y-%m-%d', created_at / 1000, 'unixepoch')");

#[cfg(test)]
mod tests;
