//! The client dialects: the wire formats applications speak to llmux.

/// A wire format llmux serves to clients. A provider adapter names the one it takes
/// natively (bodies forwarded with only `model` rewritten), if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// OpenAI: Chat Completions, legacy Completions, Embeddings.
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
}
