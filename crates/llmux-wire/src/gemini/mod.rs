//! The Google Gemini API dialect (generativelanguage `v1beta`), upstream side only.
//!
//! The model and the streaming choice live in the URL, not in the body:
//! `POST /v1beta/models/{model}:generateContent` answers one `GenerateContentResponse`;
//! `POST /v1beta/models/{model}:streamGenerateContent?alt=sse` answers SSE whose every
//! `data:` is a complete `GenerateContentResponse` holding the delta (no `[DONE]`: the end
//! of the body ends the stream).
//!
//! - [`upstream`]: canonical request -> `GenerateContentRequest` body (with the names of the
//!   parameters Gemini cannot hold); `GenerateContentResponse` and stream chunks ->
//!   canonical; the `{"error":{...}}` body and its `RetryInfo` delay.
//!
//! Usage semantics differ from the canonical ones on the output side: Gemini's
//! `candidatesTokenCount` excludes thinking (`thoughtsTokenCount`), so [`upstream`] reads
//! `output = candidatesTokenCount + thoughtsTokenCount`; `promptTokenCount` includes the
//! cached tokens, as the canonical input does.

pub mod upstream;
