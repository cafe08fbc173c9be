//! Canonical vocabulary of llmux: the types every other crate speaks.
//!
//! Pure data: no I/O, no clock, no async. Wire formats (`llmux-wire`) convert to and
//! from these types; the gateway only ever sees these.
//!
//! - [`money`]: integer money (nano-units of a currency) and per-million-token prices.
//! - [`usage`]: token counts of one request.
//! - [`region`]: ISO 3166-1 alpha-2 regions and the include/exclude sets providers declare.
//! - [`chat`]: the canonical chat request, response and stream events.

pub mod chat;
pub mod money;
pub mod region;
pub mod usage;

pub use money::{Currency, Money, Price};
pub use region::{Region, RegionSet};
pub use usage::Usage;

/// A secret string (provider key, master key) whose `Debug` and `Display` redact it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The plain value; call only where it is sent (an upstream header) or compared.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}
