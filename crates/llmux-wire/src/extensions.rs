//! How the upstream encoders report the extension keys (request fields without a
//! canonical field) they drop.

/// Keys reported by their own name when dropped: those the client decoders are known to
/// fill (OpenAI and Anthropic request fields). The keys an encoder maps are among them,
/// for when their value cannot be used.
const KNOWN: &[&str] = &[
    "audio",
    "cache_control",
    "container",
    "context_management",
    "frequency_penalty",
    "function_call",
    "functions",
    "inference_geo",
    "logit_bias",
    "logprobs",
    "mcp_servers",
    "metadata",
    "modalities",
    "output_config",
    "parallel_tool_calls",
    "prediction",
    "presence_penalty",
    "prompt_cache_key",
    "reasoning_effort",
    "safety_identifier",
    "service_tier",
    "store",
    "thinking",
    "tool_choice",
    "tools",
    "top_logprobs",
    "user",
    "verbosity",
    "web_search_options",
];

/// How a dropped key not in [`KNOWN`] is reported (the names are `&'static`, so an
/// unknown key cannot be returned as itself).
const OTHER: &str = "extensions";

/// Records that the extension `key` was dropped: its name if [`KNOWN`], else
/// `extensions`; each name once, in the order first dropped.
pub(crate) fn report_dropped(dropped: &mut Vec<&'static str>, key: &str) {
    let name = KNOWN.iter().copied().find(|known| *known == key).unwrap_or(OTHER);
    if !dropped.contains(&name) {
        dropped.push(name);
    }
}
