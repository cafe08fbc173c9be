// The scripted upstream models the real coding agents talk to through llmux.
//
// It adds models to tests/sdk-node's FakeUpstream (`script()`), one per agent and
// upstream dialect, and answers like a model doing the test's task:
//   - the prompt holds `[llmux-case plain <nonce>]`: a text answer (`plainAnswer`);
//   - the prompt holds `[llmux-case tool <nonce>]` and no tool result yet: a call of the
//     agent's own shell tool (Codex `exec_command {cmd}`, Claude Code `Bash {command,
//     description}`) running `printf 'llmux-tool-%s-%s\n' 42 <nonce>`, whose output
//     (`toolOutput`) is in no request until the shell has run it;
//   - a later request carrying that call's result, in the dialect's own shape, with the
//     output in it: a text answer quoting the output read from the result (`toolAnswer`).
// Anything else is answered 400 naming the problem, and so is every body the real
// provider would refuse (tests/sdk-node's validators), so a translation bug fails the
// test with the reason in the agent's output. Requests of an agent's small model (side
// tasks) get a short text answer. Every call is recorded in `calls`.
//
// A dialect is a codec: how to validate, read (user text, tools, tool results) and
// answer (text or one tool call, streamed or whole): OpenAI chat, OpenAI's Responses
// API (POST /v1/responses, `function_call` / `function_call_output` items), Anthropic
// Messages, Gemini.

import { randomUUID } from 'node:crypto';

import {
  GEMINI_SIGNATURE,
  anthropicBodyProblems,
  anthropicToolProblems,
  geminiBodyProblems,
  geminiToolOutput,
  googleError,
  openaiChatBodyProblems,
  sendGeminiSse,
  sendJson,
  sendSse,
} from '../sdk-node/fake-upstream.mjs';

/** What every scripted answer reports as its usage (each dialect's own fields). */
export const USAGE = { input: 30, output: 7 };
export const SIDE_ANSWER = 'llmux side answer';

const CASE = /\[llmux-case (plain|tool) ([a-z0-9]+)\]/g;

export const casePrompt = (kind, nonce) =>
  kind === 'plain'
    ? `[llmux-case plain ${nonce}] Reply with the plain answer for this case.`
    : `[llmux-case tool ${nonce}] Run the shell command you are given and report what it printed.`;
export const plainAnswer = (nonce, dialect) => `Plain answer ${nonce} from the fake ${dialect} upstream.`;
export const toolOutput = (nonce) => `llmux-tool-42-${nonce}`;
export const toolAnswer = (output, dialect) => `The command printed ${output} (read from the ${dialect} tool result).`;
export const toolCommand = (nonce) => `printf 'llmux-tool-%s-%s\\n' 42 ${nonce}`;

/** Each agent's shell tool: its name, the argument holding the command, and the call's arguments. */
export const SHELL_TOOLS = {
  codex: { name: 'exec_command', argument: 'cmd', args: (nonce) => ({ cmd: toolCommand(nonce) }) },
  claude: {
    name: 'Bash',
    argument: 'command',
    args: (nonce) => ({ command: toolCommand(nonce), description: 'Print the llmux test marker' }),
  },
};

export const callId = (dialect, nonce) => (dialect === 'messages' ? `toolu_llmux_${nonce}` : `call_llmux_${nonce}`);
export const thinkingSignature = (nonce) => `sig-llmux-${nonce}`;

const textOf = (content) =>
  typeof content === 'string'
    ? content
    : Array.isArray(content)
      ? content.filter((part) => part?.type === 'text' || part?.type === 'input_text').map((part) => part.text).join('\n')
      : '';
const pieces = (text, count = 3) => {
  const size = Math.ceil(text.length / count);
  const out = [];
  for (let start = 0; start < text.length; start += size) out.push(text.slice(start, start + size));
  return out;
};

// ---------------------------------------------------------------- codecs

const chat = {
  label: 'OpenAI chat',
  problems: (body, req) => openaiChatBodyProblems(body, req.headers),
  streamed: (body) => body.stream === true,
  userTexts: (body) => body.messages.filter((m) => m.role === 'user').map((m) => textOf(m.content)),
  declaredTools: (body) => (body.tools ?? []).map((tool) => ({ name: tool.function.name, parameters: tool.function.parameters })),
  toolResults: (body) => body.messages.filter((m) => m.role === 'tool').map((m) => ({ id: m.tool_call_id, text: textOf(m.content) })),
  error: (res, message) => sendJson(res, 400, { error: { message, type: 'invalid_request_error', param: null, code: null } }),
  async answer(res, body, { text, call }) {
    const id = `chatcmpl-llmux${randomUUID().slice(0, 8)}`;
    const created = Math.floor(Date.now() / 1000);
    const model = body.model;
    const usage = { prompt_tokens: USAGE.input, completion_tokens: USAGE.output, total_tokens: USAGE.input + USAGE.output };
    const finish = call ? 'tool_calls' : 'stop';
    if (!body.stream) {
      const message = call
        ? { role: 'assistant', content: null, tool_calls: [{ id: call.id, type: 'function', function: { name: call.name, arguments: JSON.stringify(call.args) } }] }
        : { role: 'assistant', content: text };
      sendJson(res, 200, { id, object: 'chat.completion', created, model, choices: [{ index: 0, message, finish_reason: finish }], usage });
      return;
    }
    const includeUsage = body.stream_options?.include_usage === true;
    const chunk = (delta, finishReason = null) => ({
      id, object: 'chat.completion.chunk', created, model,
      choices: [{ index: 0, delta, finish_reason: finishReason }],
      ...(includeUsage ? { usage: null } : {}),
    });
    const events = [chunk({ role: 'assistant', content: call ? null : '' })];
    if (call) {
      events.push(chunk({ tool_calls: [{ index: 0, id: call.id, type: 'function', function: { name: call.name, arguments: '' } }] }));
      for (const piece of pieces(JSON.stringify(call.args))) events.push(chunk({ tool_calls: [{ index: 0, function: { arguments: piece } }] }));
    } else {
      for (const piece of pieces(text)) events.push(chunk({ content: piece }));
    }
    events.push(chunk({}, finish));
    if (includeUsage) events.push({ id, object: 'chat.completion.chunk', created, model, choices: [], usage });
    await sendSse(res, events, { named: false });
  },
};

const thinkingOn = (body) => ['enabled', 'adaptive'].includes(body.thinking?.type);

const messages = {
  label: 'Anthropic',
  problems(body, req, { agent, nonce }) {
    // Claude Code's body reaches an anthropic upstream unchanged: its betas apply.
    const problems = [...anthropicBodyProblems(body, req.headers, { claudeCodeBetas: agent === 'claude' }), ...anthropicToolProblems(body)];
    if (body.thinking?.type === 'enabled') {
      const budget = body.thinking.budget_tokens;
      if (!Number.isInteger(budget) || budget < 1024) problems.push('thinking.enabled.budget_tokens: Input should be greater than or equal to 1024');
      else if (budget >= body.max_tokens) problems.push('`max_tokens` must be greater than `thinking.budget_tokens`');
    }
    // With thinking on, the assistant turn that made the call goes back starting with
    // the thinking block the fake sent, signature intact.
    const id = callId('messages', nonce);
    body.messages.forEach((message, index) => {
      const blocks = Array.isArray(message.content) ? message.content : [];
      if (message.role !== 'assistant' || !blocks.some((block) => block.type === 'tool_use' && block.id === id)) return;
      if (thinkingOn(body) && !(blocks[0]?.type === 'thinking' && blocks[0].signature === thinkingSignature(nonce))) {
        problems.push(
          `messages.${index}.content.0: When \`thinking\` is enabled, a final \`assistant\` message must start with the thinking block the ` +
            `model sent (signature ${thinkingSignature(nonce)}); found ${JSON.stringify(blocks[0])?.slice(0, 200)}`,
        );
      }
    });
    return problems;
  },
  streamed: (body) => body.stream === true,
  userTexts: (body) =>
    body.messages.filter((m) => m.role === 'user').map((m) => (typeof m.content === 'string' ? m.content : textOf(m.content.filter((b) => b.type === 'text')))),
  declaredTools: (body) => (body.tools ?? []).map((tool) => ({ name: tool.name, parameters: tool.input_schema })),
  toolResults: (body) =>
    body.messages
      .filter((m) => m.role === 'user' && Array.isArray(m.content))
      .flatMap((m) => m.content.filter((b) => b.type === 'tool_result'))
      .map((block) => ({ id: block.tool_use_id, text: textOf(block.content) })),
  error: (res, message) => sendJson(res, 400, { type: 'error', error: { type: 'invalid_request_error', message } }),
  async answer(res, body, { text, call, nonce }) {
    const id = `msg_llmux${randomUUID().slice(0, 8)}`;
    const content = call
      ? [
          ...(thinkingOn(body) ? [{ type: 'thinking', thinking: 'The user wants the command run.', signature: thinkingSignature(nonce) }] : []),
          { type: 'tool_use', id: call.id, name: call.name, input: call.args },
        ]
      : [{ type: 'text', text }];
    const stopReason = call ? 'tool_use' : 'end_turn';
    const usage = { input_tokens: USAGE.input, output_tokens: USAGE.output };
    if (!body.stream) {
      sendJson(res, 200, { id, type: 'message', role: 'assistant', model: body.model, content, stop_reason: stopReason, stop_sequence: null, usage });
      return;
    }
    const events = [
      {
        type: 'message_start',
        message: { id, type: 'message', role: 'assistant', model: body.model, content: [], stop_reason: null, stop_sequence: null, usage: { ...usage, output_tokens: 1 } },
      },
    ];
    content.forEach((block, index) => {
      if (block.type === 'text') {
        events.push({ type: 'content_block_start', index, content_block: { type: 'text', text: '' } });
        for (const piece of pieces(block.text)) events.push({ type: 'content_block_delta', index, delta: { type: 'text_delta', text: piece } });
      } else if (block.type === 'thinking') {
        events.push({ type: 'content_block_start', index, content_block: { type: 'thinking', thinking: '', signature: '' } });
        events.push({ type: 'content_block_delta', index, delta: { type: 'thinking_delta', thinking: block.thinking } });
        events.push({ type: 'content_block_delta', index, delta: { type: 'signature_delta', signature: block.signature } });
      } else {
        events.push({ type: 'content_block_start', index, content_block: { type: 'tool_use', id: block.id, name: block.name, input: {} } });
        for (const piece of pieces(JSON.stringify(block.input))) events.push({ type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: piece } });
      }
      events.push({ type: 'content_block_stop', index });
    });
    events.push({ type: 'message_delta', delta: { stop_reason: stopReason, stop_sequence: null }, usage: { output_tokens: USAGE.output } });
    events.push({ type: 'message_stop' });
    await sendSse(res, events, { named: true });
  },
};

const gemini = {
  label: 'Gemini',
  problems: (body, req) => geminiBodyProblems(body, req.headers, req.url),
  streamed: (body, url) => url.split('?')[0].endsWith(':streamGenerateContent'),
  userTexts: (body) =>
    body.contents.filter((c) => c.role === 'user').map((c) => c.parts.filter((p) => typeof p.text === 'string').map((p) => p.text).join('\n')),
  declaredTools: (body) =>
    (body.tools ?? []).flatMap((tool) => tool.functionDeclarations ?? []).map((d) => ({ name: d.name, parameters: d.parameters ?? d.parametersJsonSchema })),
  // Gemini matches a functionResponse to its functionCall by name (ids are optional).
  toolResults: (body) =>
    body.contents
      .filter((c) => c.role === 'user')
      .flatMap((c) => c.parts.filter((p) => 'functionResponse' in p))
      .map(({ functionResponse }) => ({ name: functionResponse.name, id: functionResponse.id, text: geminiToolOutput(functionResponse.response) })),
  error: (res, message) => sendJson(res, 400, googleError(400, message, 'INVALID_ARGUMENT')),
  async answer(res, body, { text, call, streamed, model }) {
    // Gemini 3 signs the first functionCall part of a turn and wants the signature back.
    const parts = call ? [{ functionCall: { name: call.name, args: call.args }, thoughtSignature: GEMINI_SIGNATURE }] : pieces(text).map((piece) => ({ text: piece }));
    const usageMetadata = { promptTokenCount: USAGE.input, candidatesTokenCount: USAGE.output, totalTokenCount: USAGE.input + USAGE.output };
    const responseId = `gemini-llmux-${randomUUID().slice(0, 8)}`;
    const response = (chunkParts, finished) => ({
      candidates: [{ content: chunkParts.length ? { role: 'model', parts: chunkParts } : { role: 'model' }, index: 0, ...(finished ? { finishReason: 'STOP' } : {}) }],
      usageMetadata,
      modelVersion: model,
      responseId,
    });
    if (!streamed) {
      const merged = call ? parts : [{ text }];
      sendJson(res, 200, response(merged, true));
      return;
    }
    await sendGeminiSse(res, [...parts.map((part) => response([part], false)), response([], true)]);
  },
};


/** What OpenAI's Responses API refuses of a body, as far as these tests go. */
function responsesBodyProblems(body, headers) {
  const problems = [];
  if (headers.authorization !== 'Bearer sk-upstream-secret') problems.push('authorization: not the provider key');
  if (typeof body.model !== 'string' || !body.model) problems.push("Missing required parameter: 'model'.");
  if (!(typeof body.input === 'string' || Array.isArray(body.input))) problems.push("Missing required parameter: 'input'.");
  for (const field of ['messages', 'max_tokens', 'stream_options', 'n', 'stop']) {
    if (field in body) problems.push(`Unsupported parameter: '${field}'.`);
  }
  const calls = new Set();
  (Array.isArray(body.input) ? body.input : []).forEach((item, index) => {
    const type = item?.type ?? (item?.role ? 'message' : undefined);
    if (type === 'message' && !['user', 'assistant', 'system', 'developer'].includes(item.role)) {
      problems.push(`Invalid value: '${item.role}'. Supported values are: 'assistant', 'system', 'developer', and 'user'. (input[${index}].role)`);
    } else if (type === 'function_call') {
      if (typeof item.call_id !== 'string' || typeof item.name !== 'string' || typeof item.arguments !== 'string') {
        problems.push(`input[${index}]: a function_call needs call_id, name and arguments (a string)`);
      }
      calls.add(item.call_id);
    } else if (type === 'function_call_output') {
      if (!calls.has(item.call_id)) problems.push(`No tool call found for function call output with call_id ${item.call_id}. (input[${index}])`);
    } else if (type === 'reasoning') {
      if (typeof item.id !== 'string' || !Array.isArray(item.summary)) problems.push(`input[${index}]: a reasoning item needs id and summary`);
    } else if (!['message', 'function_call', 'function_call_output', 'reasoning'].includes(type)) {
      problems.push(`Invalid value: '${type}'. (input[${index}].type)`);
    }
  });
  for (const [index, tool] of (body.tools ?? []).entries()) {
    if (tool?.type === 'function' && (typeof tool.name !== 'string' || 'function' in tool)) {
      problems.push(`tools[${index}]: a Responses function tool is flat ({type, name, parameters}), not Chat Completions' {type, function}`);
    }
  }
  return problems;
}

const responses = {
  label: 'OpenAI Responses',
  problems: (body, req) => responsesBodyProblems(body, req.headers),
  streamed: (body) => body.stream === true,
  userTexts: (body) =>
    typeof body.input === 'string'
      ? [body.input]
      : body.input.filter((item) => (item.type ?? 'message') === 'message' && item.role === 'user').map((item) => textOf(item.content)),
  declaredTools: (body) => (body.tools ?? []).filter((tool) => tool.type === 'function').map((tool) => ({ name: tool.name, parameters: tool.parameters })),
  toolResults: (body) =>
    (Array.isArray(body.input) ? body.input : [])
      .filter((item) => item.type === 'function_call_output')
      .map((item) => ({ id: item.call_id, text: typeof item.output === 'string' ? item.output : textOf(item.output) })),
  error: (res, message) => sendJson(res, 400, { error: { message, type: 'invalid_request_error', param: null, code: null } }),
  async answer(res, body, { text, call }) {
    const id = `resp_llmux${randomUUID().slice(0, 8)}`;
    const usage = {
      input_tokens: USAGE.input,
      input_tokens_details: { cached_tokens: 0 },
      output_tokens: USAGE.output,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: USAGE.input + USAGE.output,
    };
    const item = call
      ? { id: `fc_${id}`, type: 'function_call', status: 'completed', call_id: call.id, name: call.name, arguments: JSON.stringify(call.args) }
      : { id: `msg_${id}`, type: 'message', status: 'completed', role: 'assistant', content: [{ type: 'output_text', annotations: [], text }] };
    const response = (status, output, withUsage) => ({
      id, object: 'response', created_at: Math.floor(Date.now() / 1000), status, model: body.model, output, usage: withUsage ? usage : null, store: false,
    });
    if (!body.stream) {
      sendJson(res, 200, response('completed', [item], true));
      return;
    }
    let sequence = 0;
    const events = [];
    const push = (type, rest) => events.push({ type, sequence_number: sequence++, ...rest });
    push('response.created', { response: response('in_progress', [], false) });
    push('response.in_progress', { response: response('in_progress', [], false) });
    if (call) {
      push('response.output_item.added', { output_index: 0, item: { ...item, status: 'in_progress', arguments: '' } });
      for (const piece of pieces(item.arguments)) push('response.function_call_arguments.delta', { item_id: item.id, output_index: 0, delta: piece });
      push('response.function_call_arguments.done', { item_id: item.id, output_index: 0, arguments: item.arguments });
    } else {
      push('response.output_item.added', { output_index: 0, item: { ...item, status: 'in_progress', content: [] } });
      push('response.content_part.added', { item_id: item.id, output_index: 0, content_index: 0, part: { type: 'output_text', annotations: [], text: '' } });
      for (const piece of pieces(text)) push('response.output_text.delta', { item_id: item.id, output_index: 0, content_index: 0, delta: piece, logprobs: [] });
      push('response.output_text.done', { item_id: item.id, output_index: 0, content_index: 0, text, logprobs: [] });
      push('response.content_part.done', { item_id: item.id, output_index: 0, content_index: 0, part: item.content[0] });
    }
    push('response.output_item.done', { output_index: 0, item });
    push('response.completed', { response: response('completed', [item], true) });
    await sendSse(res, events, { named: true });
  },
};

export const CODECS = { chat, responses, messages, gemini };

/** A tool result answers the fake's call: same id (chat, Anthropic), same function name (Gemini). */
const answersCall = (dialect, result, call) => (dialect === 'gemini' ? result.name === call.name : result.id === call.id);

// ---------------------------------------------------------------- the scenario

export class AgentModels {
  /** `upstream`: a started FakeUpstream. */
  constructor(upstream) {
    this.upstream = upstream;
    /** Every scripted call: { agent, dialect, model, role: main|side, kind, nonce, answered, problems, body, url }. */
    this.calls = [];
  }

  /** Serves upstream model `model` of `dialect` as `agent`'s `role` (main or side) model. */
  add(agent, dialect, model, role) {
    this.upstream.script(dialect, model, (request) => this.#handle(agent, role, request));
    return this;
  }

  async #handle(agent, role, { req, res, body, url, model, dialect }) {
    const codec = CODECS[dialect];
    const streamed = codec.streamed(body, url);
    const entry = { agent, dialect, model, role, kind: null, nonce: null, answered: null, problems: [], body, url, streamed };
    this.calls.push(entry);
    const fail = (problems) => {
      entry.problems = problems;
      entry.answered = 'error';
      codec.error(res, `[fake ${codec.label} upstream, ${agent} ${role} model] ${problems.join('; ')}`);
    };

    const found = [...codec.userTexts(body).join('\n').matchAll(CASE)].at(-1);
    entry.kind = found?.[1] ?? null;
    entry.nonce = found?.[2] ?? null;
    const problems = codec.problems(body, req, { agent, nonce: entry.nonce });
    if (problems.length) return fail(problems);

    const answer = async (what, reply) => {
      entry.answered = what;
      await codec.answer(res, body, { ...reply, nonce: entry.nonce, streamed, model });
    };
    if (role === 'side') return answer('side', { text: SIDE_ANSWER });
    if (!found) return fail(['no [llmux-case ...] marker in any user message']);
    const { nonce } = entry;
    if (entry.kind === 'plain') return answer('plain', { text: plainAnswer(nonce, codec.label) });

    const shell = SHELL_TOOLS[agent];
    const declared = codec.declaredTools(body).find((tool) => tool.name === shell.name);
    if (!declared) return fail([`the agent's shell tool ${shell.name} is not among the tools: ${codec.declaredTools(body).map((t) => t.name).join(', ')}`]);
    if (!declared.parameters?.properties?.[shell.argument]) {
      return fail([`${shell.name} takes no ${shell.argument} argument: ${JSON.stringify(declared.parameters)?.slice(0, 300)}`]);
    }
    const call = { id: callId(dialect, nonce), name: shell.name, args: shell.args(nonce) };
    const results = codec.toolResults(body);
    if (!results.length) return answer('tool-call', { call });
    const result = results.find((candidate) => answersCall(dialect, candidate, call));
    if (!result) return fail([`tool results arrived, none for the call ${call.id} (${shell.name}): ${JSON.stringify(results).slice(0, 300)}`]);
    const output = toolOutput(nonce);
    if (!result.text.includes(output)) return fail([`the result of ${call.id} does not hold the command's output ${output}: ${JSON.stringify(result.text).slice(0, 400)}`]);
    entry.toolResult = result.text;
    return answer('final', { text: toolAnswer(output, codec.label) });
  }
}
