// A fake upstream for the llmux openai-npm conformance suite.
//
// One node:http server on 127.0.0.1:<random port> that speaks both dialects the
// gateway forwards to:
//   POST /v1/chat/completions  OpenAI Chat Completions (JSON or SSE `data:` lines + [DONE])
//   POST /v1/messages          Anthropic Messages (validated like the real API, JSON or named SSE)
// Behaviour is chosen by the request's `model` (the route's upstream model name).
// Every request is recorded (method, path, lower-cased headers, parsed body, raw body)
// so tests can assert on what the gateway actually sent; each test puts a unique
// marker string in its request and finds its record with `one(marker)`.

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

/** What the real Messages API would reject in `body` (the subset the tests rely on). */
export function anthropicBodyProblems(body, headers) {
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
  if (messages[0]?.role !== 'user') problems.push('messages: the first message must use the user role');
  messages.forEach((message, index) => {
    const role = message?.role;
    if (role === 'system') problems.push(`messages.${index}.role: "system" is not a message role; use the top-level system parameter`);
    else if (role !== 'user' && role !== 'assistant') problems.push(`messages.${index}.role: must be user or assistant`);
    if (index > 0 && role === messages[index - 1]?.role) problems.push(`messages.${index}: roles must alternate between user and assistant`);
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
        const allowed = new Set(['name', 'description', 'input_schema', 'cache_control', 'type']);
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

export class FakeUpstream {
  constructor() {
    this.requests = [];
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

  /** The bare host (what an `anthropic` provider's base_url is). */
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
    if (path === '/v1/chat/completions') await this.#chat(req, res, body);
    else if (path === '/v1/messages') await this.#messages(req, res, body);
    else this.#json(res, 404, openaiError(`no route ${path}`));
  }

  #json(res, status, payload) {
    const data = Buffer.from(JSON.stringify(payload));
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': data.length });
    res.end(data);
  }

  async #sse(res, events, { named }) {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.flushHeaders();
    for (const event of events) {
      res.write(named ? `event: ${event.type}\ndata: ${JSON.stringify(event)}\n\n` : `data: ${JSON.stringify(event)}\n\n`);
      await sleep(EVENT_GAP_MS);
    }
    if (!named) res.write('data: [DONE]\n\n');
    res.end();
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
}

function split(text, size) {
  const pieces = [];
  for (let start = 0; start < text.length; start += size) pieces.push(text.slice(start, start + size));
  return pieces;
}
