// Conformance of llmux with the official `openai` npm SDK.
//
// Starts a fake upstream (fake-upstream.mjs: OpenAI, Anthropic and Gemini dialects) and
// the real llmux binary (gateway.mjs), creates a virtual key, then drives the gateway
// with `new OpenAI({ baseURL: <gateway>/v1, apiKey: <virtual key> })`.
// Run with scripts/sdk-node-tests.sh (or `node --test` here with LLMUX_BIN set).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import OpenAI, { AuthenticationError, BadRequestError, InternalServerError, NotFoundError, RateLimitError } from 'openai';

import {
  ANTHROPIC_USAGE,
  CHAT_TEXT,
  CHAT_USAGE,
  CLAUDE_TOOL_IDS,
  CLAUDE_TOOL_INPUTS,
  FakeUpstream,
  GEMINI_CANDIDATES_TOKENS,
  GEMINI_PIECES,
  GEMINI_PROMPT_TOKENS,
  GEMINI_RETRY_DELAY_S,
  GEMINI_SIGNATURE,
  GEMINI_TEXT,
  GEMINI_THOUGHT,
  GEMINI_THOUGHTS_TOKENS,
  GEMINI_TOOL_ANSWER,
  PARALLEL_CALLS,
  THINKING_TEXT,
  TOOL_ARGUMENTS,
  TOOL_CALL_ID,
  TOOL_NAME,
  UPSTREAM_400_MESSAGE,
  UPSTREAM_KEY,
} from './fake-upstream.mjs';
import { MODELS, createKey, startGateway, stopGateway, usageRecords } from './gateway.mjs';

const WEATHER_TOOLS = [
  {
    type: 'function',
    function: {
      name: TOOL_NAME,
      description: 'Current weather for a city.',
      parameters: {
        type: 'object',
        properties: { city: { type: 'string', description: 'City name' } },
        required: ['city'],
        additionalProperties: false,
      },
      strict: true,
    },
  },
];
const TIME_TOOL = {
  type: 'function',
  function: {
    name: 'get_time',
    description: 'Current time in a zone.',
    parameters: { type: 'object', properties: { zone: { type: 'string' } }, required: ['zone'] },
  },
};
// Anthropic folds cache reads and writes out of input_tokens; OpenAI's prompt_tokens include them.
const ANTHROPIC_PROMPT_TOKENS =
  ANTHROPIC_USAGE.input_tokens + ANTHROPIC_USAGE.cache_read_input_tokens + ANTHROPIC_USAGE.cache_creation_input_tokens;
const PIXEL_PNG_B64 =
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==';

let upstream;
let gateway;
let key;
let client;

const marker = () => `marker-${randomUUID()}`;
const user = (text) => [{ role: 'user', content: text }];

function makeClient(apiKey) {
  return new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey, maxRetries: 0, timeout: 30_000 });
}

async function collect(stream) {
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  return chunks;
}

/** Sends `request` as a streamed chat (`stream: true`) and collects its chunks. */
async function streamed(request) {
  return collect(await client.chat.completions.create({ ...request, stream: true }));
}

/** The text content of streamed chunks (first choice). */
function streamedText(chunks) {
  return chunks.filter((chunk) => chunk.choices.length).map((chunk) => chunk.choices[0].delta.content ?? '').join('');
}

/** Reassembles streamed tool-call fragments by `index`. */
function assembleToolCalls(chunks) {
  const calls = new Map();
  for (const chunk of chunks) {
    for (const choice of chunk.choices) {
      for (const delta of choice.delta?.tool_calls ?? []) {
        assert.equal(typeof delta.index, 'number', `tool call fragment without index: ${JSON.stringify(delta)}`);
        const call = calls.get(delta.index) ?? { id: null, type: null, name: '', arguments: '' };
        if (delta.id) call.id = delta.id;
        if (delta.type) call.type = delta.type;
        call.name += delta.function?.name ?? '';
        call.arguments += delta.function?.arguments ?? '';
        calls.set(delta.index, call);
      }
    }
  }
  return calls;
}

function finishReasons(chunks) {
  return chunks.flatMap((chunk) => chunk.choices.map((choice) => choice.finish_reason).filter(Boolean));
}

/** The upstream sees the provider's key, never the caller's virtual key. */
function assertUpstreamOpenAIAuth(recorded) {
  assert.equal(recorded.headers.authorization, `Bearer ${UPSTREAM_KEY}`);
  for (const [name, value] of Object.entries(recorded.headers)) {
    assert.ok(!String(value).includes(key.key), `the virtual key leaked upstream in header ${name}`);
  }
  assert.ok(!recorded.raw.includes(key.key), 'the virtual key leaked upstream in the body');
}

/** The Messages request the gateway sent for `mark`, checked for Anthropic auth. */
function messagesRequest(mark) {
  const recorded = upstream.one(mark);
  assert.equal(recorded.method, 'POST');
  assert.equal(recorded.path, '/v1/messages');
  assert.equal(recorded.headers['x-api-key'], UPSTREAM_KEY);
  assert.equal(recorded.headers['anthropic-version'], '2023-06-01');
  assert.equal(recorded.headers.authorization, undefined, 'no Authorization header goes to Anthropic');
  for (const [name, value] of Object.entries(recorded.headers)) {
    assert.ok(!String(value).includes(key.key), `the virtual key leaked upstream in header ${name}`);
  }
  assert.ok(!recorded.raw.includes(key.key), 'the virtual key leaked upstream in the body');
  return recorded.body;
}

before(async () => {
  upstream = await new FakeUpstream().start();
  gateway = await startGateway(upstream);
  key = await createKey(gateway, { name: 'node' });
  assert.match(key.key, /^sk-llmux-/);
  client = makeClient(key.key);
});

after(async () => {
  try {
    if (gateway) {
      const { code, signal } = await stopGateway(gateway);
      assert.equal(code, 0, `llmux exited with code ${code} (signal ${signal}) after SIGTERM:\n${gateway.log().slice(-4000)}`);
    }
  } finally {
    if (upstream) await upstream.stop();
  }
});

// ------------------------------------------------------------------ chat completions

describe('chat completions (openai-compatible upstream)', () => {
  test('non-streaming: content, usage, upstream model and provider key', async () => {
    const mark = marker();
    const completion = await client.chat.completions.create({ model: 'chat', messages: user(mark) });

    assert.equal(completion.object, 'chat.completion');
    assert.equal(completion.choices.length, 1);
    assert.equal(completion.choices[0].message.role, 'assistant');
    assert.equal(completion.choices[0].message.content, CHAT_TEXT);
    assert.equal(completion.choices[0].finish_reason, 'stop');
    assert.equal(completion.usage?.prompt_tokens, CHAT_USAGE.prompt_tokens);
    assert.equal(completion.usage?.completion_tokens, CHAT_USAGE.completion_tokens);
    assert.equal(completion.usage?.total_tokens, CHAT_USAGE.total_tokens);

    const recorded = upstream.one(mark);
    assert.equal(recorded.method, 'POST');
    assert.equal(recorded.path, '/v1/chat/completions');
    assert.equal(recorded.body.model, 'fake-chat');
    assert.deepEqual(recorded.body.messages, user(mark));
    assert.ok(!('stream_options' in recorded.body), 'no stream_options on a non-streaming request');
    assertUpstreamOpenAIAuth(recorded);
  });

  test('streaming without include_usage: text chunks only, no usage chunk', async () => {
    const mark = marker();
    const chunks = await streamed({ model: 'chat', messages: user(mark) });

    assert.ok(chunks.length > 1, `expected several chunks, got ${chunks.length}`);
    assert.ok(chunks.every((chunk) => chunk.object === 'chat.completion.chunk'));
    const empty = chunks.filter((chunk) => chunk.choices.length === 0);
    assert.equal(empty.length, 0, `the client did not ask for usage but got chunk(s) with empty choices: ${JSON.stringify(empty)}`);
    assert.ok(chunks.every((chunk) => chunk.usage == null), 'usage leaked into chunks the client did not ask it for');
    assert.equal(chunks.map((chunk) => chunk.choices[0].delta.content ?? '').join(''), CHAT_TEXT);
    assert.deepEqual(finishReasons(chunks), ['stop']);
    assert.equal(chunks.at(-1).choices[0].finish_reason, 'stop');

    const recorded = upstream.one(mark);
    assert.equal(recorded.body.model, 'fake-chat');
    assert.equal(recorded.body.stream, true);
    // The gateway asks the upstream for usage (to meter the request) even though the client did not.
    assert.equal(recorded.body.stream_options?.include_usage, true);
    assertUpstreamOpenAIAuth(recorded);
  });

  test('streaming with include_usage: exactly one final usage chunk', async () => {
    const mark = marker();
    const chunks = await streamed({
      model: 'chat',
      messages: user(mark),
      stream_options: { include_usage: true },
    });

    const text = streamedText(chunks);
    assert.equal(text, CHAT_TEXT);
    assert.deepEqual(finishReasons(chunks), ['stop']);
    const final = chunks.at(-1);
    assert.deepEqual(final.choices, []);
    assert.deepEqual(
      { prompt: final.usage?.prompt_tokens, completion: final.usage?.completion_tokens, total: final.usage?.total_tokens },
      { prompt: CHAT_USAGE.prompt_tokens, completion: CHAT_USAGE.completion_tokens, total: CHAT_USAGE.total_tokens },
    );
    assert.equal(chunks.filter((chunk) => chunk.choices.length === 0).length, 1, 'exactly one usage chunk');
    assert.ok(chunks.slice(0, -1).every((chunk) => chunk.usage == null), 'only the final chunk carries usage');

    assert.deepEqual(upstream.one(mark).body.stream_options, { include_usage: true });
  });

  test('image content part passes through to the OpenAI upstream unchanged', async () => {
    const mark = marker();
    const messages = [
      {
        role: 'user',
        content: [
          { type: 'text', text: `What is in this image? ${mark}` },
          { type: 'image_url', image_url: { url: `data:image/png;base64,${PIXEL_PNG_B64}`, detail: 'low' } },
        ],
      },
    ];
    const completion = await client.chat.completions.create({ model: 'chat', messages });
    assert.equal(completion.choices[0].message.content, CHAT_TEXT);

    const recorded = upstream.one(mark);
    assert.deepEqual(recorded.body.messages, messages);
    assert.equal(recorded.body.model, 'fake-chat');
  });
});

// ------------------------------------------------------------------ tools

describe('tool calls (openai-compatible upstream)', () => {
  test('single tool call, non-streaming', async () => {
    const mark = marker();
    const completion = await client.chat.completions.create({
      model: 'tools',
      messages: user(`Weather in Paris? ${mark}`),
      tools: WEATHER_TOOLS,
      tool_choice: 'auto',
    });

    const choice = completion.choices[0];
    assert.equal(choice.finish_reason, 'tool_calls');
    assert.equal(choice.message.tool_calls?.length, 1);
    const [call] = choice.message.tool_calls;
    assert.equal(call.id, TOOL_CALL_ID);
    assert.equal(call.type, 'function');
    assert.equal(call.function.name, TOOL_NAME);
    assert.equal(call.function.arguments, TOOL_ARGUMENTS);
    assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Paris' });

    const recorded = upstream.one(mark);
    assert.equal(recorded.body.model, 'fake-tools');
    assert.deepEqual(recorded.body.tools, WEATHER_TOOLS);
    assert.equal(recorded.body.tool_choice, 'auto');
  });

  test('single tool call, streamed: arguments reassembled from fragments', async () => {
    const mark = marker();
    const chunks = await streamed({
      model: 'tools',
      messages: user(`Weather in Paris? ${mark}`),
      tools: WEATHER_TOOLS,
    });

    const fragments = chunks.flatMap((chunk) => chunk.choices.flatMap((choice) => choice.delta?.tool_calls ?? []));
    assert.ok(fragments.length > 2, `expected the arguments in several fragments, got ${fragments.length}`);
    const calls = assembleToolCalls(chunks);
    assert.deepEqual([...calls.keys()], [0]);
    assert.deepEqual(calls.get(0), { id: TOOL_CALL_ID, type: 'function', name: TOOL_NAME, arguments: TOOL_ARGUMENTS });
    assert.deepEqual(finishReasons(chunks), ['tool_calls']);

    const recorded = upstream.one(mark);
    assert.equal(recorded.body.stream, true);
    assert.deepEqual(recorded.body.tools, WEATHER_TOOLS);
  });

  test('two parallel tool calls, streamed in fragments: indexes 0 and 1', async () => {
    const mark = marker();
    const chunks = await streamed({
      model: 'parallel',
      messages: user(`Weather in Paris and time in Tokyo? ${mark}`),
      tools: [...WEATHER_TOOLS, TIME_TOOL],
      parallel_tool_calls: true,
    });

    const calls = assembleToolCalls(chunks);
    assert.deepEqual([...calls.keys()].sort(), [0, 1]);
    PARALLEL_CALLS.forEach((expected, index) => {
      assert.deepEqual(calls.get(index), { id: expected.id, type: 'function', name: expected.name, arguments: expected.arguments });
    });
    assert.deepEqual(JSON.parse(calls.get(1).arguments), { zone: 'Asia/Tokyo' });
    assert.deepEqual(finishReasons(chunks), ['tool_calls']);

    const recorded = upstream.one(mark);
    assert.equal(recorded.body.model, 'fake-parallel');
    assert.equal(recorded.body.parallel_tool_calls, true);
  });

  test("the SDK's stream helper accumulates the parallel calls (finalChatCompletion)", async () => {
    const mark = marker();
    const runner = client.chat.completions.stream({
      model: 'parallel',
      messages: user(`Both, please. ${mark}`),
      tools: [...WEATHER_TOOLS, TIME_TOOL],
    });
    const final = await runner.finalChatCompletion();
    const message = final.choices[0].message;
    assert.equal(final.choices[0].finish_reason, 'tool_calls');
    assert.deepEqual(
      message.tool_calls.map((call) => [call.id, call.function.name, call.function.arguments]),
      PARALLEL_CALLS.map((call) => [call.id, call.name, call.arguments]),
    );
    // get_weather is a strict tool, so the helper parsed its arguments too.
    assert.deepEqual(message.tool_calls[0].function.parsed_arguments, { city: 'Paris' });
    assert.equal(upstream.one(mark).body.stream, true);
  });
});

// ------------------------------------------------------------------ Anthropic provider

describe('the openai SDK against an anthropic provider (translated)', () => {
  test('sonnet: text, usage mapped, valid Messages body', async () => {
    const mark = marker();
    const completion = await client.chat.completions.create({
      model: 'sonnet',
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: mark },
      ],
      max_tokens: 300,
    });

    assert.equal(completion.choices[0].message.role, 'assistant');
    assert.equal(completion.choices[0].message.content, CHAT_TEXT);
    assert.equal(completion.choices[0].finish_reason, 'stop');
    assert.equal(completion.usage?.prompt_tokens, ANTHROPIC_PROMPT_TOKENS);
    assert.equal(completion.usage?.completion_tokens, ANTHROPIC_USAGE.output_tokens);

    const body = messagesRequest(mark);
    assert.equal(body.model, 'claude-text');
    assert.equal(body.system, 'You are terse.');
    assert.equal(body.max_tokens, 300);
    assert.equal(body.messages[0].role, 'user');
    assert.ok(body.messages.every((message) => message.role !== 'system'), 'system went top-level, not into messages');
    const firstText = typeof body.messages[0].content === 'string' ? body.messages[0].content : body.messages[0].content[0].text;
    assert.equal(firstText, mark);
  });

  test('sonnet, streamed: text deltas and usage', async () => {
    const mark = marker();
    const chunks = await streamed({
      model: 'sonnet',
      messages: user(mark),
      stream_options: { include_usage: true },
    });
    const text = streamedText(chunks);
    assert.equal(text, CHAT_TEXT);
    assert.deepEqual(finishReasons(chunks), ['stop']);
    const final = chunks.at(-1);
    assert.deepEqual(final.choices, []);
    assert.equal(final.usage?.prompt_tokens, ANTHROPIC_PROMPT_TOKENS);
    assert.equal(final.usage?.completion_tokens, ANTHROPIC_USAGE.output_tokens);

    const body = messagesRequest(mark);
    assert.equal(body.stream, true);
    assert.ok(Number.isInteger(body.max_tokens) && body.max_tokens > 0, 'the gateway supplies max_tokens');
    assert.ok(!('stream_options' in body));
  });

  test('sonnet-tools: parallel tool calls in order; tools sent with input_schema', async () => {
    const mark = marker();
    const completion = await client.chat.completions.create({
      model: 'sonnet-tools',
      messages: [
        { role: 'system', content: 'Use tools.' },
        { role: 'user', content: `Weather in Paris and Tokyo? ${mark}` },
      ],
      tools: WEATHER_TOOLS,
      tool_choice: 'required',
    });

    const choice = completion.choices[0];
    assert.equal(choice.finish_reason, 'tool_calls');
    assert.deepEqual(
      choice.message.tool_calls.map((call) => [call.id, call.type, call.function.name, JSON.parse(call.function.arguments)]),
      [
        [CLAUDE_TOOL_IDS[0], 'function', TOOL_NAME, CLAUDE_TOOL_INPUTS[0]],
        [CLAUDE_TOOL_IDS[1], 'function', TOOL_NAME, CLAUDE_TOOL_INPUTS[1]],
      ],
    );

    const body = messagesRequest(mark);
    assert.equal(body.model, 'claude-tools');
    assert.equal(body.system, 'Use tools.');
    assert.ok(Number.isInteger(body.max_tokens) && body.max_tokens > 0);
    assert.equal(body.messages[0].role, 'user');
    assert.equal(body.tools.length, 1);
    assert.equal(body.tools[0].name, TOOL_NAME);
    assert.equal(body.tools[0].description, 'Current weather for a city.');
    assert.deepEqual(body.tools[0].input_schema, WEATHER_TOOLS[0].function.parameters);
    assert.ok(!('function' in body.tools[0]) && !('parameters' in body.tools[0]), 'not an OpenAI-shaped tool');
    assert.deepEqual(body.tool_choice, { type: 'any' });
  });

  test('sonnet-tools, streamed: tool_use blocks become tool calls 0 and 1', async () => {
    const mark = marker();
    const chunks = await streamed({
      model: 'sonnet-tools',
      messages: user(mark),
      tools: WEATHER_TOOLS,
    });
    // Upstream the tool_use blocks are content blocks 1 and 2 (after a thinking block).
    const calls = assembleToolCalls(chunks);
    assert.deepEqual([...calls.keys()].sort(), [0, 1]);
    assert.deepEqual(
      [0, 1].map((index) => [calls.get(index).id, calls.get(index).name, JSON.parse(calls.get(index).arguments)]),
      [
        [CLAUDE_TOOL_IDS[0], TOOL_NAME, CLAUDE_TOOL_INPUTS[0]],
        [CLAUDE_TOOL_IDS[1], TOOL_NAME, CLAUDE_TOOL_INPUTS[1]],
      ],
    );
    assert.deepEqual(finishReasons(chunks), ['tool_calls']);
    const allContent = chunks.flatMap((chunk) => chunk.choices.map((choice) => choice.delta?.content ?? '')).join('');
    assert.ok(!allContent.includes(THINKING_TEXT), 'thinking is not leaked as assistant content');

    const body = messagesRequest(mark);
    assert.equal(body.stream, true);
    assert.ok(body.tools.every((tool) => tool.input_schema && !tool.function));
  });
});

// ------------------------------------------------------------------ Gemini provider

// Thoughts are billed as output: OpenAI completion_tokens include Gemini's thoughtsTokenCount.
const GEMINI_OUTPUT_TOKENS = GEMINI_CANDIDATES_TOKENS + GEMINI_THOUGHTS_TOKENS;
const GEMINI_USAGE = {
  prompt_tokens: GEMINI_PROMPT_TOKENS,
  completion_tokens: GEMINI_OUTPUT_TOKENS,
  total_tokens: GEMINI_PROMPT_TOKENS + GEMINI_OUTPUT_TOKENS,
  reasoning_tokens: GEMINI_THOUGHTS_TOKENS,
};
// What WEATHER_TOOLS becomes upstream (`strict` has no Gemini equivalent).
const GEMINI_WEATHER_TOOLS = [
  {
    functionDeclarations: [
      {
        name: TOOL_NAME,
        description: WEATHER_TOOLS[0].function.description,
        parametersJsonSchema: WEATHER_TOOLS[0].function.parameters,
      },
    ],
  },
];
// How llmux shows Gemini's thoughtSignature on an OpenAI tool call (as Google's own
// OpenAI-compatible endpoint does).
const GEMINI_EXTRA_CONTENT = { google: { thought_signature: GEMINI_SIGNATURE } };
const TOOL_OUTPUT = '18C and sunny';

function usageOf(usage) {
  return {
    prompt_tokens: usage?.prompt_tokens,
    completion_tokens: usage?.completion_tokens,
    total_tokens: usage?.total_tokens,
    reasoning_tokens: usage?.completion_tokens_details?.reasoning_tokens,
  };
}

/**
 * The `count` upstream requests that carried `mark`, each checked to be a Gemini request:
 * x-goog-api-key with the provider key, no Authorization, no OpenAI-only body fields, no
 * virtual key anywhere. (The fake already answered 400 to anything Gemini would reject.)
 */
function geminiRequests(mark, count) {
  const found = upstream.find(mark);
  assert.equal(found.length, count, `expected ${count} upstream requests containing ${JSON.stringify(mark)}, got ${found.length}`);
  for (const recorded of found) {
    assert.equal(recorded.method, 'POST');
    assert.match(recorded.path, /^\/v1beta\/models\/[^/:]+:(generateContent|streamGenerateContent)$/);
    assert.equal(recorded.headers['x-goog-api-key'], UPSTREAM_KEY);
    assert.equal(recorded.headers.authorization, undefined, 'no Authorization header goes to Gemini');
    for (const field of ['model', 'messages', 'stream', 'stream_options', 'max_tokens', 'tool_choice']) {
      assert.ok(!(field in recorded.body), `OpenAI field ${field} in the Gemini body: ${recorded.raw}`);
    }
    for (const [name, value] of Object.entries(recorded.headers)) {
      assert.ok(!String(value).includes(key.key), `the virtual key leaked upstream in header ${name}`);
    }
    assert.ok(!recorded.raw.includes(key.key), 'the virtual key leaked upstream in the body');
  }
  return found;
}

/** The one Gemini request for `mark`; its URL names `model` and the method/alt=sse match `stream`. Returns its body. */
function geminiRequest(mark, { model = 'gemini-3-pro-preview', stream = false } = {}) {
  const [recorded] = geminiRequests(mark, 1);
  assert.equal(recorded.url, `/v1beta/models/${model}:${stream ? 'streamGenerateContent?alt=sse' : 'generateContent'}`);
  return recorded.body;
}

describe('the openai SDK against a gemini provider (translated)', () => {
  test('gemini: text, usage with thoughts billed, valid generateContent request', async () => {
    const mark = marker();
    const { data: completion, response } = await client.chat.completions
      .create({
        model: 'gemini',
        messages: [
          { role: 'system', content: 'You are terse.' },
          { role: 'user', content: mark },
        ],
        max_tokens: 300,
        temperature: 0.5,
        stop: ['END'],
      })
      .withResponse();

    assert.equal(response.headers.get('x-llmux-provider'), 'google');
    assert.equal(completion.object, 'chat.completion');
    assert.equal(completion.choices.length, 1);
    const choice = completion.choices[0];
    assert.equal(choice.message.role, 'assistant');
    assert.equal(choice.message.content, GEMINI_TEXT);
    assert.equal(choice.message.tool_calls ?? undefined, undefined);
    assert.equal(choice.message.reasoning_content ?? undefined, undefined, 'no thought parts, no reasoning_content');
    assert.equal(choice.finish_reason, 'stop');
    assert.deepEqual(usageOf(completion.usage), GEMINI_USAGE);

    const body = geminiRequest(mark);
    assert.deepEqual(body.systemInstruction, { parts: [{ text: 'You are terse.' }] });
    assert.deepEqual(body.contents, [{ role: 'user', parts: [{ text: mark }] }]);
    assert.deepEqual(body.generationConfig, { temperature: 0.5, maxOutputTokens: 300, stopSequences: ['END'] });
    assert.ok(!('tools' in body) && !('toolConfig' in body));
  });

  test('gemini, streamed with include_usage: deltas as they come, one final usage chunk', async () => {
    const mark = marker();
    const chunks = await streamed({
      model: 'gemini',
      messages: user(mark),
      stream_options: { include_usage: true },
    });

    assert.ok(chunks.every((chunk) => chunk.object === 'chat.completion.chunk'));
    const deltas = chunks.filter((chunk) => chunk.choices.length).map((chunk) => chunk.choices[0].delta.content).filter(Boolean);
    assert.equal(deltas.join(''), GEMINI_TEXT);
    assert.ok(deltas.length >= GEMINI_PIECES.length, `Gemini's chunks are relayed as they come: ${JSON.stringify(deltas)}`);
    assert.deepEqual(finishReasons(chunks), ['stop']);
    const final = chunks.at(-1);
    assert.deepEqual(final.choices, []);
    assert.deepEqual(usageOf(final.usage), GEMINI_USAGE);
    assert.equal(chunks.filter((chunk) => chunk.usage != null).length, 1, 'exactly one usage chunk');
    assert.equal(chunks.filter((chunk) => chunk.choices.length === 0).length, 1, 'exactly one chunk with empty choices');

    const body = geminiRequest(mark, { stream: true });
    assert.deepEqual(body.contents, [{ role: 'user', parts: [{ text: mark }] }]);
  });

  test('gemini, streamed without include_usage: no usage chunk', async () => {
    const mark = marker();
    const chunks = await streamed({ model: 'gemini', messages: user(mark) });

    assert.ok(chunks.length > 1);
    assert.ok(chunks.every((chunk) => chunk.choices.length > 0 && chunk.usage == null), 'usage leaked into chunks the client did not ask it for');
    assert.equal(chunks.map((chunk) => chunk.choices[0].delta.content ?? '').join(''), GEMINI_TEXT);
    assert.deepEqual(finishReasons(chunks), ['stop']);
    geminiRequest(mark, { stream: true });
  });

  test('gemini-thinking: thought parts become reasoning_content; reasoning_effort becomes thinkingConfig', async () => {
    const mark = marker();
    const completion = await client.chat.completions.create({ model: 'gemini-thinking', messages: user(mark), reasoning_effort: 'low' });

    const message = completion.choices[0].message;
    assert.equal(message.content, GEMINI_TEXT, 'the thought is not part of the content');
    assert.equal(message.reasoning_content, GEMINI_THOUGHT);
    assert.equal(completion.choices[0].finish_reason, 'stop');
    assert.deepEqual(usageOf(completion.usage), GEMINI_USAGE);

    const body = geminiRequest(mark, { model: 'gemini-fake-thinking' });
    assert.deepEqual(body.generationConfig, { thinkingConfig: { includeThoughts: true, thinkingLevel: 'LOW' } });
  });

  test('gemini-thinking, streamed: reasoning_content deltas come before the content', async () => {
    const mark = marker();
    const chunks = await streamed({ model: 'gemini-thinking', messages: user(mark), reasoning_effort: 'high' });

    const deltas = chunks.flatMap((chunk) => chunk.choices.map((choice) => choice.delta));
    const reasoning = deltas.map((delta) => delta.reasoning_content ?? '').join('');
    const text = deltas.map((delta) => delta.content ?? '').join('');
    assert.equal(reasoning, GEMINI_THOUGHT);
    assert.equal(text, GEMINI_TEXT);
    const lastReasoning = deltas.findLastIndex((delta) => delta.reasoning_content);
    const firstText = deltas.findIndex((delta) => delta.content);
    assert.ok(lastReasoning < firstText, 'reasoning streams before the answer');
    assert.deepEqual(finishReasons(chunks), ['stop']);

    const body = geminiRequest(mark, { model: 'gemini-fake-thinking', stream: true });
    assert.deepEqual(body.generationConfig.thinkingConfig, { includeThoughts: true, thinkingLevel: 'HIGH' });
  });

  test('gemini-tools: a functionCall is finish_reason tool_calls, its signature in extra_content', async () => {
    const mark = marker();
    const completion = await client.chat.completions.create({
      model: 'gemini-tools',
      messages: user(`Weather in Paris? ${mark}`),
      tools: WEATHER_TOOLS,
      tool_choice: 'required',
    });

    const choice = completion.choices[0];
    assert.equal(choice.finish_reason, 'tool_calls', 'Gemini says STOP; the function call decides');
    assert.ok(!choice.message.content, `no content beside the call: ${JSON.stringify(choice.message.content)}`);
    assert.equal(choice.message.tool_calls?.length, 1);
    const [call] = choice.message.tool_calls;
    assert.equal(call.type, 'function');
    assert.ok(typeof call.id === 'string' && call.id, 'the call has an id');
    assert.equal(call.function.name, TOOL_NAME);
    assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Paris' });
    assert.deepEqual(call.extra_content, GEMINI_EXTRA_CONTENT);
    assert.deepEqual(usageOf(completion.usage), GEMINI_USAGE);

    const body = geminiRequest(mark, { model: 'gemini-fake-tools' });
    assert.deepEqual(body.tools, GEMINI_WEATHER_TOOLS);
    assert.deepEqual(body.toolConfig, { functionCallingConfig: { mode: 'ANY' } });
  });

  test('gemini-tools, streamed: the tool call delta carries extra_content', async () => {
    const mark = marker();
    const chunks = await streamed({
      model: 'gemini-tools',
      messages: user(`Weather in Paris? ${mark}`),
      tools: WEATHER_TOOLS,
      stream_options: { include_usage: true },
    });

    const fragments = chunks.flatMap((chunk) => chunk.choices.flatMap((choice) => choice.delta?.tool_calls ?? []));
    assert.ok(fragments.length >= 1, 'no tool-call delta');
    assert.equal(fragments[0].index, 0);
    assert.deepEqual(fragments[0].extra_content, GEMINI_EXTRA_CONTENT);
    const calls = assembleToolCalls(chunks);
    assert.deepEqual([...calls.keys()], [0]);
    const call = calls.get(0);
    assert.ok(call.id, 'the call has an id');
    assert.equal(call.type, 'function');
    assert.equal(call.name, TOOL_NAME);
    assert.deepEqual(JSON.parse(call.arguments), { city: 'Paris' });
    assert.deepEqual(finishReasons(chunks), ['tool_calls']);
    assert.deepEqual(usageOf(chunks.at(-1).usage), GEMINI_USAGE);

    const body = geminiRequest(mark, { model: 'gemini-fake-tools', stream: true });
    assert.deepEqual(body.tools, GEMINI_WEATHER_TOOLS);
    assert.equal(body.toolConfig?.functionCallingConfig?.mode ?? 'AUTO', 'AUTO');
  });

  test("tool loop: the SDK's own message object goes back and the thoughtSignature round-trips", async () => {
    const mark = marker();
    const messages = user(`Weather in Paris? ${mark}`);
    const first = await client.chat.completions.create({ model: 'gemini-tools', messages, tools: WEATHER_TOOLS });
    assert.equal(first.choices[0].finish_reason, 'tool_calls');
    const [call] = first.choices[0].message.tool_calls;
    // As apps do: the SDK's message object, unchanged, then the tool result.
    messages.push(first.choices[0].message);
    messages.push({ role: 'tool', tool_call_id: call.id, content: TOOL_OUTPUT });

    const second = await client.chat.completions.create({ model: 'gemini-tools', messages, tools: WEATHER_TOOLS });
    assert.equal(second.choices[0].message.content, GEMINI_TOOL_ANSWER + TOOL_OUTPUT);
    assert.equal(second.choices[0].finish_reason, 'stop');
    assert.equal(second.choices[0].message.tool_calls ?? undefined, undefined);

    const contents = geminiRequests(mark, 2)[1].body.contents;
    assert.deepEqual(contents.map((content) => content.role), ['user', 'model', 'user']);
    assert.equal(contents[1].parts.length, 1);
    const [modelPart] = contents[1].parts;
    assert.equal(modelPart.functionCall.name, TOOL_NAME);
    assert.deepEqual(modelPart.functionCall.args, { city: 'Paris' });
    assert.equal(modelPart.thoughtSignature, GEMINI_SIGNATURE);
    assert.ok(!(modelPart.functionCall.id ?? '').includes('__gsig'), 'the signature does not ride in the id for OpenAI clients');
    assert.equal(contents[2].parts.length, 1);
    const [responsePart] = contents[2].parts;
    assert.equal(responsePart.functionResponse.name, TOOL_NAME);
    assert.deepEqual(responsePart.functionResponse.response, { output: TOOL_OUTPUT });
    assert.equal(responsePart.functionResponse.id, modelPart.functionCall.id);
  });

  test("streamed tool loop: the stream helper's finalChatCompletion message goes back", async () => {
    const mark = marker();
    const messages = user(`Weather in Paris? ${mark}`);
    const final = await client.chat.completions.stream({ model: 'gemini-tools', messages, tools: WEATHER_TOOLS }).finalChatCompletion();
    const message = final.choices[0].message;
    assert.equal(final.choices[0].finish_reason, 'tool_calls');
    assert.equal(message.tool_calls.length, 1);
    const [call] = message.tool_calls;
    assert.deepEqual(call.extra_content, GEMINI_EXTRA_CONTENT, 'the helper kept extra_content');
    // get_weather is strict, so the helper parsed the arguments too.
    assert.deepEqual(call.function.parsed_arguments, { city: 'Paris' });
    messages.push(message);
    messages.push({ role: 'tool', tool_call_id: call.id, content: TOOL_OUTPUT });

    const chunks = await streamed({ model: 'gemini-tools', messages, tools: WEATHER_TOOLS });
    assert.equal(chunks.flatMap((chunk) => chunk.choices.map((choice) => choice.delta.content ?? '')).join(''), GEMINI_TOOL_ANSWER + TOOL_OUTPUT);
    assert.deepEqual(finishReasons(chunks), ['stop']);

    const found = geminiRequests(mark, 2);
    assert.ok(found.every((recorded) => recorded.url.endsWith(':streamGenerateContent?alt=sse')));
    const contents = found[1].body.contents;
    assert.deepEqual(contents.map((content) => content.role), ['user', 'model', 'user']);
    assert.equal(contents[1].parts[0].thoughtSignature, GEMINI_SIGNATURE);
    assert.deepEqual(contents[2].parts[0].functionResponse.response, { output: TOOL_OUTPUT });
  });

  test('parallel tool loop: named tool_choice, two calls, only the first signed', async () => {
    const mark = marker();
    const messages = user(`Paris and Tokyo? ${mark}`);
    const first = await client.chat.completions.create({
      model: 'gemini-parallel',
      messages,
      tools: WEATHER_TOOLS,
      tool_choice: { type: 'function', function: { name: TOOL_NAME } },
    });
    const calls = first.choices[0].message.tool_calls;
    assert.equal(first.choices[0].finish_reason, 'tool_calls');
    assert.deepEqual(
      calls.map((call) => [call.function.name, JSON.parse(call.function.arguments)]),
      [
        [TOOL_NAME, { city: 'Paris' }],
        [TOOL_NAME, { city: 'Tokyo' }],
      ],
    );
    assert.equal(new Set(calls.map((call) => call.id)).size, 2, 'distinct call ids');
    assert.deepEqual(calls[0].extra_content, GEMINI_EXTRA_CONTENT);
    assert.equal(calls[1].extra_content, undefined, 'Gemini signs only the first call');
    messages.push(first.choices[0].message);
    calls.forEach((call, index) => messages.push({ role: 'tool', tool_call_id: call.id, content: ['18C', '25C'][index] }));

    const second = await client.chat.completions.create({ model: 'gemini-parallel', messages, tools: WEATHER_TOOLS });
    assert.equal(second.choices[0].message.content, `${GEMINI_TOOL_ANSWER}18C; 25C`);

    const found = geminiRequests(mark, 2);
    assert.deepEqual(found[0].body.toolConfig, { functionCallingConfig: { mode: 'ANY', allowedFunctionNames: [TOOL_NAME] } });
    const contents = found[1].body.contents;
    assert.deepEqual(contents.map((content) => content.role), ['user', 'model', 'user']);
    assert.deepEqual(contents[1].parts.map((part) => part.functionCall.args), [{ city: 'Paris' }, { city: 'Tokyo' }]);
    assert.equal(contents[1].parts[0].thoughtSignature, GEMINI_SIGNATURE);
    assert.ok(!('thoughtSignature' in contents[1].parts[1]));
    assert.deepEqual(contents[2].parts.map((part) => part.functionResponse.response), [{ output: '18C' }, { output: '25C' }]);
  });

  test('gemini-busy: 429 RESOURCE_EXHAUSTED -> InternalServerError (502 upstream_error), Retry-After from RetryInfo', async () => {
    const mark = marker();
    await assert.rejects(client.chat.completions.create({ model: 'gemini-busy', messages: user(mark) }), (error) => {
      assert.ok(error instanceof InternalServerError, `expected InternalServerError, got ${error?.constructor?.name}: ${error}`);
      assert.equal(error.status, 502);
      assert.equal(error.code, 'upstream_error');
      assert.equal(error.type, 'api_error');
      assert.ok(error.requestID, 'error responses carry x-request-id');
      assert.equal(error.headers.get('retry-after'), String(GEMINI_RETRY_DELAY_S));
      assert.equal(error.headers.get('x-llmux-attempts'), '1');
      const text = JSON.stringify(error.error);
      assert.ok(!text.includes(UPSTREAM_KEY), 'the provider key leaked into the error');
      assert.ok(!text.includes(`127.0.0.1:${upstream.port}`), 'the upstream address leaked into the error');
      return true;
    });
    geminiRequest(mark, { model: 'gemini-fake-busy' });
  });

  test('the fake rejects what Gemini rejects (else the tests above prove nothing)', async () => {
    const userTurn = { role: 'user', parts: [{ text: 'weather?' }] };
    const call = { functionCall: { name: TOOL_NAME, args: { city: 'Paris' } } };
    const result = { role: 'user', parts: [{ functionResponse: { name: TOOL_NAME, response: { output: '18C' } } }] };
    const signed = (signature) => ({ role: 'model', parts: [{ ...call, thoughtSignature: signature }] });
    const cases = [
      ['valid loop', { contents: [userTurn, signed(GEMINI_SIGNATURE), result] }, {}, null],
      ['no signature', { contents: [userTurn, { role: 'model', parts: [call] }, result] }, {}, 'thought_signature'],
      ['wrong signature', { contents: [userTurn, signed('b3RoZXI='), result] }, {}, 'thought_signature'],
      ['foreign signature', { contents: [userTurn, signed(`gemini:${GEMINI_SIGNATURE}`), result] }, {}, 'thought_signature'],
      [
        'unknown response name',
        { contents: [userTurn, signed(GEMINI_SIGNATURE), { role: 'user', parts: [{ functionResponse: { name: 'other', response: {} } }] }] },
        {},
        'matches no functionCall',
      ],
      ['missing response', { contents: [userTurn, signed(GEMINI_SIGNATURE), userTurn] }, {}, 'number of function response parts'],
      ['same role twice', { contents: [userTurn, userTurn] }, {}, 'alternate'],
      ['model first', { contents: [{ role: 'model', parts: [{ text: 'hi' }] }, userTurn] }, {}, 'start with a user turn'],
      ['bad role', { contents: [{ role: 'assistant', parts: [{ text: 'hi' }] }] }, {}, 'valid role'],
      ['empty text', { contents: [{ role: 'user', parts: [{ text: '' }] }] }, {}, 'empty text parameter'],
      ['OpenAI fields', { model: 'x', messages: [], stream: true, contents: [userTurn] }, {}, 'Unknown name "model"'],
      ['stream without alt=sse', { contents: [userTurn] }, { path: ':streamGenerateContent' }, 'alt=sse'],
      ['bearer auth', { contents: [userTurn] }, { headers: { authorization: `Bearer ${UPSTREAM_KEY}` } }, 'Authorization'],
      ['wrong key', { contents: [userTurn] }, { headers: { 'x-goog-api-key': 'nope' } }, 'API key not valid'],
    ];
    for (const [name, body, { path = ':generateContent', headers = {} }, problem] of cases) {
      const response = await fetch(`${upstream.hostURL}/v1beta/models/gemini-3-pro-preview${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-goog-api-key': UPSTREAM_KEY, ...headers },
        body: JSON.stringify(body),
      });
      const answer = await response.json();
      if (problem === null) {
        assert.equal(response.status, 200, `${name}: ${JSON.stringify(answer)}`);
        assert.equal(answer.candidates[0].content.parts[0].text, `${GEMINI_TOOL_ANSWER}18C`);
        continue;
      }
      assert.equal(response.status, 400, `${name}: ${JSON.stringify(answer)}`);
      assert.deepEqual([answer.error.code, answer.error.status], [400, 'INVALID_ARGUMENT'], name);
      assert.ok(answer.error.message.includes(problem), `${name}: ${answer.error.message}`);
    }
  });
});

// ------------------------------------------------------------------ mock provider, models

describe('mock provider and models', () => {
  test('mockchat echo, streamed (with and without usage), never hits the upstream', async () => {
    const mark = marker();
    const text = `Echo this back, please: ${mark}`;
    const chunks = await streamed({
      model: 'mockchat',
      messages: user(text),
      stream_options: { include_usage: true },
    });
    assert.ok(chunks.length > 2, 'the mock streams in several chunks');
    assert.equal(streamedText(chunks), text);
    assert.deepEqual(finishReasons(chunks), ['stop']);
    assert.deepEqual(chunks.at(-1).choices, []);
    assert.ok(chunks.at(-1).usage?.total_tokens > 0);

    const plain = await streamed({ model: 'mockchat', messages: user(mark) });
    assert.ok(plain.every((chunk) => chunk.choices.length > 0 && chunk.usage == null), 'no usage chunk when not asked');
    assert.equal(plain.map((chunk) => chunk.choices[0].delta.content ?? '').join(''), mark);

    assert.equal(upstream.find(mark).length, 0, 'the mock provider must not call the fake upstream');
  });

  test('models.list includes the configured models', async () => {
    const ids = [];
    for await (const model of client.models.list()) {
      assert.equal(model.object, 'model');
      ids.push(model.id);
    }
    for (const name of Object.keys(MODELS)) assert.ok(ids.includes(name), `${name} missing from ${JSON.stringify(ids)}`);
    assert.equal(new Set(ids).size, ids.length, `duplicate model ids: ${ids}`);
    const model = await client.models.retrieve('chat');
    assert.equal(model.id, 'chat');
  });
});

// ------------------------------------------------------------------ errors and headers

describe('errors and headers', () => {
  test('bad key -> AuthenticationError (401)', async () => {
    const bad = makeClient('sk-llmux-not-a-real-key');
    const mark = marker();
    await assert.rejects(bad.chat.completions.create({ model: 'chat', messages: user(mark) }), (error) => {
      assert.ok(error instanceof AuthenticationError, `expected AuthenticationError, got ${error?.constructor?.name}: ${error}`);
      assert.equal(error.status, 401);
      assert.equal(error.code, 'invalid_api_key');
      assert.equal(error.type, 'authentication_error');
      assert.ok(error.requestID, 'error responses carry x-request-id');
      return true;
    });
    await assert.rejects(bad.models.list(), AuthenticationError);
    assert.equal(upstream.find(mark).length, 0);
  });

  test('unknown model -> NotFoundError (404)', async () => {
    await assert.rejects(client.chat.completions.create({ model: 'no-such-model', messages: user('hi') }), (error) => {
      assert.ok(error instanceof NotFoundError, `expected NotFoundError, got ${error?.constructor?.name}: ${error}`);
      assert.equal(error.status, 404);
      assert.equal(error.code, 'model_not_found');
      assert.equal(error.param, 'model');
      assert.match(error.message, /no-such-model/);
      return true;
    });
  });

  test('upstream 400 -> BadRequestError with the upstream message, not retried', async () => {
    const mark = marker();
    await assert.rejects(client.chat.completions.create({ model: 'bad', messages: user(mark) }), (error) => {
      assert.ok(error instanceof BadRequestError, `expected BadRequestError, got ${error?.constructor?.name}: ${error}`);
      assert.equal(error.status, 400);
      assert.ok(error.message.includes(UPSTREAM_400_MESSAGE), error.message);
      assert.equal(error.type, 'invalid_request_error');
      assert.ok(error.requestID);
      return true;
    });
    assert.equal(upstream.find(mark).length, 1, 'a client fault is sent once, not retried');
    assert.equal(upstream.one(mark).body.model, 'fake-400');
  });

  test('rate limit -> RateLimitError (429 rate_limit_exceeded) with Retry-After, retry-after-ms and x-ratelimit-*', async () => {
    const limited = await createKey(gateway, { name: 'node-rpm', rpm_limit: 1 });
    const sdk = makeClient(limited.key);
    // A window is a calendar minute: if the first request lands at its very end, the
    // second may open a new one. Then the pair is tried once more.
    for (let round = 0; ; round++) {
      await sdk.chat.completions.create({ model: 'chat', messages: user(marker()) });
      const refused = await sdk.chat.completions.create({ model: 'chat', messages: user(marker()) }).then(
        () => null,
        (error) => error,
      );
      if (refused === null && round === 0) continue;
      assert.ok(refused instanceof RateLimitError, `expected RateLimitError, got ${refused?.constructor?.name}: ${refused}`);
      assert.equal(refused.status, 429);
      assert.equal(refused.code, 'rate_limit_exceeded');
      assert.equal(refused.type, 'rate_limit_error');
      const seconds = Number(refused.headers.get('retry-after'));
      const millis = Number(refused.headers.get('retry-after-ms'));
      assert.ok(seconds >= 1 && seconds <= 60, `retry-after ${seconds}`);
      assert.equal(Math.ceil(millis / 1000), seconds);
      assert.equal(refused.headers.get('x-ratelimit-limit-requests'), '1');
      assert.equal(refused.headers.get('x-ratelimit-remaining-requests'), '0');
      assert.equal(refused.headers.get('x-should-retry'), null, 'a rate limit may be retried once the window ends');
      break;
    }
  });

  test('spent budget -> RateLimitError (429 budget_exceeded) that the SDK does not retry', async () => {
    const poor = await createKey(gateway, { name: 'node-budget', budget: { amount: 0.000001, period: 'monthly' } });
    // The SDK's default: two retries of every 429, unless the response says x-should-retry: false.
    const sdk = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: poor.key, timeout: 30_000 });
    const mark = marker();
    await assert.rejects(sdk.chat.completions.create({ model: 'priced', messages: user(mark) }), (error) => {
      assert.ok(error instanceof RateLimitError, `expected RateLimitError, got ${error?.constructor?.name}: ${error}`);
      assert.equal(error.status, 429);
      assert.equal(error.code, 'budget_exceeded');
      assert.equal(error.type, 'insufficient_quota');
      assert.match(error.message, /budget/);
      assert.equal(error.headers.get('x-should-retry'), 'false');
      return true;
    });
    assert.equal(upstream.find(mark).length, 0, 'the upstream is not called');
    // Had the SDK retried, three records would appear within the 2 s records take.
    const records = await usageRecords(gateway, poor.id, 3);
    assert.deepEqual(
      records.map((record) => [record.status, record.error_code]),
      [[429, 'budget_exceeded']],
      'one request reached the gateway, not three',
    );
  });

  test('x-request-id on responses (withResponse, asResponse)', async () => {
    const { data, response, request_id: requestID } = await client.chat.completions
      .create({ model: 'chat', messages: user(marker()) })
      .withResponse();
    assert.equal(response.status, 200);
    assert.equal(data.choices[0].message.content, CHAT_TEXT);
    const id = response.headers.get('x-request-id');
    assert.ok(id, 'x-request-id on a non-streaming response');
    assert.equal(requestID, id);
    assert.equal(data._request_id, id);
    assert.equal(response.headers.get('x-llmux-provider'), 'fake');

    const raw = await client.chat.completions.create({ model: 'chat', messages: user(marker()), stream: true }).asResponse();
    assert.equal(raw.status, 200);
    assert.match(raw.headers.get('content-type') ?? '', /^text\/event-stream/);
    const streamID = raw.headers.get('x-request-id');
    assert.ok(streamID, 'x-request-id on a streaming response');
    assert.notEqual(streamID, id, 'request ids are unique');
    const body = await raw.text();
    assert.match(body, /data: \[DONE\]/);

    const models = await client.models.list().asResponse();
    assert.ok(models.headers.get('x-request-id'));
    await models.arrayBuffer();

    const echoed = await client.chat.completions
      .create({ model: 'mockchat', messages: user('x') }, { headers: { 'x-request-id': 'sdk-node-req-123' } })
      .withResponse();
    assert.equal(echoed.response.headers.get('x-request-id'), 'sdk-node-req-123');
  });
});
