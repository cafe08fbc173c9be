//! Where tests find PostgreSQL and Redis.
//!
//! Both run on every developer's and CI's machine (the project's policy; `.ci/run`
//! starts them where they are not up), so a test that needs one never passes without
//! it: [`postgres_url`] and [`redis_url`] give the URL in `LLMUX_TEST_POSTGRES_URL` or
//! `LLMUX_TEST_REDIS_URL` when it is set, else the local default when something answers
//! at its address, and otherwise fail the test, saying which service is missing and how
//! to point the tests at one.

use std::net::{SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::time::Duration;

/// The variable naming the PostgreSQL the tests use (as in `llmux_config::env_vars`).
pub const POSTGRES_URL_VAR: &str = "LLMUX_TEST_POSTGRES_URL";
/// The variable naming the Redis the tests use (as in `llmux_config::env_vars`).
pub const REDIS_URL_VAR: &str = "LLMUX_TEST_REDIS_URL";
/// The PostgreSQL the tests use when [`POSTGRES_URL_VAR`] is not set.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// The Redis the tests use when [`REDIS_URL_VAR`] is not set.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// How long the probe of a default address may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// The PostgreSQL for this test: `$LLMUX_TEST_POSTGRES_URL`, else the local default when
/// it answers. Panics (the test fails) when there is neither.
pub fn postgres_url() -> String {
    static LOCAL: OnceLock<Result<(), String>> = OnceLock::new();
    service_url("PostgreSQL", POSTGRES_URL_VAR, DEFAULT_POSTGRES_URL, "127.0.0.1:5432", &LOCAL)
}

/// The Redis for this test: `$LLMUX_TEST_REDIS_URL`, else the local default when it
/// answers. Panics (the test fails) when there is neither.
pub fn redis_url() -> String {
    static LOCAL: OnceLock<Result<(), String>> = OnceLock::new();
    service_url("Redis", REDIS_URL_VAR, DEFAULT_REDIS_URL, "127.0.0.1:6379", &LOCAL)
}

fn service_url(
    service: &str,
    var: &str,
    default_url: &str,
    default_address: &str,
    local: &OnceLock<Result<(), String>>,
) -> String {
    if let Ok(url) = std::env::var(var)
        && !url.is_empty()
    {
        return url;
    }
    // Probed once per test binary; a service that is down stays down for its tests.
    let probe = local.get_or_init(|| {
        let address: SocketAddr = default_address.parse().expect("a socket address");
        TcpStream::connect_timeout(&address, PROBE_TIMEOUT).map(drop).map_err(|error| error.to_string())
    });
    match probe {
        Ok(()) => default_url.to_owned(),
        Err(error) => panic!(
            "this test needs {service}, and none was found: {var} is not set and nothing answers at \
             {default_address} ({error}). Start {service} there ({default_url}, as .ci/run does), or set \
             {var} to the URL of one."
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A variable no one sets, so that the local address is what decides.
    const UNSET: &str = "LLMUX_TESTKIT_NEVER_SET";

    #[test]
    fn a_local_service_that_answers_is_used() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let url = service_url("Redis", UNSET, "redis://local", &address, &OnceLock::new());
        assert_eq!(url, "redis://local");
    }

    #[test]
    #[should_panic(expected = "this test needs Redis, and none was found: LLMUX_TESTKIT_NEVER_SET is not set \
                               and nothing answers at 127.0.0.1:1")]
    fn a_missing_service_fails_the_test_and_says_how_to_name_one() {
        // Nothing listens on port 1.
        service_url("Redis", UNSET, "redis://127.0.0.1:1", "127.0.0.1:1", &OnceLock::new());
    }
}
