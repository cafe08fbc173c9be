// The real coding agents through llmux: pinned Codex CLI (`codex exec`, Responses API)
// and Claude Code (`claude -p`, Anthropic Messages), run headless against the real
// binary, with in-process fake upstreams of each dialect llmux speaks to providers:
// OpenAI chat (an openai-compatible provider), OpenAI's Responses API (a provider with
// `responses_api`: Codex's body is forwarded as it is, Claude Code's translated for a
// route with `api = "responses"`), Anthropic (kind anthropic) and Gemini (kind gemini). For each agent and dialect: a plain answer, and a task that needs the
// agent's shell tool and its result sent back. The fake validates every body as the
// real provider would (400 naming the problem otherwise); the tests assert the agent's
// printed answer, the tool result's shape upstream, exactly one ledger record per
// upstream call, and that no agent tried to reach anything but llmux.
// Run with scripts/agent-tests.sh (or `node --test` here with LLMUX_BIN set).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';

import { FakeUpstream, GEMINI_SIGNATURE } from '../sdk-node/fake-upstream.mjs';
import { createKey, startGateway, stopGateway, usageRecords } from '../sdk-node/gateway.mjs';
import {
  AgentModels,
  CODECS,
  SHELL_TOOLS,
  USAGE,
  callId,
  casePrompt,
  plainAnswer,
  thinkingSignature,
  toolAnswer,
  toolOutput,
} from './agent-upstream.mjs';
import { PINNED, Sinkhole, claudeRun, codexRun, versionRun } from './agents.mjs';

// Upstream dialect -> the gateway provider of that kind (tests/sdk-node/gateway.mjs) and a short name.
const DIALECTS = {
  chat: { provider: 'fake', short: 'chat' },
  // Routes on the Responses API: Codex's requests are forwarded as they are (same
  // dialect), Claude Code's translated.
  responses: { provider: 'oai', short: 'responses', route: 'api = "responses"' },
  messages: { provider: 'claude', short: 'anthropic' },
  gemini: { provider: 'google', short: 'gemini' },
};
// Claude Code reads some model names as its own aliases (`sonnet`, `opus`, ...): the
// llmux model names here are plain. Each is also the upstream model's name.
const AGENTS = {
  codex: { run: codexRun, model: (short) => `codex-${short}` },
  claude: { run: claudeRun, model: (short) => `cc-${short}`, smallModel: (short) => `cc-${short}-small` },
};

let upstream;
let models;
let gateway;
let sinkhole;

before(async () => {
  upstream = await new FakeUpstream().start();
  models = new AgentModels(upstream);
  const gatewayModels = {};
  for (const [agent, spec] of Object.entries(AGENTS)) {
    for (const [dialect, { provider, short, route }] of Object.entries(DIALECTS)) {
      const names = [[spec.model(short), 'main'], ...(spec.smallModel ? [[spec.smallModel(short), 'side']] : [])];
      for (const [name, role] of names) {
        models.add(agent, dialect, name, role);
        gatewayModels[name] = [provider, name, route];
      }
    }
  }
  sinkhole = await new Sinkhole().start();
  gateway = await startGateway(upstream, { models: gatewayModels });
});

after(async () => {
  // LLMUX_AGENT_TESTS_DUMP=<file>: every upstream call the agents caused (bodies included), for a look at their shapes.
  if (process.env.LLMUX_AGENT_TESTS_DUMP && models) {
    writeFileSync(process.env.LLMUX_AGENT_TESTS_DUMP, JSON.stringify(models.calls, null, 1));
  }
  try {
    if (gateway) {
      const { code, signal } = await stopGateway(gateway);
      assert.equal(code, 0, `llmux exited with code ${code} (signal ${signal}) after SIGTERM:\n${gateway.log().slice(-4000)}`);
    }
  } finally {
    await upstream?.stop();
    await sinkhole?.stop();
  }
});

test('the pinned agents are installed and run', async () => {
  const attempts = sinkhole.attempts.length;
  for (const [name, pkg] of [['codex', '@openai/codex'], ['claude', '@anthropic-ai/claude-code']]) {
    const result = await versionRun(name, sinkhole);
    assert.equal(result.code, 0, `${name} --version failed:\n${result.stdout}\n${result.stderr}`);
    assert.ok(result.stdout.includes(PINNED[pkg]), `${name} --version says ${JSON.stringify(result.stdout)}, not ${PINNED[pkg]}`);
  }
  assert.deepEqual(sinkhole.attempts.slice(attempts), [], 'an agent tried to reach the network');
});

const summary = (calls) =>
  calls.map((c) => `  ${c.model} (${c.role}) ${c.kind ?? '-'} -> ${c.answered}${c.problems.length ? `: ${c.problems.join('; ')}` : ''}`).join('\n');

/** The tool result in the final request, asserted in the dialect's own shape; returns it. */
function assertToolResultShape(dialect, body, agent, nonce) {
  const output = toolOutput(nonce);
  const shell = SHELL_TOOLS[agent];
  if (dialect === 'chat') {
    const index = body.messages.findIndex((m) => m.role === 'tool' && m.tool_call_id === callId('chat', nonce));
    assert.ok(index > 0, `no {role: tool, tool_call_id: ${callId('chat', nonce)}} message`);
    const message = body.messages[index];
    const call = body.messages[index - 1];
    assert.equal(call.role, 'assistant');
    assert.deepEqual(call.tool_calls.map((c) => [c.id, c.function.name, JSON.parse(c.function.arguments)[shell.argument]]), [
      [callId('chat', nonce), shell.name, shell.args(nonce)[shell.argument]],
    ]);
    const text = typeof message.content === 'string' ? message.content : message.content.map((p) => p.text).join('');
    assert.ok(text.includes(output), `the tool message does not hold ${output}: ${JSON.stringify(message)}`);
    return message;
  }
  if (dialect === 'responses') {
    const index = body.input.findIndex((item) => item.type === 'function_call_output' && item.call_id === callId('responses', nonce));
    assert.ok(index > 0, `no {type: function_call_output, call_id: ${callId('responses', nonce)}} item`);
    const call = body.input.slice(0, index).findLast((item) => item.type === 'function_call');
    assert.deepEqual([call.call_id, call.name, JSON.parse(call.arguments)[shell.argument]], [
      callId('responses', nonce),
      shell.name,
      shell.args(nonce)[shell.argument],
    ]);
    const item = body.input[index];
    const text = typeof item.output === 'string' ? item.output : item.output.map((p) => p.text ?? '').join('');
    assert.ok(text.includes(output), `the function_call_output does not hold ${output}: ${JSON.stringify(item)}`);
    return item;
  }
  if (dialect === 'messages') {
    const index = body.messages.findIndex((m) => Array.isArray(m.content) && m.content.some((b) => b.type === 'tool_result'));
    assert.ok(index > 0, 'no user message with a tool_result block');
    const message = body.messages[index];
    assert.equal(message.role, 'user');
    const block = message.content.find((b) => b.type === 'tool_result');
    assert.equal(block.tool_use_id, callId('messages', nonce));
    const turn = body.messages.slice(0, index).findLast((m) => m.role === 'assistant').content;
    const use = turn.find((b) => b.type === 'tool_use');
    assert.deepEqual([use.id, use.name, use.input[shell.argument]], [callId('messages', nonce), shell.name, shell.args(nonce)[shell.argument]]);
    // Both agents ask for thinking (Codex through its reasoning effort): the turn goes back
    // opening with the fake's thinking block, signature intact.
    assert.ok(['enabled', 'adaptive'].includes(body.thinking?.type), `thinking is off: ${JSON.stringify(body.thinking)}`);
    assert.deepEqual([turn[0].type, turn[0].signature], ['thinking', thinkingSignature(nonce)]);
    const text = typeof block.content === 'string' ? block.content : block.content.map((p) => p.text ?? '').join('');
    assert.ok(text.includes(output), `the tool_result does not hold ${output}: ${JSON.stringify(block)}`);
    return block;
  }
  const index = body.contents.findIndex((c) => c.parts.some((p) => 'functionResponse' in p));
  assert.ok(index > 0, 'no content with a functionResponse part');
  assert.equal(body.contents[index].role, 'user');
  const { functionResponse } = body.contents[index].parts.find((p) => 'functionResponse' in p);
  assert.equal(functionResponse.name, shell.name);
  const callTurn = body.contents[index - 1];
  assert.equal(callTurn.role, 'model');
  const callPart = callTurn.parts.find((p) => 'functionCall' in p);
  assert.deepEqual([callPart.functionCall.name, callPart.functionCall.args[shell.argument], callPart.thoughtSignature], [
    shell.name,
    shell.args(nonce)[shell.argument],
    GEMINI_SIGNATURE,
  ]);
  assert.ok(JSON.stringify(functionResponse.response).includes(output), `the functionResponse does not hold ${output}: ${JSON.stringify(functionResponse)}`);
  return functionResponse;
}

/** Ledger records of `keyId`: waits for `count`, then a little longer to see that no more arrive. */
async function ledger(keyId, count) {
  await usageRecords(gateway, keyId, count);
  await new Promise((resolve) => setTimeout(resolve, 300));
  return usageRecords(gateway, keyId, 0);
}

async function agentCase(agent, dialect, kind) {
  const spec = AGENTS[agent];
  const { provider, short } = DIALECTS[dialect];
  const model = spec.model(short);
  const smallModel = spec.smallModel?.(short);
  const label = CODECS[dialect].label;
  const nonce = randomUUID().replaceAll('-', '').slice(0, 12);
  const key = await createKey(gateway, { name: `${agent}-${short}-${kind}` });
  const start = { calls: models.calls.length, requests: upstream.requests.length, attempts: sinkhole.attempts.length, log: gateway.log().length };

  const result = await spec.run({ gateway, key: key.key, model, smallModel, prompt: casePrompt(kind, nonce), sinkhole });

  const calls = models.calls.slice(start.calls);
  const requests = upstream.requests.slice(start.requests);
  const context = () =>
    `${agent} exit ${result.code} (signal ${result.signal}, ${result.ms} ms${result.timedOut ? ', timed out' : ''})\n` +
    `stdout:\n${result.stdout.slice(-2000)}\nstderr:\n${result.stderr.slice(-3000)}\n` +
    `upstream calls:\n${summary(calls)}\nllmux log:\n${gateway.log().slice(start.log).slice(-3000)}`;

  assert.equal(result.timedOut, false, `the agent did not finish in time\n${context()}`);
  for (const call of calls) assert.deepEqual(call.problems, [], `the fake ${label} upstream refused a body\n${context()}`);
  assert.equal(result.code, 0, context());
  // Every request the upstream got was a model call of this case's models.
  assert.deepEqual(
    requests.map((r) => `${r.method} ${r.url}`),
    calls.map((c) => `POST ${c.url}`),
    `requests other than model calls reached the upstream\n${context()}`,
  );
  for (const call of calls) assert.ok([model, smallModel].includes(call.model), `a call to ${call.model}\n${context()}`);

  const main = calls.filter((c) => c.role === 'main');
  assert.deepEqual(main.map((c) => c.answered), kind === 'plain' ? ['plain'] : ['tool-call', 'final'], `main model calls\n${context()}`);
  for (const call of main) assert.equal(call.nonce, nonce);

  const expected = kind === 'plain' ? plainAnswer(nonce, label) : toolAnswer(toolOutput(nonce), label);
  assert.equal(result.stdout.trim(), expected, `the agent's printed answer\n${context()}`);
  if (kind === 'tool') assertToolResultShape(dialect, main[1].body, agent, nonce);

  // One ledger record per upstream call (side calls of the small model included).
  const records = await ledger(key.id, calls.length);
  assert.equal(records.length, calls.length, `ledger records ${JSON.stringify(records, null, 1)}\n${context()}`);
  assert.deepEqual(records.map((r) => r.upstream_model).sort(), calls.map((c) => c.model).sort());
  for (const record of records) {
    assert.equal(record.status, 200, JSON.stringify(record));
    assert.equal(record.provider, provider, JSON.stringify(record));
    assert.equal(record.model, record.upstream_model, JSON.stringify(record));
    assert.deepEqual([record.input_tokens, record.output_tokens], [USAGE.input, USAGE.output], JSON.stringify(record));
  }

  assert.deepEqual(sinkhole.attempts.slice(start.attempts), [], `the agent tried to reach the network\n${context()}`);
  return { result, calls, records };
}

for (const agent of Object.keys(AGENTS)) {
  describe(agent, () => {
    for (const dialect of Object.keys(DIALECTS)) {
      const label = `${CODECS[dialect].label} upstream`;
      test(`${label}: a plain answer`, async () => {
        await agentCase(agent, dialect, 'plain');
      });
      test(`${label}: a shell tool call and its result sent back`, async () => {
        await agentCase(agent, dialect, 'tool');
      });
    }
  });
}
