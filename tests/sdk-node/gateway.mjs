// Starts and stops the real llmux binary for the openai-npm conformance suite
// (mirrors tests/sdk/conftest.py). The binary is env LLMUX_BIN, default
// target/debug/llmux relative to the repository root.

import { spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const MASTER_KEY = 'sk-master-sdk-node-tests';
const STARTUP_TIMEOUT_MS = 20_000;
const SHUTDOWN_TIMEOUT_MS = 20_000;

/** Public model name -> [provider, upstream model]. */
export const MODELS = {
  chat: ['fake', 'fake-chat'],
  tools: ['fake', 'fake-tools'],
  parallel: ['fake', 'fake-parallel'],
  bad: ['fake', 'fake-400'],
  sonnet: ['claude', 'claude-text'],
  'sonnet-tools': ['claude', 'claude-tools'],
  gemini: ['google', 'gemini-3-pro-preview'],
  'gemini-thinking': ['google', 'gemini-fake-thinking'],
  'gemini-tools': ['google', 'gemini-fake-tools'],
  'gemini-parallel': ['google', 'gemini-fake-parallel'],
  'gemini-busy': ['google', 'gemini-fake-busy'],
  mockchat: ['mock', 'echo'],
  // Priced (1000 per million tokens each way), for budgets.
  priced: ['fake', 'fake-chat', 'price = { input = 1000, output = 1000 }'],
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function resolveBinary() {
  const value = process.env.LLMUX_BIN || 'target/debug/llmux';
  return isAbsolute(value) ? value : resolve(REPO_ROOT, value);
}

function configToml(workdir, upstream, extraModels) {
  const models = Object.entries({ ...MODELS, ...extraModels })
    .map(([name, [provider, model, extra]]) => {
      const route = `provider = "${provider}", model = "${model}"${extra ? `, ${extra}` : ''}`;
      return `[[models]]\nname = "${name}"\nroutes = [{ ${route} }]\n`;
    })
    .join('\n');
  return `
[server]
listen = "127.0.0.1:0"
master_key = "\${LLMUX_MASTER_KEY}"
shutdown_grace_ms = 2000
key_refresh_ms = 200

[storage]
url = "sqlite://${join(workdir, 'llmux.db')}"
flush_interval_ms = 50

[[providers]]
name = "fake"
kind = "openai-compatible"
base_url = "${upstream.baseURL}"
api_key = "sk-upstream-secret"
timeout_ms = 15000

[[providers]]
name = "oai"
kind = "openai-compatible"
base_url = "${upstream.baseURL}"
api_key = "sk-upstream-secret"
responses_api = true
timeout_ms = 15000

[[providers]]
name = "claude"
kind = "anthropic"
base_url = "${upstream.hostURL}"
api_key = "sk-upstream-secret"
timeout_ms = 15000

[[providers]]
name = "google"
kind = "gemini"
base_url = "${upstream.hostURL}"
api_key = "sk-upstream-secret"
timeout_ms = 15000

[[providers]]
name = "mock"
kind = "mock"
mock = { chunk_chars = 4, chunk_delay_ms = 0 }

${models}`;
}

/**
 * Starts `llmux serve` against `upstream` (a started FakeUpstream) and waits for
 * GET /health == 200. Returns { url, addr, workdir, logPath, log(), child, exited }.
 * `models` adds public models to `MODELS` (same shape: name -> [provider, upstream
 * model, extra route fields]); the providers are `fake` (openai-compatible), `claude`
 * (anthropic), `google` (gemini) and `mock`.
 */
export async function startGateway(upstream, { models = {} } = {}) {
  const binary = resolveBinary();
  try {
    accessSync(binary, constants.X_OK);
  } catch {
    throw new Error(`llmux binary not found or not executable: ${binary} (build it with \`cargo build -p llmux\` or set LLMUX_BIN)`);
  }
  const workdir = mkdtempSync(join(tmpdir(), 'llmux-sdk-node-'));
  const configPath = join(workdir, 'llmux.toml');
  writeFileSync(configPath, configToml(workdir, upstream, models));
  const logPath = join(workdir, 'llmux.log');
  const logFd = openSync(logPath, 'w');

  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('LLMUX_')));
  env.LLMUX_MASTER_KEY = MASTER_KEY;
  env.LLMUX_LOG = process.env.LLMUX_LOG || 'info';
  // Local traffic must never go through a proxy configured in the environment.
  env.NO_PROXY = env.no_proxy = '127.0.0.1,localhost,::1';

  const child = spawn(binary, ['serve', '--config', configPath, '--listen', '127.0.0.1:0'], {
    cwd: workdir,
    env,
    stdio: ['ignore', logFd, logFd],
  });
  closeSync(logFd);
  const exited = new Promise((resolveExit) => {
    child.once('exit', (code, signal) => resolveExit({ code, signal }));
    child.once('error', (error) => resolveExit({ code: null, signal: null, error }));
  });
  let exitInfo = null;
  exited.then((info) => (exitInfo = info));

  const log = () => {
    try {
      return readFileSync(logPath, 'utf8');
    } catch {
      return '';
    }
  };
  const gateway = { child, exited, workdir, logPath, log, addr: null, url: null };

  try {
    const deadline = Date.now() + STARTUP_TIMEOUT_MS;
    while (!gateway.addr) {
      if (exitInfo) throw new Error(`llmux exited early (${JSON.stringify(exitInfo)}):\n${log()}`);
      const match = /listening on http:\/\/(\S+)\s/.exec(log());
      if (match) {
        gateway.addr = match[1];
        gateway.url = `http://${match[1]}`;
        break;
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for the \`listening on\` line:\n${log()}`);
      await sleep(20);
    }
    for (;;) {
      if (exitInfo) throw new Error(`llmux exited (${JSON.stringify(exitInfo)}):\n${log()}`);
      try {
        const response = await fetch(`${gateway.url}/health`, { signal: AbortSignal.timeout(2000) });
        await response.arrayBuffer();
        if (response.status === 200) break;
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for GET /health == 200:\n${log()}`);
      await sleep(50);
    }
  } catch (error) {
    child.kill('SIGKILL');
    await exited;
    throw error;
  }
  return gateway;
}

/** SIGTERM, then wait; resolves to the exit code (throws with the log tail on timeout). */
export async function stopGateway(gateway, { keepWorkdir = false } = {}) {
  gateway.child.kill('SIGTERM');
  let timer;
  const timeout = new Promise((resolveTimeout) => {
    timer = setTimeout(() => resolveTimeout(null), SHUTDOWN_TIMEOUT_MS);
  });
  const result = await Promise.race([gateway.exited, timeout]);
  clearTimeout(timer);
  if (result === null) {
    gateway.child.kill('SIGKILL');
    await gateway.exited;
    throw new Error(`llmux did not exit within ${SHUTDOWN_TIMEOUT_MS} ms of SIGTERM:\n${gateway.log().slice(-4000)}`);
  }
  if (!keepWorkdir && result.code === 0) rmSync(gateway.workdir, { recursive: true, force: true });
  return result;
}

/** GET /admin/usage?key_id=... with the master key, polled until `count` records are there (2 s at most). */
export async function usageRecords(gateway, keyId, count) {
  const deadline = Date.now() + 2_000;
  for (;;) {
    const response = await fetch(`${gateway.url}/admin/usage?key_id=${encodeURIComponent(keyId)}`, {
      headers: { authorization: `Bearer ${MASTER_KEY}` },
    });
    const { records } = await response.json();
    if (records.length >= count || Date.now() > deadline) return records;
    await sleep(50);
  }
}

/** POST /admin/keys with the master key; returns { id, key, raw }. */
export async function createKey(gateway, payload) {
  const response = await fetch(`${gateway.url}/admin/keys`, {
    method: 'POST',
    headers: { authorization: `Bearer ${MASTER_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify(payload),
  });
  const text = await response.text();
  if (response.status !== 201) throw new Error(`POST /admin/keys ${JSON.stringify(payload)} -> ${response.status} ${text}`);
  const body = JSON.parse(text);
  if (typeof body.key !== 'string' || !body.key || typeof body.id !== 'string' || !body.id) {
    throw new Error(`POST /admin/keys returned no id/key: ${text}`);
  }
  return { id: body.id, key: body.key, raw: body };
}
