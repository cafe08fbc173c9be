//! Every environment variable llmux reads, in one place.

/// The admin master key, used when the config file sets none.
pub const LLMUX_MASTER_KEY: &str = "LLMUX_MASTER_KEY";
/// Path of the config file when `--config` is not given.
pub const LLMUX_CONFIG: &str = "LLMUX_CONFIG";
/// Log filter (`info`, `llmux=debug`, ...).
pub const LLMUX_LOG: &str = "LLMUX_LOG";
/// PostgreSQL URL for the tests (else they use the local one; `llmux_testkit::services`).
pub const LLMUX_TEST_POSTGRES_URL: &str = "LLMUX_TEST_POSTGRES_URL";
/// Redis URL for the tests (else they use the local one; `llmux_testkit::services`).
pub const LLMUX_TEST_REDIS_URL: &str = "LLMUX_TEST_REDIS_URL";
