//! SQLite store: one file, WAL mode, migrations applied on open.
//!
//! Built on rusqlite. SQLite calls block, so they run off the async workers: writes on
//! one dedicated, lower-priority thread with its own connection, reads on tokio's
//! blocking pool with another (WAL lets readers run while the ledger writes). Statements are prepared once per connection and cached, and
//! values are bound by reference: a usage record costs SQLite's own work and little
//! more.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};

use crate::{
    Budget, GroupBy, KeyRecord, Store, StoreError, StoredResponse, StoredUsage, TeamRecord, UsageFilter, UsageRecord,
    UsageSummaryRow,
};

/// Schema versions, applied in order; never edit one that has shipped.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001_init.sql")),
    (2, include_str!("migrations/0002_attempt_log.sql")),
    (3, include_str!("migrations/0003_teams.sql")),
    (4, include_str!("migrations/0004_responses.sql")),
    (5, include_str!("migrations/0005_usage_estimated.sql")),
    (6, include_str!("migrations/0006_ledger_unique.sql")),
];

#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: Arc<Mutex<Connection>>,
    /// The same connection as `writer` for an in-memory database.
    reader: Arc<Mutex<Connection>>,
    /// Writes run on one dedicated thread (see [`start_writer`]).
    jobs: std::sync::mpsc::Sender<Job>,
}

type Job = Box<dyn FnOnce() + Send>;

/// The thread that runs every write. Ledger batches are a millisecond or two of CPU
/// each; at a lower CPU priority than the request handlers, they never delay a request
/// where the gateway has only one CPU (a woken handler preempts them), and they still
/// get their fair share of a busy CPU, so the ledger keeps up. The thread ends when
/// the last handle to the store is dropped.
fn start_writer() -> Result<std::sync::mpsc::Sender<Job>, StoreError> {
    let (jobs, queue) = std::sync::mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("llmux-sqlite-writer".to_owned())
        .spawn(move || {
            lower_priority();
            for job in queue {
                job();
            }
        })
        .map_err(|error| StoreError::Unavailable(format!("cannot start the storage writer thread: {error}")))?;
    Ok(jobs)
}

/// Nice 5 for the calling thread: a quarter of a nice-0 thread's CPU share under
/// contention, and woken nice-0 threads preempt it promptly.
#[cfg(target_os = "linux")]
fn lower_priority() {
    if let Err(error) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 5) {
        tracing::debug!(%error, "Could not lower the storage writer's CPU priority.");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

fn unavailable(error: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

/// A ledger write's error: the data refused (a constraint, a value too big), or the
/// store unavailable.
fn refused_or_unavailable(error: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::{ConstraintViolation, TooBig, TypeMismatch};
    match &error {
        rusqlite::Error::SqliteFailure(failure, _)
            if [ConstraintViolation, TooBig, TypeMismatch].contains(&failure.code) =>
        {
            StoreError::Rejected(error.to_string())
        }
        rusqlite::Error::ToSqlConversionFailure(_) => StoreError::Rejected(error.to_string()),
        _ => unavailable(error),
    }
}

fn connect(path: &str, memory: bool) -> Result<Connection, rusqlite::Error> {
    let connection = if memory { Connection::open_in_memory()? } else { Connection::open(path)? };
    connection.busy_timeout(Duration::from_secs(10))?;
    if !memory {
        let _mode: String = connection.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    }
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    connection.set_prepared_statement_cache_capacity(32);
    Ok(connection)
}

impl SqliteStore {
    /// Opens `path` (`:memory:` for a private in-memory database).
    pub async fn open(path: &str) -> Result<SqliteStore, StoreError> {
        let path = path.to_owned();
        blocking(move || {
            let memory = path == ":memory:" || path.is_empty();
            let mut writer = connect(&path, memory).map_err(unavailable)?;
            migrate(&mut writer).map_err(unavailable)?;
            let writer = Arc::new(Mutex::new(writer));
            let reader =
                if memory { writer.clone() } else { Arc::new(Mutex::new(connect(&path, false).map_err(unavailable)?)) };
            Ok(SqliteStore { writer, reader, jobs: start_writer()? })
        })
        .await
    }

    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        let reader = self.reader.clone();
        blocking(move || work(&reader.lock()).map_err(unavailable)).await
    }

    /// Runs `work` in one write transaction; committed if it returns `Ok`.
    async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let writer = self.writer.clone();
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let mut connection = writer.lock();
            let outcome = connection.transaction().map_err(unavailable).and_then(|tx| {
                let value = work(&tx)?;
                tx.commit().map_err(unavailable)?;
                Ok(value)
            });
            let _ = done.send(outcome);
        });
        let stopped = || StoreError::Unavailable("the storage writer thread has stopped".to_owned());
        self.jobs.send(job).map_err(|_| stopped())?;
        result.await.map_err(|_| stopped())?
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| StoreError::Unavailable(format!("storage task failed: {error}")))?
}

fn migrate(connection: &mut Connection) -> Result<(), rusqlite::Error> {
    let tx = connection.transaction()?;
    tx.execute(
        "CREATE TABLE IF NOT EXISTS llmux_schema (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
        [],
    )?;
    let applied: Option<i64> = tx.query_row("SELECT MAX(version) FROM llmux_schema", [], |row| row.get(0))?;
    for (version, sql) in MIGRATIONS {
        if applied.is_some_and(|applied| applied >= *version) {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.execute("INSERT INTO llmux_schema (version, applied_at) VALUES (?1, strftime('%s','now'))", [version])?;
    }
    tx.commit()
}

const USAGE_COLUMNS: usize = 21;
/// Records per multi-row INSERT (21 × 32 = 672 parameters, far below SQLite's limit).
const ROWS_PER_INSERT: usize = 32;

const INSERT_USAGE_HEAD: &str = "INSERT INTO usage (request_id, key_id, model, provider, upstream_model, input_tokens, \
     output_tokens, cached_tokens, reasoning_tokens, cost_nanos, currency, status, error_code, attempts, \
     latency_ms, ttft_ms, created_at, attempt_log, team, usage_estimated, record_id) VALUES ";
const INSERT_USAGE_ROW: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
/// `INSERT ... VALUES (...), (...)` for `rows` rows, built from constants only: no value
/// is ever formatted into SQL. A request already in the ledger is skipped.
fn insert_usage_sql(rows: usize) -> String {
    format!("{INSERT_USAGE_HEAD}{} ON CONFLICT (record_id) DO NOTHING", vec![INSERT_USAGE_ROW; rows].join(", "))
}

static INSERT_USAGE_CHUNK: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| insert_usage_sql(ROWS_PER_INSERT));
static INSERT_USAGE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| insert_usage_sql(1));

macro_rules! select_keys {
    ($tail:literal) => {
        concat!(
            "SELECT id, name, key_hash, key_prefix, team, models, region, budget_nanos, budget_currency, ",
            "budget_period, rpm_limit, tpm_limit, expires_at, metadata, created_at, updated_at, revoked_at, change_seq FROM keys ",
            $tail
        )
    };
}

fn budget_from_row(row: &Row<'_>) -> Result<Option<Budget>, rusqlite::Error> {
    let Some(amount_nanos) = row.get::<_, Option<i64>>("budget_nanos")? else { return Ok(None) };
    Ok(Some(Budget {
        amount_nanos,
        currency: row.get::<_, Option<String>>("budget_currency")?.unwrap_or_else(|| "USD".to_owned()),
        period: row.get::<_, Option<String>>("budget_period")?.unwrap_or_else(|| "monthly".to_owned()),
    }))
}

fn team_from_row(row: &Row<'_>) -> Result<TeamRecord, rusqlite::Error> {
    let models: Option<String> = row.get("models")?;
    let metadata: Option<String> = row.get("metadata")?;
    Ok(TeamRecord {
        name: row.get("name")?,
        models: models.and_then(|text| serde_json::from_str(&text).ok()),
        region: row.get("region")?,
        budget: budget_from_row(row)?,
        rpm_limit: row.get::<_, Option<i64>>("rpm_limit")?.map(|v| v.max(0) as u64),
        tpm_limit: row.get::<_, Option<i64>>("tpm_limit")?.map(|v| v.max(0) as u64),
        metadata: metadata.and_then(|text| serde_json::from_str(&text).ok()),
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
        change_seq: row.get("change_seq")?,
    })
}

fn write_team(tx: &Transaction<'_>, team: &TeamRecord, insert: bool) -> Result<usize, rusqlite::Error> {
    let sql = if insert {
        "INSERT INTO teams (name, models, region, budget_nanos, budget_currency, budget_period, rpm_limit, \
         tpm_limit, metadata, created_at, updated_at, change_seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, \
         ?11, (SELECT COALESCE(MAX(change_seq), 0) + 1 FROM teams) + 0 * ?12)"
    } else {
        "UPDATE teams SET models = ?2, region = ?3, budget_nanos = ?4, budget_currency = ?5, budget_period = ?6, \
         rpm_limit = ?7, tpm_limit = ?8, metadata = ?9, updated_at = ?11, \
         change_seq = (SELECT MAX(change_seq) + 1 FROM teams) WHERE name = ?1 AND created_at = ?10 \
         AND change_seq = ?12"
    };
    let budget = team.budget.as_ref();
    tx.prepare_cached(sql)?.execute(params![
        team.name,
        team.models.as_ref().map(|models| serde_json::to_string(models).unwrap_or_default()),
        team.region,
        budget.map(|budget| budget.amount_nanos),
        budget.map(|budget| budget.currency.as_str()),
        budget.map(|budget| budget.period.as_str()),
        team.rpm_limit.map(to_i64),
        team.tpm_limit.map(to_i64),
        team.metadata.as_ref().map(|metadata| metadata.to_string()),
        team.created_at,
        team.updated_at,
        team.change_seq,
    ])
}

fn key_from_row(row: &Row<'_>) -> Result<KeyRecord, rusqlite::Error> {
    let models: Option<String> = row.get("models")?;
    let metadata: Option<String> = row.get("metadata")?;
    let budget = budget_from_row(row)?;
    Ok(KeyRecord {
        id: row.get("id")?,
        name: row.get("name")?,
        key_hash: row.get("key_hash")?,
        key_prefix: row.get("key_prefix")?,
        team: row.get("team")?,
        models: models.and_then(|text| serde_json::from_str(&text).ok()),
        region: row.get("region")?,
        budget,
        rpm_limit: row.get::<_, Option<i64>>("rpm_limit")?.map(|v| v.max(0) as u64),
        tpm_limit: row.get::<_, Option<i64>>("tpm_limit")?.map(|v| v.max(0) as u64),
        expires_at: row.get("expires_at")?,
        metadata: metadata.and_then(|text| serde_json::from_str(&text).ok()),
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
        revoked_at: row.get("revoked_at")?,
        change_seq: row.get("change_seq")?,
    })
}

fn usage_from_row(row: &Row<'_>) -> Result<StoredUsage, rusqlite::Error> {
    let count = |name: &str| -> Result<u64, rusqlite::Error> { Ok(row.get::<_, i64>(name)?.max(0) as u64) };
    Ok(StoredUsage {
        id: row.get("id")?,
        record: UsageRecord {
            request_id: row.get("request_id")?,
            key_id: row.get("key_id")?,
            team: row.get("team")?,
            model: row.get("model")?,
            provider: row.get("provider")?,
            upstream_model: row.get("upstream_model")?,
            input_tokens: count("input_tokens")?,
            output_tokens: count("output_tokens")?,
            cached_tokens: count("cached_tokens")?,
            reasoning_tokens: count("reasoning_tokens")?,
            cost_nanos: row.get("cost_nanos")?,
            currency: row.get("currency")?,
            status: row.get::<_, i64>("status")?.clamp(0, 999) as u16,
            error_code: row.get("error_code")?,
            attempts: row.get::<_, i64>("attempts")?.max(0) as u32,
            latency_ms: count("latency_ms")?,
            ttft_ms: row.get::<_, Option<i64>>("ttft_ms")?.map(|v| v.max(0) as u64),
            created_at: row.get("created_at")?,
            attempt_log: row.get("attempt_log")?,
            usage_estimated: row.get::<_, Option<bool>>("usage_estimated")?.unwrap_or(false),
            record_id: row.get::<_, Option<String>>("record_id")?.unwrap_or_default(),
        },
    })
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn write_key(tx: &Transaction<'_>, key: &KeyRecord, insert: bool) -> Result<usize, rusqlite::Error> {
    let sql = if insert {
        "INSERT INTO keys (id, name, key_hash, key_prefix, team, models, region, budget_nanos, budget_currency, \
         budget_period, rpm_limit, tpm_limit, expires_at, metadata, created_at, updated_at, revoked_at, change_seq) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
         (SELECT COALESCE(MAX(change_seq), 0) + 1 FROM keys) + 0 * ?18)"
    } else {
        // A revocation is never undone: `revoked_at` keeps the stored value once set.
        "UPDATE keys SET name = ?2, team = ?5, models = ?6, region = ?7, budget_nanos = ?8, budget_currency = ?9, \
         budget_period = ?10, rpm_limit = ?11, tpm_limit = ?12, expires_at = ?13, metadata = ?14, updated_at = ?16, \
         revoked_at = COALESCE(revoked_at, ?17), change_seq = (SELECT MAX(change_seq) + 1 FROM keys) \
         WHERE id = ?1 AND key_hash = ?3 AND key_prefix = ?4 AND created_at = ?15 AND change_seq = ?18"
    };
    let budget = key.budget.as_ref();
    tx.prepare_cached(sql)?.execute(params![
        key.id,
        key.name,
        key.key_hash,
        key.key_prefix,
        key.team,
        key.models.as_ref().map(|models| serde_json::to_string(models).unwrap_or_default()),
        key.region,
        budget.map(|budget| budget.amount_nanos),
        budget.map(|budget| budget.currency.as_str()),
        budget.map(|budget| budget.period.as_str()),
        key.rpm_limit.map(to_i64),
        key.tpm_limit.map(to_i64),
        key.expires_at,
        key.metadata.as_ref().map(|metadata| metadata.to_string()),
        key.created_at,
        key.updated_at,
        key.revoked_at,
        key.change_seq,
    ])
}

fn insert_usage(tx: &Transaction<'_>, records: &[UsageRecord]) -> Result<(), rusqlite::Error> {
    // Full chunks through one cached multi-row statement (SQLite's per-statement work is
    // paid once per chunk), the rest row by row.
    let mut chunks = records.chunks_exact(ROWS_PER_INSERT);
    if chunks.len() > 0 {
        let mut statement = tx.prepare_cached(&INSERT_USAGE_CHUNK)?;
        for chunk in chunks.by_ref() {
            for (row, record) in chunk.iter().enumerate() {
                bind_usage(&mut statement, row * USAGE_COLUMNS, record)?;
            }
            statement.raw_execute()?;
        }
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut statement = tx.prepare_cached(&INSERT_USAGE)?;
        for record in rest {
            bind_usage(&mut statement, 0, record)?;
            statement.raw_execute()?;
        }
    }
    Ok(())
}

/// Binds one record's columns at parameter positions `offset + 1 ..= offset + 21`.
fn bind_usage(statement: &mut rusqlite::Statement<'_>, offset: usize, record: &UsageRecord) -> rusqlite::Result<()> {
    // No id (records not from the ledger writer): NULL, never a conflict.
    let record_id = Some(record.record_id.as_str()).filter(|id| !id.is_empty());
    let values: [&dyn rusqlite::ToSql; USAGE_COLUMNS] = [
        &record.request_id,
        &record.key_id,
        &record.model,
        &record.provider,
        &record.upstream_model,
        &to_i64(record.input_tokens),
        &to_i64(record.output_tokens),
        &to_i64(record.cached_tokens),
        &to_i64(record.reasoning_tokens),
        &record.cost_nanos,
        &record.currency,
        &record.status,
        &record.error_code,
        &record.attempts,
        &to_i64(record.latency_ms),
        &record.ttft_ms.map(to_i64),
        &record.created_at,
        &record.attempt_log,
        &record.team,
        &record.usage_estimated,
        &record_id,
    ];
    for (index, value) in values.iter().enumerate() {
        statement.raw_bind_parameter(offset + index + 1, value)?;
    }
    Ok(())
}

fn is_unique_violation(error: &rusqlite::Error) -> bool {
    matches!(error, rusqlite::Error::SqliteFailure(failure, _) if failure.code == rusqlite::ErrorCode::ConstraintViolation)
}

fn collect<T>(
    statement: &mut rusqlite::CachedStatement<'_>,
    params: impl rusqlite::Params,
    map: impl FnMut(&Row<'_>) -> Result<T, rusqlite::Error>,
) -> Result<Vec<T>, rusqlite::Error> {
    statement.query_map(params, map)?.collect()
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|connection| connection.query_row("SELECT 1", [], |_| Ok(()))).await
    }

    async fn create_key(&self, key: &KeyRecord) -> Result<(), StoreError> {
        let key = key.clone();
        self.write(move |tx| match write_key(tx, &key, true) {
            Ok(_) => Ok(()),
            Err(error) if is_unique_violation(&error) => Err(StoreError::Conflict),
            Err(error) => Err(unavailable(error)),
        })
        .await
    }

    async fn update_key(&self, key: &KeyRecord) -> Result<bool, StoreError> {
        let key = key.clone();
        self.write(move |tx| write_key(tx, &key, false).map(|changed| changed > 0).map_err(unavailable)).await
    }

    async fn key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let id = id.to_owned();
        self.read(move |connection| connection.prepare_cached(KEY_BY_ID)?.query_row([id], key_from_row).optional())
            .await
    }

    async fn key_by_hash(&self, hash: &str) -> Result<Option<KeyRecord>, StoreError> {
        let hash = hash.to_owned();
        self.read(move |connection| connection.prepare_cached(KEY_BY_HASH)?.query_row([hash], key_from_row).optional())
            .await
    }

    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.read(|connection| collect(&mut connection.prepare_cached(LIST_KEYS)?, [], key_from_row)).await
    }

    async fn keys_changed_since(&self, after: i64) -> Result<Vec<KeyRecord>, StoreError> {
        self.read(move |connection| collect(&mut connection.prepare_cached(KEYS_SINCE)?, [after], key_from_row)).await
    }

    async fn create_team(&self, team: &TeamRecord) -> Result<(), StoreError> {
        let team = team.clone();
        self.write(move |tx| match write_team(tx, &team, true) {
            Ok(_) => Ok(()),
            Err(error) if is_unique_violation(&error) => Err(StoreError::Conflict),
            Err(error) => Err(unavailable(error)),
        })
        .await
    }

    async fn update_team(&self, team: &TeamRecord) -> Result<bool, StoreError> {
        let team = team.clone();
        self.write(move |tx| write_team(tx, &team, false).map(|changed| changed > 0).map_err(unavailable)).await
    }

    async fn team(&self, name: &str) -> Result<Option<TeamRecord>, StoreError> {
        let name = name.to_owned();
        self.read(move |connection| {
            connection.prepare_cached(TEAM_BY_NAME)?.query_row([name], team_from_row).optional()
        })
        .await
    }

    async fn list_teams(&self) -> Result<Vec<TeamRecord>, StoreError> {
        self.read(|connection| collect(&mut connection.prepare_cached(LIST_TEAMS)?, [], team_from_row)).await
    }

    async fn teams_updated_since(&self, since: i64) -> Result<Vec<TeamRecord>, StoreError> {
        self.read(move |connection| collect(&mut connection.prepare_cached(TEAMS_SINCE)?, [since], team_from_row)).await
    }

    async fn delete_team(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_owned();
        self.write(move |tx| {
            let deleted = tx
                .prepare_cached("DELETE FROM teams WHERE name = ?1")
                .and_then(|mut statement| statement.execute([name]));
            deleted.map(|deleted| deleted > 0).map_err(unavailable)
        })
        .await
    }

    async fn insert_usage(&self, records: Arc<[UsageRecord]>) -> Result<(), StoreError> {
        self.write(move |tx| insert_usage(tx, &records).map_err(refused_or_unavailable)).await
    }

    async fn usage(&self, filter: &UsageFilter) -> Result<Vec<StoredUsage>, StoreError> {
        let filter = filter.clone();
        self.read(move |connection| {
            let mut statement = connection.prepare_cached(
                "SELECT * FROM usage WHERE (?1 IS NULL OR key_id = ?1) AND (?2 IS NULL OR model = ?2) \
                 AND (?3 IS NULL OR provider = ?3) AND (?4 IS NULL OR created_at >= ?4) \
                 AND (?5 IS NULL OR created_at < ?5) ORDER BY id DESC LIMIT ?6",
            )?;
            let params =
                params![filter.key_id, filter.model, filter.provider, filter.since, filter.until, filter.limit];
            collect(&mut statement, params, usage_from_row)
        })
        .await
    }

    async fn key_spend(&self, key_id: &str, currency: &str, since: i64) -> Result<i64, StoreError> {
        let (key_id, currency) = (key_id.to_owned(), currency.to_owned());
        self.read(move |connection| {
            connection
                .prepare_cached(
                    "SELECT COALESCE(SUM(cost_nanos), 0) FROM usage WHERE key_id = ?1 AND currency = ?2 AND created_at >= ?3",
                )?
                .query_row(params![key_id, currency, since], |row| row.get(0))
        })
        .await
    }

    async fn team_spend(&self, team: &str, currency: &str, since: i64) -> Result<i64, StoreError> {
        let (team, currency) = (team.to_owned(), currency.to_owned());
        self.read(move |connection| {
            connection
                .prepare_cached(
                    "SELECT COALESCE(SUM(cost_nanos), 0) FROM usage WHERE team = ?1 AND currency = ?2 AND created_at >= ?3",
                )?
                .query_row(params![team, currency, since], |row| row.get(0))
        })
        .await
    }

    async fn put_response(&self, response: &StoredResponse) -> Result<(), StoreError> {
        let response = response.clone();
        self.write(move |tx| {
            let sql = "INSERT OR REPLACE INTO responses (id, key_id, created_at, expires_at, response, input_items) \
                       VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
            let StoredResponse { id, key_id, created_at, expires_at, response, input_items } = response;
            tx.prepare_cached(sql)
                .and_then(|mut statement| {
                    statement.execute(params![id, key_id, created_at, expires_at, response, input_items])
                })
                .map(drop)
                .map_err(unavailable)
        })
        .await
    }

    async fn response(&self, id: &str, now: i64) -> Result<Option<StoredResponse>, StoreError> {
        let id = id.to_owned();
        self.read(move |connection| {
            let sql = "SELECT id, key_id, created_at, expires_at, response, input_items FROM responses \
                       WHERE id = ?1 AND expires_at >= ?2";
            connection
                .prepare_cached(sql)?
                .query_row(params![id, now], |row| {
                    Ok(StoredResponse {
                        id: row.get(0)?,
                        key_id: row.get(1)?,
                        created_at: row.get(2)?,
                        expires_at: row.get(3)?,
                        response: row.get(4)?,
                        input_items: row.get(5)?,
                    })
                })
                .optional()
        })
        .await
    }

    async fn delete_response(&self, id: &str, key_id: &str) -> Result<bool, StoreError> {
        let (id, key_id) = (id.to_owned(), key_id.to_owned());
        self.write(move |tx| {
            let deleted = tx
                .prepare_cached("DELETE FROM responses WHERE id = ?1 AND key_id = ?2")
                .and_then(|mut statement| statement.execute([id, key_id]));
            deleted.map(|deleted| deleted > 0).map_err(unavailable)
        })
        .await
    }

    async fn purge_responses(&self, now: i64) -> Result<u64, StoreError> {
        self.write(move |tx| {
            let deleted = tx
                .prepare_cached("DELETE FROM responses WHERE expires_at < ?1")
                .and_then(|mut statement| statement.execute([now]));
            deleted.map(|deleted| deleted as u64).map_err(unavailable)
        })
        .await
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
            GroupBy::Team => SUMMARY_BY_TEAM,
        };
        self.read(move |connection| {
            collect(&mut connection.prepare_cached(sql)?, params![since, until], |row| {
                let count = |name: &str| -> Result<u64, rusqlite::Error> { Ok(row.get::<_, i64>(name)?.max(0) as u64) };
                Ok(UsageSummaryRow {
                    group: row.get::<_, Option<String>>("grp")?.unwrap_or_else(|| "(none)".to_owned()),
                    currency: row.get("currency")?,
                    requests: count("requests")?,
                    errors: count("errors")?,
                    input_tokens: count("input_tokens")?,
                    output_tokens: count("output_tokens")?,
                    cached_tokens: count("cached_tokens")?,
                    reasoning_tokens: count("reasoning_tokens")?,
                    cost_nanos: row.get("cost_nanos")?,
                })
            })
        })
        .await
    }
}

const LIST_KEYS: &str = select_keys!("ORDER BY created_at, id");
const KEYS_SINCE: &str = select_keys!("WHERE change_seq > ? ORDER BY change_seq");
const KEY_BY_ID: &str = select_keys!("WHERE id = ?");
const KEY_BY_HASH: &str = select_keys!("WHERE key_hash = ?");

macro_rules! select_teams {
    ($tail:literal) => {
        concat!(
            "SELECT name, models, region, budget_nanos, budget_currency, budget_period, rpm_limit, tpm_limit, ",
            "metadata, created_at, updated_at, change_seq FROM teams ",
            $tail
        )
    };
}

const LIST_TEAMS: &str = select_teams!("ORDER BY name");
const TEAMS_SINCE: &str = select_teams!("WHERE updated_at >= ? ORDER BY updated_at, name");
const TEAM_BY_NAME: &str = select_teams!("WHERE name = ?");

/// Totals grouped on `$group`, then labelled by `$label` (a function of the group's
/// `grp`), so a label costs once per group rather than once per record.
macro_rules! summary_sql {
    ($group:literal) => {
        summary_sql!($group, "grp")
    };
    ($group:literal, $label:literal) => {
        concat!(
            "SELECT ", $label, " AS grp, currency, requests, errors, input_tokens, output_tokens, cached_tokens, ",
            "reasoning_tokens, cost_nanos FROM (",
            "SELECT ", $group, " AS grp, currency, COUNT(*) AS requests, SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END) AS errors, ",
            "COALESCE(SUM(input_tokens), 0) AS input_tokens, COALESCE(SUM(output_tokens), 0) AS output_tokens, ",
            "COALESCE(SUM(cached_tokens), 0) AS cached_tokens, COALESCE(SUM(reasoning_tokens), 0) AS reasoning_tokens, ",
            "COALESCE(SUM(cost_nanos), 0) AS cost_nanos FROM usage ",
            "WHERE (?1 IS NULL OR created_at >= ?1) AND (?2 IS NULL OR created_at < ?2) ",
            "GROUP BY grp, currency) ORDER BY grp, currency"
        )
    };
}

// `+key_id`: not the bare column, so a summary over the whole ledger scans the table
// and sorts (0.6 s for a million records) instead of walking the (key_id, created_at)
// index and reading each record at random (1.2 s).
const SUMMARY_BY_KEY: &str = summary_sql!("+key_id");
const SUMMARY_BY_MODEL: &str = summary_sql!("model");
const SUMMARY_BY_PROVIDER: &str = summary_sql!("provider");
const SUMMARY_BY_TEAM: &str = summary_sql!("team");
// Grouped on the day's number (floor of the Unix second / 86,400), formatted per group.
const SUMMARY_BY_DAY: &str = summary_sql!(
    "(created_at / 1000 - ((created_at / 1000) % 86400 + 86400) % 86400) / 86400",
    "strftime('%Y-%m-%d', grp * 86400, 'unixepoch')"
);
