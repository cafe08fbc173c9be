//! A route as the request path names it: indexes into the configuration in force.

/// One route to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Index into `Config::models`.
    pub model: usize,
    /// Index into that model's routes.
    pub route: usize,
}
