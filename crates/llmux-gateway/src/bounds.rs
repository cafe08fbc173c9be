//! What one request may ask for, checked right after it is parsed: a hostile body must
//! not make llmux (or its in-process mock) do unbounded work. Fixed limits of the
//! OpenAI API itself (`n`, embeddings inputs) are checked by the parser
//! (`llmux_wire::openai::peek`); these are the ones every dialect shares.

use llmux_config::ServerConfig;
use llmux_wire::DecodeError;

/// The longest model name a request may carry, in bytes.
pub const MAX_MODEL_NAME_BYTES: usize = 256;

/// The name metrics and usage records carry for a model name that matches no
/// configured model: client-chosen names never become label values or ledger text.
pub const UNKNOWN_MODEL: &str = "(unknown)";

/// How many messages and tools a request holds.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Shape {
    pub messages: usize,
    pub tools: usize,
}

/// A request's model name and shape within the server's limits, or the 400 naming the
/// limit.
pub(crate) fn check(server: &ServerConfig, model: &str, shape: Shape) -> Result<(), DecodeError> {
    check_model(model)?;
    if shape.messages > server.max_messages {
        return Err(DecodeError::new(
            Some("messages"),
            format!(
                "the request holds {} messages; this gateway accepts at most {} (server.max_messages)",
                shape.messages, server.max_messages
            ),
        ));
    }
    if shape.tools > server.max_tools {
        return Err(DecodeError::new(
            Some("tools"),
            format!(
                "the request offers {} tools; this gateway accepts at most {} (server.max_tools)",
                shape.tools, server.max_tools
            ),
        ));
    }
    Ok(())
}

/// A model name: at most [`MAX_MODEL_NAME_BYTES`], no control characters.
pub(crate) fn check_model(model: &str) -> Result<(), DecodeError> {
    if model.len() > MAX_MODEL_NAME_BYTES {
        return Err(DecodeError::new(
            Some("model"),
            format!("`model` is {} bytes long; at most {MAX_MODEL_NAME_BYTES} are accepted", model.len()),
        ));
    }
    if model.chars().any(char::is_control) {
        return Err(DecodeError::new(Some("model"), "`model` must not contain control characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(messages: usize, tools: usize) -> ServerConfig {
        let mut config = llmux_config::default_config(&|_| None).expect("the default config resolves").server;
        config.max_messages = messages;
        config.max_tools = tools;
        config
    }

    #[test]
    fn model_names_are_bounded_and_printable() {
        assert!(check_model("gpt-4o").is_ok());
        assert!(check_model(&"m".repeat(MAX_MODEL_NAME_BYTES)).is_ok());
        let long = check_model(&"m".repeat(MAX_MODEL_NAME_BYTES + 1)).unwrap_err();
        assert_eq!(long.param.as_deref(), Some("model"));
        assert!(long.message.contains("257 bytes"), "{}", long.message);
        for bad in ["a\u{0}b", "a\nb", "a\u{7f}", "a\u{9b}"] {
            assert!(check_model(bad).is_err(), "{bad:?}");
        }
        assert!(check_model("通义千问-max").is_ok());
    }

    #[test]
    fn counts_over_the_limits_name_them() {
        let server = server(3, 1);
        assert!(check(&server, "m", Shape { messages: 3, tools: 1 }).is_ok());
        let messages = check(&server, "m", Shape { messages: 4, tools: 0 }).unwrap_err();
        assert_eq!(messages.param.as_deref(), Some("messages"));
        assert!(messages.message.contains("server.max_messages"));
        let tools = check(&server, "m", Shape { messages: 1, tools: 2 }).unwrap_err();
        assert_eq!(tools.param.as_deref(), Some("tools"));
        assert!(tools.message.contains("at most 1"));
    }
}
