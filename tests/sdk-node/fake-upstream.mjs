// A fake upstream for the llmux openai-npm conformance suite.
//
// One node:http server on 127.0.0.1:<random port> that speaks the three dialects the
// gateway forwards to:
//   POST /v1/chat/completions  OpenAI Chat Completions (JSON or SSE `data:` lines + [DONE])
//   POST /v1/messages          Anthropic Messages (validated like the real API, JSON or named SSE)
//   POST /v1beta/models/{model}:generateContent | :streamGenerateContent?alt=sse
//                              Gemini (validated like the real API, JSON or CRLF-framed
//                              SSE `data:` lines with no terminator)
// Behaviour is chosen by the request's `model` (the route's upstream model name); for
// Gemini that is the model in the URL (`GEMINI_MODELS`).
// Every request is recorded (method, path, lower-cased headers, parsed body, raw body)
// so tests can assert on what the gateway actually sent; each test puts a unique
// marker string in its request and finds its record with `one(marker)`.
// Other suites (tests/agents) add models with scripted behaviour through `script()`,
// answering with the exported writers (`sendJson`, `sendSse`, `sendGeminiSse`).

import http from 'node:http';
import { randomUUID } from 'node:crypto';

export const UPSTREAM_KEY = 'sk-upstream-secret';

export const CHAT_TEXT = 'Hello from fake upstream';
export const CHAT_PIECES = ['Hello', ' from', ' fake', ' upstream'];
export const CHAT_USAGE = { prompt_tokens: 11, completion_tokens: 5, total_tokens: 16 };

export const TOOL_NAME = 'get_weather';
export const TOOL_ARGUMENTS = '{"city": "Paris"}';
export const TOOL_ARGUMENT_PIECES = ['{"', 'city', '": "', 'Paris', '"}'];
export const TOOL_CALL_ID = 'call_fake_0001';
// The two calls `fake-parallel` answers with (streamed one after the other, in
// token-like fragments as OpenAI sends them).
export const PARALLEL_CALLS = [
  { id: 'call_fake_par_0', name: TOOL_NAME, pieces: ['{"', 'city', '": "', 'Paris', '"}'] },
  { id: 'call_fake_par_1', name: 'get_time', pieces: ['{"', 'zone', '": "', 'Asia', '/Tok', 'yo', '"}'] },
].map((call) => ({ ...call, arguments: call.pieces.join('') }));

export const UPSTREAM_400_MESSAGE = 'bad thing from the fake upstream';

export const ANTHROPIC_USAGE = {
  input_tokens: 20,
  cache_read_input_tokens: 8,
  cache_creation_input_tokens: 2,
  output_tokens: 9,
};
export const THINKING_TEXT = 'The user wants weather for two cities.';
export const THINKING_SIGNATURE = 'sig-fake-0001';
export const CLAUDE_TOOL_IDS = ['toolu_fake_01', 'toolu_fake_02'];
export const CLAUDE_TOOL_INPUTS = [{ city: 'Paris' }, { city: 'Tokyo' }];

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
// A short pause between SSE events so they leave as separate writes (and usually
// separate TCP segments), making the gateway's stream parser do real reassembly.
const EVENT_GAP_MS = 2;

function openaiError(message, type = 'invalid_request_error', param = null, code = null) {
  return { error: { message, type, param, code } };
}

/**
 * What the real Messages API would reject in `body` (the subset the tests rely on).
 * With `claudeCodeBetas`, also what the API takes from current Claude Code under the
 * beta headers it sends (its body reaches an anthropic upstream unchanged): `system`
 * messages among `messages` (checked as text, and left out of the role order) and
 * `defer_loading` on tools.
 */
export function anthropicBodyProblems(body, headers, { claudeCodeBetas = false } = {}) {
  const problems = [];
  if (headers['x-api-key'] !== UPSTREAM_KEY) problems.push('x-api-key is not the provider key');
  if (headers['anthropic-version'] !== '2023-06-01') problems.push('anthropic-version: header must be 2023-06-01');
  if (!Number.isInteger(body.max_tokens) || body.max_tokens < 1) problems.push('max_tokens: Field required (a positive integer)');
  if (typeof body.model !== 'string' || !body.model) problems.push('model: Field required');
  const messages = body.messages;
  if (!Array.isArray(messages) || messages.length === 0) {
    problems.push('messages: at least one message is required');
    return problems;
  }
  const turns = messages.filter((message) => !(claudeCodeBetas && message?.role === 'system'));
  if (turns[0]?.role !== 'user') problems.push('messages: the first message must use the user role');
  messages.forEach((message, index) => {
    const role = message?.role;
    if (role === 'system' && claudeCodeBetas) {
      const blocks = typeof message.content === 'string' ? [{ type: 'text', text: message.content }] : message.content;
      if (!Array.isArray(blocks) || !blocks.length || blocks.some((block) => block?.type !== 'text' || !block.text)) {
        problems.push(`messages.${index}: a system message holds non-empty text only`);
      }
      return;
    }
    if (role === 'system') problems.push(`messages.${index}.role: "system" is not a message role; use the top-level system parameter`);
    else if (role !== 'user' && role !== 'assistant') problems.push(`messages.${index}.role: must be user or assistant`);
    const turn = turns.indexOf(message);
    if (turn > 0 && role === turns[turn - 1]?.role) problems.push(`messages.${index}: roles must alternate between user and assistant`);
    const content = message?.content;
    if (typeof content === 'string') {
      if (!content) problems.push(`messages.${index}.content: must be non-empty`);
    } else if (Array.isArray(content)) {
      content.forEach((block, blockIndex) => {
        if (typeof block?.type !== 'string') problems.push(`messages.${index}.content.${blockIndex}.type: Field required`);
        if (block?.type === 'text' && !block.text) problems.push(`messages.${index}.content.${blockIndex}: text content blocks must be non-empty`);
      });
    } else {
      problems.push(`messages.${index}.content: must be a string or an array of blocks`);
    }
  });
  if (body.system !== undefined && typeof body.system !== 'string' && !Array.isArray(body.system)) {
    problems.push('system: must be a string or an array of text blocks');
  }
  if (body.tools !== undefined) {
    if (!Array.isArray(body.tools)) problems.push('tools: must be an array');
    else {
      for (const tool of body.tools) {
        const allowed = new Set(['name', 'description', 'input_schema', 'cache_control', 'type', ...(claudeCodeBetas ? ['defer_loading'] : [])]);
        const extra = Object.keys(tool ?? {}).filter((key) => !allowed.has(key));
        const typeOk = tool?.type === undefined || tool.type === 'custom';
        if (extra.length || !typeOk || typeof tool?.name !== 'string' || typeof tool?.input_schema !== 'object' || tool.input_schema === null) {
          problems.push(`tools: ${JSON.stringify(tool)} is not an Anthropic tool (name + input_schema)`);
        }
      }
    }
  }
  for (const field of ['stream_options', 'n', 'seed', 'response_format']) {
    if (field in body) problems.push(`${field}: Extra inputs are not permitted`);
  }
  return problems;
}

/**
 * What the real Messages API would reject in a conversation with tool use: every
 * `tool_use` of an assistant turn answered by a `tool_result` (same id) in the next
 * user turn, and no `tool_result` without its `tool_use` (`system` messages, which only
 * current Claude Code sends, are skipped when looking for the next turn).
 */
export function anthropicToolProblems(body) {
  const problems = [];
  const turns = (Array.isArray(body.messages) ? body.messages : [])
    .map((message, index) => ({ message, index }))
    .filter(({ message }) => message?.role !== 'system');
  const blocksOf = (message) => (Array.isArray(message?.content) ? message.content : []);
  turns.forEach(({ message, index }, turn) => {
    const previous = turns[turn - 1]?.message;
    const asked = new Set(previous?.role === 'assistant' ? blocksOf(previous).filter((b) => b?.type === 'tool_use').map((b) => b.id) : []);
    const answered = new Set();
    for (const block of blocksOf(message)) {
      if (block?.type !== 'tool_result') continue;
      if (message.role !== 'user') problems.push(`messages.${index}: tool_result blocks belong in a user message`);
      if (!asked.has(block.tool_use_id)) {
        problems.push(`messages.${index}: unexpected \`tool_use_id\` found in \`tool_result\` blocks: ${block.tool_use_id}. Each \`tool_result\` block must have a corresponding \`tool_use\` block in the previous message.`);
      }
      answered.add(block.tool_use_id);
      const content = block.content;
      const textOk = typeof content === 'string' || (Array.isArray(content) && content.every((part) => ['text', 'image'].includes(part?.type)));
      if (content !== undefined && !textOk) problems.push(`messages.${index}: tool_result content must be a string or text/image blocks`);
    }
    if (message.role === 'assistant') {
      const next = turns[turn + 1]?.message;
      const ids = blocksOf(message).filter((b) => b?.type === 'tool_use').map((b) => b.id);
      const results = new Set(next ? blocksOf(next).filter((b) => b?.type === 'tool_result').map((b) => b.tool_use_id) : []);
      const missing = next ? ids.filter((id) => !results.has(id)) : [];
      if (missing.length) {
        problems.push(`messages.${index}: \`tool_use\` ids were found without \`tool_result\` blocks immediately after: ${missing.join(', ')}. Each \`tool_use\` block must have a corresponding \`tool_result\` block in the next message.`);
      }
    }
  });
  return problems;
}

// ---------------------------------------------------------------- OpenAI chat dialect

// Chat Completions request fields OpenAI knows; others are refused ("Unrecognized request argument").
const OPENAI_CHAT_FIELDS = new Set([
  'model', 'messages', 'audio', 'frequency_penalty', 'function_call', 'functions', 'logit_bias', 'logprobs',
  'max_completion_tokens', 'max_tokens', 'metadata', 'modalities', 'n', 'parallel_tool_calls', 'prediction',
  'presence_penalty', 'prompt_cache_key', 'prompt_cache_retention', 'reasoning_effort', 'response_format',
  'safety_identifier', 'seed', 'service_tier', 'stop', 'store', 'stream', 'stream_options', 'temperature',
  'tool_choice', 'tools', 'top_logprobs', 'top_p', 'user', 'verbosity', 'web_search_options',
]);
const OPENAI_TOOL_NAME = /^[a-zA-Z0-9_-]{1,64}$/;

/** What OpenAI's Chat Completions API would reject in `body` (roles, tool calls and their results, tools). */
export function openaiChatBodyProblems(body, headers) {
  const problems = [];
  if (headers.authorization !== `Bearer ${UPSTREAM_KEY}`) problems.push('Incorrect API key provided (Authorization: Bearer)');
  for (const name of Object.keys(body)) {
    if (!OPENAI_CHAT_FIELDS.has(name)) problems.push(`Unrecognized request argument supplied: ${name}`);
  }
  if (typeof body.model !== 'string' || !body.model) problems.push("you must provide a model parameter");
  if ('max_tokens' in body && 'max_completion_tokens' in body) problems.push('max_tokens and max_completion_tokens cannot both be set');
  if ('stream_options' in body && body.stream !== true) problems.push("The 'stream_options' parameter is only allowed when 'stream' is enabled.");
  const isText = (content) =>
    (typeof content === 'string') || (Array.isArray(content) && content.length > 0 && content.every((part) => part?.type === 'text' && typeof part.text === 'string'));
  const messages = body.messages;
  if (!Array.isArray(messages) || messages.length === 0) {
    problems.push("'messages' must be a non-empty array");
    return problems;
  }
  let pending = null; // tool_call ids of the last assistant message still awaiting a `tool` message
  messages.forEach((message, index) => {
    const at = `messages[${index}]`;
    const role = message?.role;
    if (pending && pending.size && role !== 'tool') {
      problems.push(`An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: ${[...pending].join(', ')} (${at})`);
      pending = null;
    }
    if (role === 'system' || role === 'developer' || role === 'user') {
      const partsOk = role === 'user'
        ? typeof message.content === 'string' || (Array.isArray(message.content) && message.content.every((part) => ['text', 'image_url', 'input_audio', 'file'].includes(part?.type)))
        : isText(message.content);
      if (!partsOk) problems.push(`Invalid value for '${at}.content': ${JSON.stringify(message.content)?.slice(0, 200)}`);
    } else if (role === 'assistant') {
      const calls = message.tool_calls;
      if (calls !== undefined) {
        if (!Array.isArray(calls) || !calls.length) problems.push(`${at}.tool_calls: must be a non-empty array`);
        for (const call of Array.isArray(calls) ? calls : []) {
          const argumentsOk = typeof call?.function?.arguments === 'string' && (() => {
            try {
              JSON.parse(call.function.arguments);
              return true;
            } catch {
              return false;
            }
          })();
          if (typeof call?.id !== 'string' || call.type !== 'function' || typeof call.function?.name !== 'string' || !argumentsOk) {
            problems.push(`Invalid value for '${at}.tool_calls': ${JSON.stringify(call)} (id, type function, function.name, function.arguments as a JSON string)`);
          }
        }
        pending = new Set((Array.isArray(calls) ? calls : []).map((call) => call?.id));
      }
      const content = message.content;
      if (!(content === null || content === undefined || isText(content) || (typeof content === 'string'))) {
        problems.push(`Invalid value for '${at}.content': ${JSON.stringify(content)?.slice(0, 200)}`);
      }
      if ((content === null || content === undefined || content === '') && !calls?.length) {
        problems.push(`${at}: an assistant message needs content or tool_calls`);
      }
    } else if (role === 'tool') {
      if (typeof message.tool_call_id !== 'string' || !pending?.has(message.tool_call_id)) {
        problems.push(`Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls' (${at}.tool_call_id ${JSON.stringify(message.tool_call_id)})`);
      } else {
        pending.delete(message.tool_call_id);
      }
      if (!isText(message.content)) problems.push(`Invalid value for '${at}.content': a tool message holds text`);
    } else {
      problems.push(`Invalid value: '${role}'. Supported values are: 'system', 'assistant', 'user', 'tool', 'developer' (${at}.role)`);
    }
  });
  if (pending && pending.size) {
    problems.push(`An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: ${[...pending].join(', ')}`);
  }
  if (body.tools !== undefined) {
    if (!Array.isArray(body.tools)) problems.push("'tools' must be an array");
    for (const tool of Array.isArray(body.tools) ? body.tools : []) {
      const fn = tool?.function;
      const extra = Object.keys(fn ?? {}).filter((key) => !['name', 'description', 'parameters', 'strict'].includes(key));
      if (tool?.type !== 'function' || !isObject(fn) || !OPENAI_TOOL_NAME.test(String(fn.name)) || extra.length
        || (fn.parameters !== undefined && !isObject(fn.parameters)) || Object.keys(tool).some((key) => key !== 'type' && key !== 'function')) {
        problems.push(`Invalid tools: ${JSON.stringify(tool).slice(0, 200)} is not {type: function, function: {name, description?, parameters?, strict?}}`);
      }
    }
  }
  if ('parallel_tool_calls' in body && !body.tools?.length) problems.push("Invalid value for 'parallel_tool_calls': only allowed when 'tools' are specified.");
  const choice = body.tool_choice;
  if (choice !== undefined && !['none', 'auto', 'required'].includes(choice)
    && !(choice?.type === 'function' && typeof choice.function?.name === 'string')) {
    problems.push(`Invalid value for 'tool_choice': ${JSON.stringify(choice)}`);
  }
  return problems;
}

// ---------------------------------------------------------------- Gemini dialect

export const GEMINI_PATH = /^\/v1beta\/models\/([^/:]+):(generateContent|streamGenerateContent)$/;
// The upstream model in the URL -> how the fake answers. A request whose last content
// holds function responses is always answered with text quoting the tool output.
export const GEMINI_MODELS = {
  'gemini-3-pro-preview': 'text',
  'gemini-fake-thinking': 'thinking',
  'gemini-fake-tools': 'tools',
  'gemini-fake-parallel': 'parallel',
  'gemini-fake-busy': 'busy',
};
// The signature the fake puts on the first functionCall part it returns; Gemini 3 wants
// it back on that part (400 otherwise).
export const GEMINI_SIGNATURE = 'Z2VtaW5pLXNpZy0wMDE=';
// The signature on the (empty) last text part of a text answer: optional to send back.
export const GEMINI_TEXT_SIGNATURE = 'Z2VtaW5pLXRleHQtc2lnLTAwMg==';
export const GEMINI_TEXT = 'Bonjour from fake Gemini';
export const GEMINI_PIECES = ['Bonjour', ' from', ' fake', ' Gemini'];
export const GEMINI_THOUGHT = 'The user wants a short greeting.';
export const GEMINI_TOOL_ANSWER = 'Gemini read the tool output: ';
// Final counters of every answer. Gemini 3 always thinks (thoughts are billed as output
// even when no thought text is returned); candidatesTokenCount excludes thoughts.
export const GEMINI_PROMPT_TOKENS = 21;
export const GEMINI_CANDIDATES_TOKENS = 6;
export const GEMINI_THOUGHTS_TOKENS = 4;
export const GEMINI_RETRY_DELAY_S = 17;
export const GEMINI_429_MESSAGE = 'You exceeded your current quota, please check your plan and billing details.';
export const GEMINI_429_BODY = {
  error: {
    code: 429,
    message: GEMINI_429_MESSAGE,
    status: 'RESOURCE_EXHAUSTED',
    details: [
      {
        '@type': 'type.googleapis.com/google.rpc.QuotaFailure',
        violations: [
          {
            quotaMetric: 'generativelanguage.googleapis.com/generate_content_free_tier_requests',
            quotaId: 'GenerateRequestsPerMinutePerProjectPerModel-FreeTier',
          },
        ],
      },
      {
        '@type': 'type.googleapis.com/google.rpc.Help',
        links: [{ description: 'Learn more about Gemini API quotas', url: 'https://ai.google.dev/gemini-api/docs/rate-limits' }],
      },
      { '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: `${GEMINI_RETRY_DELAY_S}s` },
    ],
  },
};

const GEMINI_TOP_LEVEL = new Set([
  'contents', 'systemInstruction', 'tools', 'toolConfig', 'generationConfig', 'safetySettings', 'cachedContent', 'labels',
]);
const GEMINI_PART_DATA = new Set([
  'text', 'inlineData', 'fileData', 'functionCall', 'functionResponse', 'executableCode', 'codeExecutionResult',
]);
const GEMINI_PART_META = new Set(['thought', 'thoughtSignature', 'videoMetadata', 'partMetadata', 'mediaResolution']);
const GEMINI_DECLARATION_KEYS = new Set([
  'name', 'description', 'parameters', 'parametersJsonSchema', 'response', 'responseJsonSchema', 'behavior',
]);
const GEMINI_GENERATION_KEYS = new Set([
  'stopSequences', 'responseMimeType', 'responseSchema', 'responseJsonSchema', 'responseModalities', 'candidateCount',
  'maxOutputTokens', 'temperature', 'topP', 'topK', 'seed', 'presencePenalty', 'frequencyPenalty', 'responseLogprobs',
  'logprobs', 'enableEnhancedCivicAnswers', 'speechConfig', 'thinkingConfig', 'imageConfig', 'mediaResolution',
]);
const GEMINI_FUNCTION_NAME = /^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$/;

export function googleError(code, message, status) {
  return { error: { code, message, status } };
}

/** usageMetadata of chunk `step` of `steps`: running totals (thoughts come first). */
export function geminiUsage(step, steps) {
  const candidates = step === steps ? GEMINI_CANDIDATES_TOKENS : Math.max(1, Math.floor((GEMINI_CANDIDATES_TOKENS * step) / steps));
  return {
    promptTokenCount: GEMINI_PROMPT_TOKENS,
    candidatesTokenCount: candidates,
    thoughtsTokenCount: GEMINI_THOUGHTS_TOKENS,
    totalTokenCount: GEMINI_PROMPT_TOKENS + candidates + GEMINI_THOUGHTS_TOKENS,
    promptTokensDetails: [{ modality: 'TEXT', tokenCount: GEMINI_PROMPT_TOKENS }],
  };
}

/** How the fake quotes a functionResponse.response: `{output: "<s>"}` as the string, else sorted JSON. */
export function geminiToolOutput(response) {
  const keys = Object.keys(response ?? {});
  if (keys.length === 1 && typeof response.output === 'string') return response.output;
  return JSON.stringify(sortKeys(response));
}

function sortKeys(value) {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.keys(value).sort().map((name) => [name, sortKeys(value[name])]));
  }
  return value;
}

const isObject = (value) => value !== null && typeof value === 'object' && !Array.isArray(value);

/** Google's JSON parser takes proto field names in lowerCamelCase or snake_case. */
function camel(name) {
  const [head, ...rest] = name.split('_');
  return head + rest.map((word) => word.slice(0, 1).toUpperCase() + word.slice(1)).join('');
}

/** A proto `bytes` value in JSON: base64, standard or URL-safe, padding optional. */
function isBase64(value) {
  if (typeof value !== 'string' || !/^[A-Za-z0-9+/_-]+={0,2}$/.test(value)) return false;
  const bare = value.replace(/=+$/, '');
  // One leftover character (length % 4 == 1) cannot be decoded.
  return bare.length % 4 !== 1;
}

/** What the real Gemini API would reject in a `generateContent` request (the subset the tests rely on). */
export function geminiBodyProblems(body, headers, url) {
  const problems = [];
  if (headers['x-goog-api-key'] !== UPSTREAM_KEY) problems.push('API key not valid. Please pass a valid API key. (x-goog-api-key)');
  if (headers.authorization !== undefined) {
    problems.push('an Authorization header is OAuth, not the API key: do not send one with x-goog-api-key');
  }
  const parsed = new URL(url, 'http://fake');
  if (parsed.pathname.endsWith(':streamGenerateContent') && parsed.searchParams.getAll('alt').join(',') !== 'sse') {
    problems.push('streamGenerateContent without alt=sse answers a JSON array, not SSE: alt=sse is required');
  }

  for (const name of Object.keys(body)) {
    if (!GEMINI_TOP_LEVEL.has(camel(name))) problems.push(`Invalid JSON payload received. Unknown name "${name}": Cannot find field.`);
  }

  const system = body.systemInstruction;
  if (system !== undefined) {
    if (!isObject(system) || ![undefined, 'system', 'user'].includes(system.role)) {
      problems.push(`systemInstruction: role must be absent, system or user: ${JSON.stringify(system)}`);
    } else if (!Array.isArray(system.parts) || !system.parts.length || system.parts.some((part) => typeof part?.text !== 'string' || !part.text)) {
      problems.push('systemInstruction: parts must be non-empty text parts');
    }
  }

  const contents = body.contents;
  if (!Array.isArray(contents) || contents.length === 0) {
    problems.push('* GenerateContentRequest.contents: contents is not specified');
    return problems;
  }
  if (contents[0]?.role !== 'user') problems.push('contents[0]: Please ensure that multiturn requests start with a user turn.');
  let previousCalls = [];
  contents.forEach((content, index) => {
    const role = content?.role;
    const where = `contents[${index}]`;
    if (role !== 'user' && role !== 'model') problems.push(`${where}.role: Please use a valid role: user, model (got ${JSON.stringify(role)}).`);
    if (index > 0 && role === contents[index - 1]?.role) {
      problems.push(`${where}: Please ensure that multiturn requests alternate between user and model.`);
    }
    for (const name of Object.keys(content ?? {})) {
      if (name !== 'role' && name !== 'parts') problems.push(`${where}: Unknown name "${name}": Cannot find field.`);
    }
    let parts = content?.parts;
    if (!Array.isArray(parts) || parts.length === 0) {
      problems.push(`${where}.parts: must not be empty.`);
      parts = [];
    }
    const calls = [];
    const responses = [];
    parts.forEach((part, number) => {
      const at = `${where}.parts[${number}]`;
      if (!isObject(part)) {
        problems.push(`${at}: Invalid value: ${JSON.stringify(part)}`);
        return;
      }
      const names = Object.keys(part);
      const data = names.filter((name) => GEMINI_PART_DATA.has(camel(name)));
      const unknown = names.filter((name) => !GEMINI_PART_DATA.has(camel(name)) && !GEMINI_PART_META.has(camel(name)));
      if (unknown.length) problems.push(`${at}: Unknown name "${unknown[0]}": Cannot find field.`);
      if (data.length !== 1) {
        problems.push(`${at}: a part must hold exactly one of ${[...GEMINI_PART_DATA].sort().join(', ')} (got ${JSON.stringify(data)})`);
      }
      if ('thoughtSignature' in part && !isBase64(part.thoughtSignature)) {
        problems.push(`${at}.thought_signature: Invalid value (TYPE_BYTES), ${JSON.stringify(part.thoughtSignature)}`);
      }
      if ('text' in part && (typeof part.text !== 'string' || !part.text)) {
        problems.push(`${at}: Unable to submit request because it has an empty text parameter. Add a value to the parameter and try again.`);
      }
      if ('functionCall' in part) {
        const call = part.functionCall;
        if (role !== 'model') problems.push(`${at}: functionCall parts are only allowed in model turns`);
        const extra = isObject(call) ? Object.keys(call).filter((name) => !['id', 'name', 'args'].includes(name)) : [];
        if (!isObject(call) || extra.length || typeof call.name !== 'string' || (call.args !== undefined && !isObject(call.args))) {
          problems.push(`${at}.function_call: Invalid value: ${JSON.stringify(call)}`);
        } else {
          calls.push({ number, call, part });
        }
      }
      if ('functionResponse' in part) {
        const response = part.functionResponse;
        const allowed = ['id', 'name', 'response', 'willContinue', 'scheduling', 'parts'];
        if (!isObject(response) || Object.keys(response).some((name) => !allowed.includes(name))) {
          problems.push(`${at}.function_response: Invalid value: ${JSON.stringify(response)}`);
          return;
        }
        if (!isObject(response.response)) {
          problems.push(
            `${at}.function_response.response: Invalid value (type.googleapis.com/google.protobuf.Struct), ${JSON.stringify(response.response)}`,
          );
        }
        responses.push(response);
      }
    });
    if (calls.length) {
      // Gemini 3 signs the first functionCall part of a model turn and wants that signature back.
      const { number, call, part } = calls[0];
      if (part.thoughtSignature !== GEMINI_SIGNATURE) {
        problems.push(
          `${where}: Function call is missing a thought_signature in functionCall parts. This is required for tools to work ` +
            `correctly, and missing thought_signature may lead to degraded model performance. Additional data, function call ` +
            `\`default_api:${call.name}\` , position ${number + 1}. (thoughtSignature: ${JSON.stringify(part.thoughtSignature)})`,
        );
      }
    }
    if (previousCalls.length || responses.length) {
      if (responses.length !== previousCalls.length) {
        problems.push(
          `${where}: Please ensure that the number of function response parts (${responses.length}) is equal to the number ` +
            `of function call parts of the function call turn (${previousCalls.length}).`,
        );
      }
      const callNames = new Set(previousCalls.map((call) => call.name));
      const callIds = new Set(previousCalls.map((call) => call.id).filter(Boolean));
      for (const response of responses) {
        if (!callNames.has(response.name)) {
          problems.push(
            `${where}: functionResponse name ${JSON.stringify(response.name)} matches no functionCall of the model turn before ` +
              `(${JSON.stringify([...callNames].sort())})`,
          );
        }
        if (response.id && callIds.size && !callIds.has(response.id)) {
          problems.push(
            `${where}: functionResponse id ${JSON.stringify(response.id)} matches no functionCall id (${JSON.stringify([...callIds].sort())})`,
          );
        }
      }
    }
    previousCalls = calls.map(({ call }) => call);
  });

  for (const tool of Array.isArray(body.tools) ? body.tools : []) {
    for (const declaration of tool?.functionDeclarations ?? []) {
      const extra = Object.keys(declaration ?? {}).filter((name) => !GEMINI_DECLARATION_KEYS.has(name));
      if (extra.length) problems.push(`tools: Unknown name(s) ${JSON.stringify(extra.sort())} in function declaration`);
      if (!GEMINI_FUNCTION_NAME.test(String(declaration?.name))) problems.push(`tools: invalid function name ${JSON.stringify(declaration?.name)}`);
      if (declaration && 'parameters' in declaration && 'parametersJsonSchema' in declaration) {
        problems.push('tools: parameters and parametersJsonSchema are mutually exclusive');
      }
    }
  }
  if (body.tools !== undefined && !Array.isArray(body.tools)) problems.push('tools: must be a list');
  const calling = body.toolConfig?.functionCallingConfig ?? {};
  if (Object.keys(calling).length) {
    if (!['AUTO', 'ANY', 'NONE', 'VALIDATED', 'MODE_UNSPECIFIED'].includes(calling.mode)) {
      problems.push(`toolConfig.functionCallingConfig.mode: Invalid value ${JSON.stringify(calling.mode)}`);
    }
    if (calling.allowedFunctionNames?.length && !['ANY', 'VALIDATED'].includes(calling.mode)) {
      problems.push('toolConfig.functionCallingConfig: allowedFunctionNames needs mode ANY');
    }
  }
  const generation = body.generationConfig ?? {};
  for (const name of Object.keys(generation)) {
    if (!GEMINI_GENERATION_KEYS.has(camel(name))) problems.push(`generationConfig: Unknown name "${name}": Cannot find field.`);
  }
  const thinking = generation.thinkingConfig ?? {};
  if ('thinkingLevel' in thinking && 'thinkingBudget' in thinking) {
    problems.push("thinkingConfig: You can't use both thinking_level and the legacy thinking_budget parameter in the same request.");
  }
  return problems;
}

/** Writes a whole JSON answer. */
export function sendJson(res, status, payload) {
  const data = Buffer.from(JSON.stringify(payload));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': data.length });
  res.end(data);
}

/**
 * Writes an SSE answer: OpenAI style (`data:` lines, then `data: [DONE]`) or, with
 * `named`, Anthropic style (`event: <type>` + `data:`, no terminator).
 */
export async function sendSse(res, events, { named }) {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  res.flushHeaders();
  for (const event of events) {
    res.write(named ? `event: ${event.type}\ndata: ${JSON.stringify(event)}\n\n` : `data: ${JSON.stringify(event)}\n\n`);
    await sleep(EVENT_GAP_MS);
  }
  if (!named) res.write('data: [DONE]\n\n');
  res.end();
}

/** Google-style SSE: CRLF framing, `data:` lines only, no terminator (the end is the close). */
export async function sendGeminiSse(res, chunks) {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  res.flushHeaders();
  for (const chunk of chunks) {
    res.write(`data: ${JSON.stringify(chunk)}\r\n\r\n`);
    await sleep(EVENT_GAP_MS);
  }
  res.end();
}

/**
 * The dialect of a request path: `chat` (POST /v1/chat/completions), `responses` (POST
 * /v1/responses), `messages` (POST /v1/messages) or `gemini` (generateContent /
 * streamGenerateContent), else null.
 */
export function dialectOf(path) {
  if (path === '/v1/chat/completions') return 'chat';
  if (path === '/v1/responses') return 'responses';
  if (path === '/v1/messages') return 'messages';
  if (GEMINI_PATH.test(path)) return 'gemini';
  return null;
}

export class FakeUpstream {
  constructor() {
    this.requests = [];
    // `${dialect} ${model}` -> handler (see `script`).
    this.scripted = new Map();
    this.server = http.createServer((req, res) => {
      this.#handle(req, res).catch((error) => {
        if (!res.headersSent) this.#json(res, 500, openaiError(`fake upstream crashed: ${error?.stack ?? error}`, 'server_error'));
        else res.destroy(error);
      });
    });
    this.port = 0;
  }

  async start() {
    await new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => resolve());
    });
    this.port = this.server.address().port;
    return this;
  }

  async stop() {
    this.server.closeAllConnections?.();
    await new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** The OpenAI-dialect base URL (what an `openai-compatible` provider's base_url is). */
  get baseURL() {
    return `http://127.0.0.1:${this.port}/v1`;
  }

  /** The bare host (what an `anthropic` or `gemini` provider's base_url is). */
  get hostURL() {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Requests whose raw body contains `marker`. */
  find(marker) {
    return this.requests.filter((request) => request.raw.includes(marker));
  }

  /** The one request containing `marker` (fails if there are none or several). */
  one(marker) {
    const found = this.find(marker);
    if (found.length !== 1) {
      throw new Error(`expected exactly one upstream request containing ${JSON.stringify(marker)}, got ${found.length}`);
    }
    return found[0];
  }

  /**
   * Serves upstream model `model` of `dialect` (see `dialectOf`; for Gemini the model in
   * the URL) with `handler` instead of the built-in behaviour. The handler gets
   * `{ req, res, body, raw, url, path, model, dialect }` once the body parsed as a JSON
   * object, and writes the whole answer itself (`sendJson` / `sendSse` / `sendGeminiSse`),
   * validating the body first with this module's `*BodyProblems` functions.
   */
  script(dialect, model, handler) {
    this.scripted.set(`${dialect} ${model}`, handler);
    return this;
  }

  async #handle(req, res) {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const raw = Buffer.concat(chunks).toString('utf8');
    let body = null;
    try {
      body = raw ? JSON.parse(raw) : null;
    } catch {
      body = null;
    }
    const path = req.url.split('?')[0];
    this.requests.push({ method: req.method, path, url: req.url, headers: { ...req.headers }, body, raw });

    if (req.method !== 'POST') {
      this.#json(res, 404, openaiError(`no route ${req.method} ${path}`));
      return;
    }
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      this.#json(res, 400, openaiError('body is not a JSON object'));
      return;
    }
    const dialect = dialectOf(path);
    const model = dialect === 'gemini' ? GEMINI_PATH.exec(path)[1] : body.model;
    const handler = this.scripted.get(`${dialect} ${model}`);
    if (handler) await handler({ req, res, body, raw, url: req.url, path, model, dialect });
    else if (path === '/v1/chat/completions') await this.#chat(req, res, body);
    else if (path === '/v1/messages') await this.#messages(req, res, body);
    else if (GEMINI_PATH.test(path)) await this.#gemini(req, res, body);
    else this.#json(res, 404, openaiError(`no route ${path}`));
  }

  #json(res, status, payload) {
    sendJson(res, status, payload);
  }

  async #sse(res, events, { named }) {
    await sendSse(res, events, { named });
  }

  // ---------------------------------------------------------------- OpenAI dialect

  async #chat(req, res, body) {
    const { model } = body;
    if (req.headers.authorization !== `Bearer ${UPSTREAM_KEY}`) {
      this.#json(res, 401, openaiError('Incorrect API key provided.', 'invalid_request_error', null, 'invalid_api_key'));
      return;
    }
    if (model === 'fake-400') {
      this.#json(res, 400, openaiError(UPSTREAM_400_MESSAGE));
      return;
    }
    if (!['fake-chat', 'fake-tools', 'fake-parallel'].includes(model)) {
      this.#json(res, 404, openaiError(`The model \`${model}\` does not exist`, 'invalid_request_error', 'model', 'model_not_found'));
      return;
    }
    const stream = body.stream === true;
    const includeUsage = stream && body.stream_options?.include_usage === true;
    const id = `chatcmpl-fake${randomUUID().slice(0, 12)}`;
    const created = Math.floor(Date.now() / 1000);

    let calls = null;
    if (model === 'fake-tools') calls = [{ id: TOOL_CALL_ID, name: TOOL_NAME, arguments: TOOL_ARGUMENTS, pieces: TOOL_ARGUMENT_PIECES }];
    if (model === 'fake-parallel') calls = PARALLEL_CALLS;

    if (!stream) {
      const message = calls
        ? {
            role: 'assistant',
            content: null,
            refusal: null,
            tool_calls: calls.map((call) => ({ id: call.id, type: 'function', function: { name: call.name, arguments: call.arguments } })),
          }
        : { role: 'assistant', content: CHAT_TEXT, refusal: null };
      this.#json(res, 200, {
        id,
        object: 'chat.completion',
        created,
        model,
        system_fingerprint: 'fp_fake',
        choices: [{ index: 0, message, logprobs: null, finish_reason: calls ? 'tool_calls' : 'stop' }],
        usage: { ...CHAT_USAGE },
      });
      return;
    }

    const chunk = (delta, finish = null) => {
      const event = {
        id,
        object: 'chat.completion.chunk',
        created,
        model,
        system_fingerprint: 'fp_fake',
        choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
      };
      // OpenAI sends `usage: null` on every chunk when usage was asked for.
      if (includeUsage) event.usage = null;
      return event;
    };
    const events = [];
    if (calls) {
      events.push(chunk({ role: 'assistant', content: null, refusal: null }));
      // Like OpenAI: each call opens with id/type/name and empty arguments, then its
      // arguments follow in token-like fragments carrying only `index`; the second
      // call starts after the first is complete (the SDK's stream helper treats a new
      // index as the end of the previous call).
      calls.forEach((call, index) => {
        events.push(chunk({ tool_calls: [{ index, id: call.id, type: 'function', function: { name: call.name, arguments: '' } }] }));
        for (const piece of call.pieces) events.push(chunk({ tool_calls: [{ index, function: { arguments: piece } }] }));
      });
      events.push(chunk({}, 'tool_calls'));
    } else {
      events.push(chunk({ role: 'assistant', content: '', refusal: null }));
      for (const piece of CHAT_PIECES) events.push(chunk({ content: piece }));
      events.push(chunk({}, 'stop'));
    }
    if (includeUsage) {
      events.push({ id, object: 'chat.completion.chunk', created, model, system_fingerprint: 'fp_fake', choices: [], usage: { ...CHAT_USAGE } });
    }
    await this.#sse(res, events, { named: false });
  }

  // ---------------------------------------------------------------- Anthropic dialect

  async #messages(req, res, body) {
    const problems = anthropicBodyProblems(body, req.headers);
    if (problems.length) {
      this.#json(res, 400, { type: 'error', error: { type: 'invalid_request_error', message: problems.join('; ') } });
      return;
    }
    const { model } = body;
    if (model !== 'claude-text' && model !== 'claude-tools') {
      this.#json(res, 404, { type: 'error', error: { type: 'not_found_error', message: `model: ${model}` } });
      return;
    }
    const tools = model === 'claude-tools';
    const id = `msg_fake${randomUUID().slice(0, 12)}`;
    const usage = { ...ANTHROPIC_USAGE };
    const content = tools
      ? [
          { type: 'thinking', thinking: THINKING_TEXT, signature: THINKING_SIGNATURE },
          { type: 'tool_use', id: CLAUDE_TOOL_IDS[0], name: TOOL_NAME, input: CLAUDE_TOOL_INPUTS[0] },
          { type: 'tool_use', id: CLAUDE_TOOL_IDS[1], name: TOOL_NAME, input: CLAUDE_TOOL_INPUTS[1] },
        ]
      : [{ type: 'text', text: CHAT_TEXT }];
    const stopReason = tools ? 'tool_use' : 'end_turn';

    if (body.stream !== true) {
      this.#json(res, 200, { id, type: 'message', role: 'assistant', model, content, stop_reason: stopReason, stop_sequence: null, usage });
      return;
    }
    const events = [
      {
        type: 'message_start',
        message: { id, type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: { ...usage, output_tokens: 1 } },
      },
      { type: 'ping' },
    ];
    content.forEach((block, index) => {
      if (block.type === 'text') {
        events.push({ type: 'content_block_start', index, content_block: { type: 'text', text: '' } });
        for (const piece of CHAT_PIECES) events.push({ type: 'content_block_delta', index, delta: { type: 'text_delta', text: piece } });
      } else if (block.type === 'thinking') {
        events.push({ type: 'content_block_start', index, content_block: { type: 'thinking', thinking: '', signature: '' } });
        events.push({ type: 'content_block_delta', index, delta: { type: 'thinking_delta', thinking: block.thinking } });
        events.push({ type: 'content_block_delta', index, delta: { type: 'signature_delta', signature: block.signature } });
      } else {
        events.push({ type: 'content_block_start', index, content_block: { type: 'tool_use', id: block.id, name: block.name, input: {} } });
        for (const piece of split(JSON.stringify(block.input), 5)) {
          events.push({ type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: piece } });
        }
      }
      events.push({ type: 'content_block_stop', index });
    });
    events.push({ type: 'message_delta', delta: { stop_reason: stopReason, stop_sequence: null }, usage: { output_tokens: usage.output_tokens } });
    events.push({ type: 'message_stop' });
    await this.#sse(res, events, { named: true });
  }

  // ---------------------------------------------------------------- Gemini dialect

  async #geminiSse(res, chunks) {
    await sendGeminiSse(res, chunks);
  }

  /**
   * A Gemini API server (`generateContent` / `streamGenerateContent?alt=sse`): checks the
   * body as Google would (`geminiBodyProblems`), then answers as the model in the URL
   * behaves (`GEMINI_MODELS`). A request whose last content holds function responses is
   * always answered with text quoting the tool output.
   */
  async #gemini(req, res, body) {
    const [, model, method] = GEMINI_PATH.exec(req.url.split('?')[0]);
    const problems = geminiBodyProblems(body, req.headers, req.url);
    if (problems.length) {
      this.#json(res, 400, googleError(400, problems.join('; '), 'INVALID_ARGUMENT'));
      return;
    }
    const behaviour = GEMINI_MODELS[model];
    if (behaviour === undefined) {
      this.#json(res, 404, googleError(404, `models/${model} is not found for API version v1beta, or is not supported for ${method}.`, 'NOT_FOUND'));
      return;
    }
    if (behaviour === 'busy') {
      this.#json(res, 429, GEMINI_429_BODY);
      return;
    }
    const declared = new Set(
      (body.tools ?? []).flatMap((tool) => (tool.functionDeclarations ?? []).map((declaration) => declaration.name)),
    );
    const outputs = body.contents.at(-1).parts.filter((part) => 'functionResponse' in part).map((part) => part.functionResponse.response);
    let steps;
    if (outputs.length) {
      const answer = GEMINI_TOOL_ANSWER + outputs.map(geminiToolOutput).join('; ');
      const middle = Math.floor(answer.length / 2);
      steps = [[{ text: answer.slice(0, middle) }], [{ text: answer.slice(middle) }]];
    } else if ((behaviour === 'tools' || behaviour === 'parallel') && declared.has(TOOL_NAME)) {
      // Gemini 3 signs the first functionCall part of a step, and only that one.
      steps = [[{ functionCall: { name: TOOL_NAME, args: { city: 'Paris' } }, thoughtSignature: GEMINI_SIGNATURE }]];
      if (behaviour === 'parallel') steps.push([{ functionCall: { name: TOOL_NAME, args: { city: 'Tokyo' } } }]);
      // A final chunk with no parts carries the finish reason.
      steps.push([]);
    } else {
      steps = GEMINI_PIECES.map((piece) => [{ text: piece }]);
      if (behaviour === 'thinking') steps.unshift([{ text: GEMINI_THOUGHT, thought: true }]);
      // Gemini 3 ends a text answer with an empty text part that carries a signature.
      steps.push([{ text: '', thoughtSignature: GEMINI_TEXT_SIGNATURE }]);
    }
    const responseId = `gemini-fake-${randomUUID().replaceAll('-', '').slice(0, 12)}`;
    const response = (parts, usageMetadata, finished) => {
      const candidate = { content: parts.length ? { role: 'model', parts } : { role: 'model' }, index: 0 };
      if (finished) candidate.finishReason = 'STOP';
      return { candidates: [candidate], usageMetadata, modelVersion: model, responseId };
    };

    if (method === 'generateContent') {
      // Whole answers hold one text part per run of text (the signature on its last one).
      const plainText = (part) => Object.keys(part).every((name) => name === 'text' || name === 'thoughtSignature');
      const merged = [];
      for (const part of steps.flat()) {
        const last = merged.at(-1);
        if (last && plainText(part) && plainText(last) && !('thoughtSignature' in last)) {
          merged[merged.length - 1] = { ...last, ...part, text: last.text + part.text };
        } else {
          merged.push({ ...part });
        }
      }
      this.#json(res, 200, response(merged, geminiUsage(1, 1), true));
      return;
    }
    await this.#geminiSse(
      res,
      steps.map((parts, number) => response(parts, geminiUsage(number + 1, steps.length), number + 1 === steps.length)),
    );
  }
}

function split(text, size) {
  const pieces = [];
  for (let start = 0; start < text.length; start += size) pieces.push(text.slice(start, start + size));
  return pieces;
}
