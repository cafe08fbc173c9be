//! Gemini `GenerateContentResponse` -> canonical response, and what the stream decoder
//! shares with it: usage counters, finish reasons, function calls and their ids, which
//! signature stands for the reasoning.

use std::borrow::Cow;

use llmux_types::Usage;
use llmux_types::chat::{ChatResponse, Choice, FinishReason, GEMINI_SIGNATURE_PREFIX, ToolCall};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::error::{ErrorIn, error_text};
use crate::DecodeError;
use crate::few::{Few, Str};
use crate::json::compact_json;
use crate::upstream::{non_null, parse, parse_body, replace};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ResponseIn<'a> {
    #[serde(borrow)]
    pub(super) candidates: Option<Few<CandidateIn<'a>>>,
    #[serde(borrow)]
    pub(super) prompt_feedback: Option<PromptFeedbackIn<'a>>,
    pub(super) usage_metadata: Option<UsageIn>,
    #[serde(borrow)]
    pub(super) model_version: Option<Str<'a>>,
    #[serde(borrow)]
    pub(super) response_id: Option<Str<'a>>,
    #[serde(borrow)]
    pub(super) error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CandidateIn<'a> {
    #[serde(borrow)]
    pub(super) content: Option<ContentIn<'a>>,
    #[serde(borrow)]
    pub(super) finish_reason: Option<Str<'a>>,
    pub(super) index: Option<u32>,
}

#[derive(Deserialize)]
pub(super) struct ContentIn<'a> {
    #[serde(borrow)]
    pub(super) parts: Option<Few<PartIn<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PartIn<'a> {
    #[serde(borrow)]
    pub(super) text: Option<Str<'a>>,
    pub(super) thought: Option<bool>,
    #[serde(borrow)]
    pub(super) thought_signature: Option<Str<'a>>,
    #[serde(borrow)]
    pub(super) function_call: Option<FunctionCallIn<'a>>,
}

#[derive(Deserialize)]
pub(super) struct FunctionCallIn<'a> {
    #[serde(borrow)]
    pub(super) id: Option<Str<'a>>,
    #[serde(borrow)]
    pub(super) name: Cow<'a, str>,
    #[serde(borrow)]
    pub(super) args: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PromptFeedbackIn<'a> {
    #[serde(borrow)]
    pub(super) block_reason: Option<Str<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UsageIn {
    prompt_token_count: Option<u64>,
    candidates_token_count: Option<u64>,
    thoughts_token_count: Option<u64>,
    tool_use_prompt_token_count: Option<u64>,
    cached_content_token_count: Option<u64>,
}

/// Gemini's usage counters as last reported; every reported field replaces the previous
/// value (stream usage is a running total, never added).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct UsageState {
    prompt: u64,
    candidates: u64,
    thoughts: u64,
    tool_use_prompt: u64,
    cached: u64,
}

impl UsageState {
    pub(super) fn update(&mut self, wire: &UsageIn) {
        replace(&mut self.prompt, wire.prompt_token_count);
        replace(&mut self.candidates, wire.candidates_token_count);
        replace(&mut self.thoughts, wire.thoughts_token_count);
        replace(&mut self.tool_use_prompt, wire.tool_use_prompt_token_count);
        replace(&mut self.cached, wire.cached_content_token_count);
    }

    pub(super) fn canonical(&self) -> Usage {
        Usage {
            input_tokens: self.prompt.saturating_add(self.tool_use_prompt),
            output_tokens: self.candidates.saturating_add(self.thoughts),
            cached_tokens: self.cached,
            reasoning_tokens: self.thoughts,
            cache_write_tokens: 0,
        }
    }
}

/// Gemini `finishReason` -> canonical. `STOP` (and an absent or unspecified reason) is
/// `ToolCalls` when the candidate made function calls: Gemini has no reason of its own
/// for them. `MAX_TOKENS` stays `Length` even then (the answer was cut). The safety and
/// policy stops, `RECITATION` included (the output was withheld), are `ContentFilter`;
/// `MALFORMED_FUNCTION_CALL`, `OTHER`, `UNEXPECTED_TOOL_CALL`, ... are kept lowercased as
/// `Other`.
pub(super) fn finish_reason(reason: Option<&str>, made_tool_calls: bool) -> FinishReason {
    match reason {
        None | Some("STOP" | "FINISH_REASON_UNSPECIFIED" | "") if made_tool_calls => FinishReason::ToolCalls,
        None | Some("STOP" | "FINISH_REASON_UNSPECIFIED" | "") => FinishReason::Stop,
        Some("MAX_TOKENS") => FinishReason::Length,
        Some(
            "SAFETY"
            | "RECITATION"
            | "BLOCKLIST"
            | "PROHIBITED_CONTENT"
            | "SPII"
            | "LANGUAGE"
            | "IMAGE_SAFETY"
            | "IMAGE_PROHIBITED_CONTENT"
            | "IMAGE_RECITATION",
        ) => FinishReason::ContentFilter,
        Some(other) => FinishReason::Other(other.to_ascii_lowercase()),
    }
}

/// Which signature of a candidate stands for its reasoning: the first one seen, unless a
/// later one is on a `functionCall` part while the first was not (that is the one Gemini
/// needs back on the call).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum SignatureSeen {
    #[default]
    None,
    OnOtherPart,
    OnFunctionCall,
}

impl SignatureSeen {
    /// Whether a signature on a part (a `functionCall` part if `on_call`) replaces the one
    /// kept so far; records it if so.
    pub(super) fn take(&mut self, on_call: bool) -> bool {
        let takes = match self {
            SignatureSeen::None => true,
            SignatureSeen::OnOtherPart => on_call,
            SignatureSeen::OnFunctionCall => false,
        };
        if takes {
            *self = if on_call { SignatureSeen::OnFunctionCall } else { SignatureSeen::OnOtherPart };
        }
        takes
    }
}

/// The canonical tool call of a `functionCall`: Gemini's `id` when it sent one, else
/// `call_<ordinal>` (the call's position among the choice's calls; deterministic, the
/// caller may replace it); arguments as the compact JSON of `args` (`{}` when absent).
/// What ids minted for calls Gemini sent without one start with: `call_<responseId>_`
/// (letters and digits of it), so that the calls of different answers in one
/// conversation never share an id (Anthropic rejects a conversation that repeats one);
/// `call_` when the answer has no id.
pub(super) fn call_id_prefix(response_id: Option<&str>) -> String {
    let mut prefix = String::from("call_");
    let id: String = response_id.unwrap_or("").chars().filter(char::is_ascii_alphanumeric).take(32).collect();
    if !id.is_empty() {
        prefix.push_str(&id);
        prefix.push('_');
    }
    prefix
}

pub(super) fn tool_call(call: FunctionCallIn<'_>, prefix: &str, ordinal: u32) -> ToolCall {
    ToolCall {
        id: match call.id.filter(|id| !id.is_empty()) {
            Some(id) => id.into_owned(),
            None => format!("{prefix}{ordinal}"),
        },
        name: call.name.into_owned(),
        arguments: match call.args {
            Some(args) if args.get().trim() != "null" => compact_json(args.get()),
            _ => "{}".to_owned(),
        },
    }
}

/// Gemini `GenerateContentResponse` JSON -> canonical response.
///
/// - `candidates[i]` -> a choice with index `candidates[i].index` (its position when
///   absent). Text parts are concatenated into `content` (`None` when there is no text but
///   function calls); parts with `thought: true` into `reasoning` (`None` when empty);
///   `functionCall` parts become tool calls (see `tool_call`). The `thoughtSignature` of
///   the first `functionCall` part that has one, else the first one seen on any part,
///   becomes `reasoning_signature`. Other parts (`inlineData` output, `executableCode`,
///   ...) are skipped: the canonical choice holds text only.
/// - `finishReason` as in `finish_reason`.
/// - A prompt blocked before generation (HTTP 200, no candidates,
///   `promptFeedback.blockReason`) is one choice with no content and `ContentFilter`, the
///   OpenAI shape of a filtered answer, rather than an error: the request was valid and
///   its prompt tokens are billed.
/// - `responseId` -> `id`, `modelVersion` -> `model`; `created` is 0 (Gemini sends none;
///   no clock here). Usage as described in the `gemini::upstream` docs.
///
/// An error body (`{"error":{...}}`) or a body with neither candidates nor a block reason
/// is a [`DecodeError`].
pub fn generate_content_response(body: &[u8]) -> Result<ChatResponse, DecodeError> {
    let wire: ResponseIn<'_> = parse_body("response", body)?;
    if let Some(raw) = non_null(wire.error) {
        let error: ErrorIn<'_> = parse("error body", raw)?;
        return Err(DecodeError::new(None, format!("upstream error: {}", error_text(&error))));
    }
    let mut usage = UsageState::default();
    if let Some(wire) = &wire.usage_metadata {
        usage.update(wire);
    }
    let candidates = wire.candidates.unwrap_or_default();
    let choices = if candidates.is_empty() {
        if wire.prompt_feedback.and_then(|feedback| feedback.block_reason).is_none() {
            return Err(DecodeError::new(None, "upstream response has no `candidates`"));
        }
        vec![Choice {
            index: 0,
            content: None,
            reasoning: None,
            reasoning_signature: None,
            redacted_reasoning: Vec::new(),
            tool_calls: Vec::new(),
            finish_reason: FinishReason::ContentFilter,
        }]
    } else {
        let prefix = call_id_prefix(wire.response_id.as_deref());
        candidates.into_iter().enumerate().map(|(position, candidate)| choice(position, candidate, &prefix)).collect()
    };
    Ok(ChatResponse {
        id: wire.response_id.map(Str::into_owned).unwrap_or_default(),
        created: 0,
        model: wire.model_version.map(Str::into_owned).unwrap_or_default(),
        choices,
        usage: usage.canonical(),
    })
}

fn choice(position: usize, candidate: CandidateIn<'_>, prefix: &str) -> Choice {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut signature = None;
    let mut seen = SignatureSeen::None;
    let mut tool_calls = Vec::new();
    for part in candidate.content.and_then(|content| content.parts).unwrap_or_default() {
        if let Some(part_text) = &part.text {
            if part.thought == Some(true) { reasoning.push_str(part_text) } else { text.push_str(part_text) }
        }
        let on_call = part.function_call.is_some();
        if let Some(call) = part.function_call {
            let ordinal = u32::try_from(tool_calls.len()).unwrap_or(u32::MAX);
            tool_calls.push(tool_call(call, prefix, ordinal));
        }
        if let Some(part_signature) = part.thought_signature.filter(|signature| !signature.is_empty())
            && seen.take(on_call)
        {
            signature = Some(format!("{GEMINI_SIGNATURE_PREFIX}{part_signature}"));
        }
    }
    Choice {
        index: candidate.index.unwrap_or_else(|| u32::try_from(position).unwrap_or(u32::MAX)),
        content: Some(text).filter(|text| !text.is_empty() || tool_calls.is_empty()),
        reasoning: Some(reasoning).filter(|reasoning| !reasoning.is_empty()),
        reasoning_signature: signature,
        redacted_reasoning: Vec::new(),
        finish_reason: finish_reason(candidate.finish_reason.as_deref(), !tool_calls.is_empty()),
        tool_calls,
    }
}
