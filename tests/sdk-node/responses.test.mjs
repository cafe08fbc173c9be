// The official `openai` npm SDK's Responses API (`client.responses`) against llmux,
// translated to the fake's OpenAI-dialect (Chat Completions) and Anthropic upstreams:
// create, stream, tool-call round trips, structured output, and stored responses
// (retrieve, input items, delete, `previous_response_id`).
// Run with scripts/sdk-node-tests.sh (or `node --test` here with LLMUX_BIN set).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import OpenAI, { BadRequestError, NotFoundError } from 'openai';

import {
  CHAT_TEXT,
  CHAT_USAGE,
  CLAUDE_TOOL_IDS,
  FakeUpstream,
  THINKING_SIGNATURE,
  THINKING_TEXT,
  TOOL_ARGUMENTS,
  TOOL_CALL_ID,
  TOOL_NAME,
} from './fake-upstream.mjs';
import { createKey, startGateway, stopGateway, usageRecords } from './gateway.mjs';

const TOOLS = [
  {
    type: 'function',
    name: TOOL_NAME,
    description: 'Current weather for a city.',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
    strict: false,
  },
];

let upstream;
let gateway;
let key;
let client;

const marker = () => `marker-${randomUUID()}`;

before(async () => {
  upstream = await new FakeUpstream().start();
  gateway = await startGateway(upstream);
  key = await createKey(gateway, { name: 'node-responses' });
  client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: key.key, maxRetries: 0, timeout: 30_000 });
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

describe('responses (translated to an openai-compatible upstream)', () => {
  test('create: a response object with output_text, usage and one ledger record', async () => {
    const mark = marker();
    const response = await client.responses.create({ model: 'chat', instructions: 'Be brief.', input: mark });
    assert.match(response.id, /^resp_/);
    assert.equal(response.status, 'completed');
    assert.equal(response.output_text, CHAT_TEXT);
    assert.equal(response.usage.input_tokens, CHAT_USAGE.prompt_tokens);
    assert.equal(response.usage.output_tokens, CHAT_USAGE.completion_tokens);
    const sent = upstream.one(mark);
    assert.equal(sent.path, '/v1/chat/completions');
    assert.deepEqual(sent.body.messages, [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: mark },
    ]);
    const records = await usageRecords(gateway, key.id, 1);
    assert.equal(records[0].status, 200);
  });

  test('stream: the event sequence, numbered from 0, and the final response', async () => {
    const mark = marker();
    const stream = client.responses.stream({ model: 'chat', input: mark });
    const types = [];
    const numbers = [];
    for await (const event of stream) {
      types.push(event.type);
      numbers.push(event.sequence_number);
    }
    const final = await stream.finalResponse();
    assert.deepEqual(types.slice(0, 2), ['response.created', 'response.in_progress']);
    assert.equal(types.at(-1), 'response.completed');
    assert.deepEqual(numbers, [...numbers.keys()]);
    assert.equal(final.output_text, CHAT_TEXT);
    assert.equal(upstream.one(mark).body.stream, true);
  });

  test('a tool call, and its output sent back with previous_response_id', async () => {
    const mark = marker();
    const first = await client.responses.create({ model: 'tools', input: `Weather in Paris? ${mark}`, tools: TOOLS });
    const call = first.output.find((item) => item.type === 'function_call');
    assert.deepEqual([call.call_id, call.name, call.arguments], [TOOL_CALL_ID, TOOL_NAME, TOOL_ARGUMENTS]);

    const next = marker();
    const second = await client.responses.create({
      model: 'chat',
      previous_response_id: first.id,
      input: [{ type: 'function_call_output', call_id: call.call_id, output: `18C and sunny ${next}` }],
      tools: TOOLS,
    });
    assert.equal(second.output_text, CHAT_TEXT);
    const messages = upstream.one(next).body.messages;
    assert.deepEqual(
      messages.map((message) => message.role),
      ['user', 'assistant', 'tool'],
    );
    assert.equal(messages[1].tool_calls[0].id, TOOL_CALL_ID);
    assert.equal(messages[2].tool_call_id, TOOL_CALL_ID);
  });

  test('structured output: text.format json_schema becomes response_format', async () => {
    const mark = marker();
    const schema = { type: 'object', properties: { answer: { type: 'string' } }, required: ['answer'] };
    await client.responses.create({
      model: 'chat',
      input: mark,
      text: { format: { type: 'json_schema', name: 'answer', schema, strict: true } },
    });
    assert.deepEqual(upstream.one(mark).body.response_format, {
      type: 'json_schema',
      json_schema: { name: 'answer', schema, strict: true },
    });
  });
});

describe('stored responses', () => {
  test('retrieve, input_items.list (auto-paginated), delete', async () => {
    const mark = marker();
    const first = await client.responses.create({ model: 'chat', input: mark });
    const second = await client.responses.create({ model: 'chat', input: `${mark}-2`, previous_response_id: first.id });
    const again = await client.responses.retrieve(second.id);
    assert.equal(again.id, second.id);
    assert.equal(again.previous_response_id, first.id);
    assert.equal(again.output_text, CHAT_TEXT);

    const items = [];
    for await (const item of client.responses.inputItems.list(second.id, { order: 'asc', limit: 1 })) items.push(item);
    assert.deepEqual(
      items.map((item) => [item.role, item.content[0].text]),
      [
        ['user', mark],
        ['assistant', CHAT_TEXT],
        ['user', `${mark}-2`],
      ],
    );

    await client.responses.delete(second.id);
    await assert.rejects(client.responses.retrieve(second.id), NotFoundError);
    // The first is still there.
    assert.equal((await client.responses.retrieve(first.id)).id, first.id);
  });

  test('store: false keeps nothing; an unknown previous_response_id is a 400', async () => {
    const response = await client.responses.create({ model: 'chat', input: marker(), store: false });
    assert.equal(response.store, false);
    await assert.rejects(client.responses.retrieve(response.id), NotFoundError);
    await assert.rejects(
      client.responses.create({ model: 'chat', input: 'x', previous_response_id: response.id }),
      (error) => error instanceof BadRequestError && error.param === 'previous_response_id',
    );
  });
});

describe('responses (translated to an anthropic upstream)', () => {
  test('a stored turn continued on Claude: the Messages request holds the whole conversation', async () => {
    const mark = marker();
    const first = await client.responses.create({ model: 'sonnet', input: mark });
    assert.ok(first.output_text.length > 0);
    const next = marker();
    await client.responses.create({ model: 'sonnet', input: next, previous_response_id: first.id });
    const body = upstream.one(next).body;
    assert.deepEqual(
      body.messages.map((message) => message.role),
      ['user', 'assistant', 'user'],
    );
  });
});

describe('reasoning signatures (store: false, as Codex sends its turns back)', () => {
  test("Claude's signed thinking comes back as encrypted_content and returns to Claude in the thinking block", async () => {
    const mark = marker();
    const first = await client.responses.create({
      model: 'sonnet-tools',
      input: `Weather in Paris and Tokyo? ${mark}`,
      tools: TOOLS,
      reasoning: { effort: 'low' },
      include: ['reasoning.encrypted_content'],
      store: false,
    });
    const reasoning = first.output.find((item) => item.type === 'reasoning');
    assert.equal(reasoning.summary[0].text, THINKING_TEXT);
    assert.equal(reasoning.encrypted_content, `llmux:${THINKING_SIGNATURE}`);
    const calls = first.output.filter((item) => item.type === 'function_call');
    assert.deepEqual(
      calls.map((call) => call.call_id),
      CLAUDE_TOOL_IDS,
    );

    // The next turn replays the output items (reasoning first), then the results.
    const next = marker();
    await client.responses.create({
      model: 'sonnet-tools',
      input: [
        { role: 'user', content: `Weather in Paris and Tokyo? ${mark}` },
        ...first.output,
        ...calls.map((call) => ({ type: 'function_call_output', call_id: call.call_id, output: `sunny ${next}` })),
      ],
      tools: TOOLS,
      reasoning: { effort: 'low' },
      store: false,
    });
    const body = upstream.one(next).body;
    assert.ok(body.thinking, 'thinking stays on: the tool turn carries its signed thinking block');
    const assistant = body.messages[1];
    assert.equal(assistant.role, 'assistant');
    assert.deepEqual(assistant.content[0], { type: 'thinking', thinking: THINKING_TEXT, signature: THINKING_SIGNATURE });
    assert.deepEqual(
      assistant.content.filter((block) => block.type === 'tool_use').map((block) => block.id),
      CLAUDE_TOOL_IDS,
    );
  });
});
