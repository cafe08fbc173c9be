//! Gemini `:streamGenerateContent?alt=sse` chunks -> canonical stream events.

use std::borrow::Cow;

use llmux_types::chat::{FinishReason, GEMINI_SIGNATURE_PREFIX, StreamEvent, ToolCall};

use super::error::{ErrorIn, error_text};
use super::response::{ResponseIn, SignatureSeen, UsageState, call_id_prefix, finish_reason, tool_call};
use crate::upstream::{non_null, parse, parse_payload};
use crate::{DecodeError, UpstreamDecoder};

/// What the stream has shown of one choice.
#[derive(Debug)]
struct ChoiceState {
    index: u32,
    tools: u32,
    signature: SignatureSeen,
    finished: bool,
}

/// Decodes the `data` of `:streamGenerateContent?alt=sse` events into canonical events.
///
/// Each chunk is a complete `GenerateContentResponse` whose parts are the delta:
/// - The first chunk -> `Start { id: responseId, model: modelVersion, created: 0 }`.
/// - Per candidate (choice = its `index`, its position when absent), per part in order:
///   text -> `Text` (`Reasoning` when `thought: true`; empty text yields nothing);
///   `functionCall` -> one complete `ToolCall` (Gemini sends each call whole) with `id`
///   (Gemini's, else `call_<responseId>_<n>`), `name` and the full arguments, `index` counting the
///   choice's calls from 0; a `thoughtSignature` -> `ReasoningSignature` (prefixed with
///   `GEMINI_SIGNATURE_PREFIX`) before a `functionCall` part's event and after a text
///   part's, for the first signature of the choice and for a later one on a
///   `functionCall` part when the first was not (so the last one emitted is the
///   `reasoning_signature` of [`generate_content_response`](super::generate_content_response)). Other parts are skipped.
/// - `finishReason` -> `Finish` (once per choice; mapped as in
///   [`generate_content_response`](super::generate_content_response), `ToolCalls` when the choice made calls).
/// - A chunk without candidates but with `promptFeedback.blockReason` ->
///   `Finish { choice: 0, reason: ContentFilter }`.
/// - `usageMetadata` -> `Usage` after the chunk's other events (running totals: the
///   reported counters replace the previous ones).
/// - `{"error":{...}}` -> `Error { message: "<status>: <message>" }`.
///
/// Malformed JSON, or a `functionCall` without `name`, is a [`DecodeError`].
#[derive(Debug, Default)]
pub struct StreamDecoder {
    started: bool,
    usage: UsageState,
    choices: Vec<ChoiceState>,
    /// See `call_id_prefix` (from the first chunk's `responseId`).
    call_prefix: String,
}

impl StreamDecoder {
    pub fn new() -> StreamDecoder {
        StreamDecoder::default()
    }
}

impl UpstreamDecoder for StreamDecoder {
    /// Decodes one `data` payload, handing each event to `emit` as it is decoded; the
    /// events borrow from `data`.
    fn decode_with<'d>(&mut self, data: &'d [u8], emit: &mut dyn FnMut(StreamEvent<'d>)) -> Result<(), DecodeError> {
        let Some(chunk) = parse_payload::<ResponseIn<'d>>("stream chunk", data)? else {
            return Ok(());
        };
        if let Some(raw) = non_null(chunk.error) {
            let error: ErrorIn<'_> = parse("stream error", raw)?;
            emit(StreamEvent::Error { message: Cow::Owned(error_text(&error)) });
            return Ok(());
        }
        if !self.started {
            self.started = true;
            self.call_prefix = call_id_prefix(chunk.response_id.as_deref());
            emit(StreamEvent::Start {
                id: chunk.response_id.map(Into::into).unwrap_or_default(),
                model: chunk.model_version.map(Into::into).unwrap_or_default(),
                created: 0,
            });
        }
        let candidates = chunk.candidates.unwrap_or_default();
        let blocked = candidates.is_empty() && chunk.prompt_feedback.is_some_and(|f| f.block_reason.is_some());
        // Taken out (not cloned) while the choices are borrowed, put back below.
        let prefix = std::mem::take(&mut self.call_prefix);
        for (position, candidate) in candidates.into_iter().enumerate() {
            let choice = candidate.index.unwrap_or_else(|| u32::try_from(position).unwrap_or(u32::MAX));
            let state = self.choice(choice);
            for part in candidate.content.and_then(|content| content.parts).unwrap_or_default() {
                let on_call = part.function_call.is_some();
                let signature = part
                    .thought_signature
                    .filter(|signature| !signature.is_empty() && state.signature.take(on_call))
                    .map(|signature| StreamEvent::ReasoningSignature {
                        choice,
                        signature: Cow::Owned(format!("{GEMINI_SIGNATURE_PREFIX}{signature}")),
                    });
                // A call's signature goes before the call (client encoders attach it to the
                // call they are about to write); a text part's after its text.
                let (before, after) = if on_call { (signature, None) } else { (None, signature) };
                if let Some(event) = before {
                    emit(event);
                }
                if let Some(text) = part.text.filter(|text| !text.is_empty()) {
                    emit(if part.thought == Some(true) {
                        StreamEvent::Reasoning { choice, text: text.into() }
                    } else {
                        StreamEvent::Text { choice, text: text.into() }
                    });
                }
                if let Some(call) = part.function_call {
                    let index = state.tools;
                    state.tools += 1;
                    let ToolCall { id, name, arguments } = tool_call(call, &prefix, index);
                    emit(StreamEvent::ToolCall {
                        choice,
                        index,
                        id: Some(Cow::Owned(id)),
                        name: Some(Cow::Owned(name)),
                        arguments: Cow::Owned(arguments),
                    });
                }
                if let Some(event) = after {
                    emit(event);
                }
            }
            if let Some(reason) = candidate.finish_reason
                && !state.finished
            {
                state.finished = true;
                emit(StreamEvent::Finish { choice, reason: finish_reason(Some(&reason), state.tools > 0) });
            }
        }
        self.call_prefix = prefix;
        if blocked {
            let state = self.choice(0);
            if !state.finished {
                state.finished = true;
                emit(StreamEvent::Finish { choice: 0, reason: FinishReason::ContentFilter });
            }
        }
        if let Some(usage) = &chunk.usage_metadata {
            self.usage.update(usage);
            emit(StreamEvent::Usage(self.usage.canonical()));
        }
        Ok(())
    }
}

impl StreamDecoder {
    fn choice(&mut self, index: u32) -> &mut ChoiceState {
        let at = match self.choices.iter().position(|state| state.index == index) {
            Some(at) => at,
            None => {
                self.choices.push(ChoiceState { index, tools: 0, signature: SignatureSeen::None, finished: false });
                self.choices.len() - 1
            }
        };
        &mut self.choices[at]
    }
}
