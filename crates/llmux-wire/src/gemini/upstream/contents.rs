//! The conversation (every message but system and developer ones) as Gemini `contents`.
//!
//! Notes:
//! - User turns have role `user`, assistant turns `model`. Empty text is never sent; a
//!   content left with no part is dropped, and consecutive contents of the same role are
//!   merged (Gemini answers 400 "Please ensure that multiturn requests alternate between
//!   user and model"). A conversation that opens with the model gets a user content of
//!   `"."` before it.
//! - Images: `data:<mime>;base64,<data>` URLs become `inlineData`, any other URL
//!   `fileData{mimeType, fileUri}` with the MIME type guessed from the path's extension
//!   (`png`, `jpg`/`jpeg`, `gif`, `webp`, `heic`, `heif`, `pdf`; `image/jpeg` otherwise).
//!   Gemini fetches only File API URIs and some public URLs (Vertex also `gs://`);
//!   downloading and inlining is I/O and is left to the caller. `detail` is dropped.
//! - Assistant turns: text parts, then one `functionCall{id, name, args}` part per tool
//!   call, `args` being the arguments when they are a JSON object (sent verbatim) and `{}`
//!   otherwise. The turn's `reasoning_signature`, when Gemini minted it (canonical
//!   signatures from Gemini carry `GEMINI_SIGNATURE_PREFIX`, which is stripped here;
//!   another provider's signature is not sent), becomes the `thoughtSignature` of its
//!   first `functionCall` part (Gemini 3 answers 400 "Function call is missing a
//!   thought_signature" when the first call of a step has none), or of its last text part
//!   when it made no call (where Gemini puts it on such answers); a turn with neither
//!   cannot carry it. Signatures are never invented. Reasoning text is not sent (Gemini
//!   takes no thought text back), `redacted_reasoning` is Anthropic-only and dropped, and
//!   images are not sent in model turns (OpenAI assistant content is text only).
//! - Tool messages become `functionResponse{id, name, response}` parts of a `user`
//!   content; in a merged user content they come first, in order, then the other parts
//!   (Gemini pairs the responses with the calls of the model turn right before). `name`
//!   (required by Gemini) is the name of the call with that `tool_call_id` in the nearest
//!   earlier assistant turn, or the id itself when no turn made it. `response` must be a
//!   JSON object: `{"error": <text>}` when `tool_error`, the text itself when it is a JSON
//!   object, `{"output": <text>}` otherwise (the text being the non-empty text parts joined
//!   with `\n`). Images of a tool message follow its response as `inlineData`/`fileData`.
//! - `id` is sent on `functionCall` and `functionResponse` whatever minted it: the Gemini
//!   Developer API has the field (it issues ids itself for newer models, and pairs a
//!   response to its call by it when present). Vertex AI has no such field and answers 400
//!   `Unknown name "id"`: a Vertex adapter must not use this body as is.

use std::borrow::Cow;

use llmux_types::chat::{ContentPart, Message, Role, gemini_signature};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::upstream::{base64_data, texts};

/// The MIME type of a URL whose extension says nothing known.
const DEFAULT_MIME_TYPE: &str = "image/jpeg";

/// `{}`, the arguments of a call whose arguments are not a JSON object.
fn empty_object<'a>() -> &'a RawValue {
    serde_json::from_str("{}").expect("valid JSON")
}

/// `text` itself when it is a JSON object (borrowed, spelling kept).
fn json_object(text: &str) -> Option<&RawValue> {
    let trimmed = text.trim();
    if trimmed.starts_with('{') { serde_json::from_str::<&RawValue>(trimmed).ok() } else { None }
}

#[derive(Serialize)]
pub(super) struct ContentWire<'a> {
    role: &'static str,
    parts: Vec<PartWire<'a>>,
}

/// One part: exactly one of the data fields is set (Gemini's `data` oneof), plus the
/// signature the part carries.
#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct PartWire<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    inline_data: Option<InlineDataWire<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_data: Option<FileDataWire<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    function_call: Option<FunctionCallWire<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    function_response: Option<FunctionResponseWire<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thought_signature: Option<&'a str>,
}

impl<'a> PartWire<'a> {
    pub(super) fn text(text: &'a str) -> PartWire<'a> {
        PartWire { text: Some(text), ..PartWire::default() }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InlineDataWire<'a> {
    mime_type: &'a str,
    data: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FileDataWire<'a> {
    mime_type: &'static str,
    file_uri: &'a str,
}

#[derive(Serialize)]
struct FunctionCallWire<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    name: &'a str,
    args: &'a RawValue,
}

#[derive(Serialize)]
struct FunctionResponseWire<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    name: &'a str,
    response: ToolOutputWire<'a>,
}

/// A `functionResponse.response` (always a JSON object).
#[derive(Serialize)]
#[serde(untagged)]
enum ToolOutputWire<'a> {
    Object(&'a RawValue),
    /// A JSON object made of several text parts.
    OwnedObject(Box<RawValue>),
    Output {
        output: Cow<'a, str>,
    },
    Error {
        error: Cow<'a, str>,
    },
}

/// The conversation without system/developer messages, as alternating contents.
pub(super) fn contents(messages: &[Message]) -> Vec<ContentWire<'_>> {
    let mut contents: Vec<ContentWire<'_>> = Vec::with_capacity(messages.len());
    for (position, message) in messages.iter().enumerate() {
        let (role, parts) = match message.role {
            Role::System | Role::Developer => continue,
            Role::User => ("user", message.content.iter().filter_map(content_part).collect()),
            Role::Assistant => ("model", model_parts(message)),
            Role::Tool => ("user", tool_parts(message, &messages[..position])),
        };
        if parts.is_empty() {
            continue;
        }
        match contents.last_mut() {
            Some(content) if content.role == role => {
                for part in parts {
                    if part.function_response.is_some() {
                        // After the content's leading function responses, before its other parts.
                        let at = content.parts.iter().take_while(|part| part.function_response.is_some()).count();
                        content.parts.insert(at, part);
                    } else {
                        content.parts.push(part);
                    }
                }
            }
            _ => contents.push(ContentWire { role, parts }),
        }
    }
    // Gemini wants the conversation to open with the user (an OpenAI history may open
    // with the assistant): a minimal user turn goes first.
    if contents.first().is_some_and(|content| content.role == "model") {
        contents.insert(0, ContentWire { role: "user", parts: vec![PartWire::text(LEADING_USER_TEXT)] });
    }
    contents
}

/// The text of the user turn put before a conversation that opens with the model.
const LEADING_USER_TEXT: &str = ".";

/// A text or media part; `None` for empty text.
fn content_part(part: &ContentPart) -> Option<PartWire<'_>> {
    match part {
        ContentPart::Text(text) if text.is_empty() => None,
        ContentPart::Text(text) => Some(PartWire::text(text)),
        ContentPart::Image { url, .. } => Some(media_part(url)),
    }
}

fn media_part(url: &str) -> PartWire<'_> {
    if let Some((mime_type, data)) = base64_data(url) {
        let mime_type = if mime_type.is_empty() { DEFAULT_MIME_TYPE } else { mime_type };
        return PartWire { inline_data: Some(InlineDataWire { mime_type, data }), ..PartWire::default() };
    }
    PartWire { file_data: Some(FileDataWire { mime_type: mime_type(url), file_uri: url }), ..PartWire::default() }
}

/// The MIME type of a URL from the extension of its path (query and fragment ignored).
pub(super) fn mime_type(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let name = path.rsplit('/').next().unwrap_or(path);
    let Some((_, extension)) = name.rsplit_once('.') else {
        return DEFAULT_MIME_TYPE;
    };
    const TYPES: &[(&str, &str)] = &[
        ("png", "image/png"),
        ("jpg", "image/jpeg"),
        ("jpeg", "image/jpeg"),
        ("gif", "image/gif"),
        ("webp", "image/webp"),
        ("heic", "image/heic"),
        ("heif", "image/heif"),
        ("pdf", "application/pdf"),
    ];
    TYPES.iter().find(|(known, _)| known.eq_ignore_ascii_case(extension)).map_or(DEFAULT_MIME_TYPE, |(_, mime)| mime)
}

fn model_parts(message: &Message) -> Vec<PartWire<'_>> {
    let mut parts: Vec<PartWire<'_>> = texts(&message.content).map(PartWire::text).collect();
    let text_parts = parts.len();
    parts.extend(message.tool_calls.iter().map(|call| PartWire {
        function_call: Some(FunctionCallWire {
            id: Some(call.id.as_str()).filter(|id| !id.is_empty()),
            name: &call.name,
            args: json_object(&call.arguments).unwrap_or_else(empty_object),
        }),
        ..PartWire::default()
    }));
    // Only Gemini's own signatures (see `GEMINI_SIGNATURE_PREFIX`); another provider's
    // would be refused.
    if let Some(signature) = message.reasoning_signature.as_deref().and_then(gemini_signature) {
        // The first call's part, or the last text part when there is no call.
        let at = if message.tool_calls.is_empty() { text_parts.checked_sub(1) } else { Some(text_parts) };
        if let Some(part) = at.and_then(|at| parts.get_mut(at)) {
            part.thought_signature = Some(signature);
        }
    }
    parts
}

fn tool_parts<'a>(message: &'a Message, earlier: &'a [Message]) -> Vec<PartWire<'a>> {
    let id = message.tool_call_id.as_deref().filter(|id| !id.is_empty());
    let name = id.map_or("", |id| {
        earlier
            .iter()
            .rev()
            .filter(|message| message.role == Role::Assistant)
            .find_map(|message| message.tool_calls.iter().find(|call| call.id == id))
            .map_or(id, |call| call.name.as_str())
    });
    let mut texts = texts(&message.content);
    let text = match (texts.next(), texts.next()) {
        (None, _) => Cow::Borrowed(""),
        (Some(text), None) => Cow::Borrowed(text),
        (Some(first), Some(second)) => {
            let mut joined = format!("{first}\n{second}");
            for text in texts {
                joined.push('\n');
                joined.push_str(text);
            }
            Cow::Owned(joined)
        }
    };
    let response = if message.tool_error {
        ToolOutputWire::Error { error: text }
    } else {
        match text {
            Cow::Borrowed(single) => match json_object(single) {
                Some(object) => ToolOutputWire::Object(object),
                None => ToolOutputWire::Output { output: text },
            },
            Cow::Owned(joined) => match json_object(&joined) {
                Some(object) => ToolOutputWire::OwnedObject(object.to_owned()),
                None => ToolOutputWire::Output { output: Cow::Owned(joined) },
            },
        }
    };
    let mut parts =
        vec![PartWire { function_response: Some(FunctionResponseWire { id, name, response }), ..PartWire::default() }];
    parts.extend(message.content.iter().filter_map(|part| match part {
        ContentPart::Image { url, .. } => Some(media_part(url)),
        ContentPart::Text(_) => None,
    }));
    parts
}
