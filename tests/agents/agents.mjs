// Runs the real coding agents (the pinned npm packages in ./node_modules) headless
// against llmux: Codex CLI (`codex exec`) and Claude Code (`claude -p`), each in a
// throwaway HOME with nothing of the caller's environment but PATH, and with every
// proxy variable pointing at a local `Sinkhole` (so anything an agent tried to reach
// besides llmux on 127.0.0.1 is refused at once and recorded, never a network timeout).

import http from 'node:http';
import { spawn } from 'node:child_process';
import { accessSync, constants, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const SUITE_DIR = dirname(fileURLToPath(import.meta.url));
/** The pinned versions, as package.json has them: { '@openai/codex': 'x.y.z', ... }. */
export const PINNED = JSON.parse(readFileSync(join(SUITE_DIR, 'package.json'), 'utf8')).dependencies;
export const AGENT_TIMEOUT_MS = 90_000;

const LOCAL = '127.0.0.1,localhost,::1';

/** The installed agent's executable (fails, naming the fix, when the suite is not installed). */
export function agentBinary(name) {
  const path = join(SUITE_DIR, 'node_modules', '.bin', name);
  try {
    accessSync(path, constants.X_OK);
  } catch {
    throw new Error(`${path} is missing: install the suite with scripts/agent-tests.sh (npm ci in tests/agents)`);
  }
  return path;
}

/** An HTTP proxy that refuses everything (403) and records what it was asked for. */
export class Sinkhole {
  constructor() {
    this.attempts = [];
    this.server = http.createServer((req, res) => {
      this.attempts.push(`${req.method} ${req.url}`);
      res.writeHead(403, { 'content-type': 'text/plain' });
      res.end('no network in the llmux agent tests\n');
    });
    this.server.on('connect', (req, socket) => {
      this.attempts.push(`CONNECT ${req.url}`);
      socket.on('error', () => {}); // a client that gives up resets the tunnel
      socket.end('HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n');
    });
  }

  async start() {
    await new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', resolve);
    });
    this.url = `http://127.0.0.1:${this.server.address().port}`;
    return this;
  }

  async stop() {
    this.server.closeAllConnections?.();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

/** A fresh HOME (with a work directory the agent starts in) and the environment every agent gets. */
function sandbox(sinkhole) {
  const home = mkdtempSync(join(tmpdir(), 'llmux-agent-'));
  const work = join(home, 'work');
  mkdirSync(work);
  const env = {
    PATH: process.env.PATH,
    HOME: home,
    TMPDIR: tmpdir(),
    LANG: 'C.UTF-8',
    TERM: 'dumb',
    NO_COLOR: '1',
    SHELL: '/bin/bash',
  };
  for (const name of ['HTTP_PROXY', 'HTTPS_PROXY', 'ALL_PROXY']) env[name] = env[name.toLowerCase()] = sinkhole.url;
  env.NO_PROXY = env.no_proxy = LOCAL;
  return { home, work, env };
}

/**
 * `codex exec` with `model` on llmux: a custom model provider on the Responses API
 * (wire_api = "responses"), the virtual key in LLMUX_KEY; no approvals and no sandbox
 * (danger-full-access: Codex's Linux sandbox is not what is tested, and the shell tool
 * must run unprompted); no retries (one upstream call per model request, and a failure
 * shows at once); no analytics, feedback or update check; `--ephemeral` (no session
 * files); `--strict-config` (a key this version does not know is an error, not ignored).
 */
export function codexRun({ gateway, key, model, prompt, sinkhole, extraEnv = {} }) {
  const { home, work, env } = sandbox(sinkhole);
  const codexHome = join(home, '.codex');
  mkdirSync(codexHome);
  writeFileSync(
    join(codexHome, 'config.toml'),
    `model = "${model}"
model_provider = "llmux"
approval_policy = "never"
sandbox_mode = "danger-full-access"
check_for_update_on_startup = false
model_reasoning_effort = "medium"

[analytics]
enabled = false

[feedback]
enabled = false

[features]
plugins = false
remote_plugin = false
apps = false

[model_providers.llmux]
name = "llmux"
base_url = "${gateway.url}/v1"
env_key = "LLMUX_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
`,
  );
  Object.assign(env, { CODEX_HOME: codexHome, LLMUX_KEY: key }, extraEnv);
  const argv = [agentBinary('codex'), 'exec', '--strict-config', '--skip-git-repo-check', '--ephemeral', '--color', 'never', '-C', work, prompt];
  return run({ argv, env, cwd: work, home });
}

/**
 * `claude -p` with `model` (and `smallModel` for its side tasks) on llmux: the Anthropic
 * base URL and the virtual key as ANTHROPIC_API_KEY; telemetry, error reporting, the
 * auto-updater and all nonessential traffic off; only the Bash tool allowed (so it runs
 * without a prompt, and no permission bypass is needed, as root or not).
 */
export function claudeRun({ gateway, key, model, smallModel, prompt, sinkhole }) {
  const { home, work, env } = sandbox(sinkhole);
  Object.assign(env, {
    CLAUDE_CONFIG_DIR: join(home, '.claude'),
    ANTHROPIC_BASE_URL: gateway.url,
    ANTHROPIC_API_KEY: key,
    ANTHROPIC_MODEL: model,
    ANTHROPIC_SMALL_FAST_MODEL: smallModel,
    ANTHROPIC_DEFAULT_HAIKU_MODEL: smallModel,
    DISABLE_TELEMETRY: '1',
    DISABLE_ERROR_REPORTING: '1',
    DISABLE_AUTOUPDATER: '1',
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
  });
  const argv = [agentBinary('claude'), '-p', prompt, '--output-format', 'text', '--allowedTools', 'Bash', '--no-session-persistence'];
  return run({ argv, env, cwd: work, home });
}

/** `<binary> --version` in a throwaway HOME. */
export function versionRun(name, sinkhole) {
  const { home, work, env } = sandbox(sinkhole);
  return run({ argv: [agentBinary(name), '--version'], env, cwd: work, home });
}

/**
 * Runs argv (its own process group, stdin empty) until it exits or `AGENT_TIMEOUT_MS`
 * pass (then the group is killed). Resolves to { code, signal, stdout, stderr, ms, timedOut }.
 */
function run({ argv, env, cwd, home }) {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(argv[0], argv.slice(1), { env, cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (data) => (stdout += data));
    child.stderr.on('data', (data) => (stderr += data));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }, AGENT_TIMEOUT_MS);
    let finished = false;
    const finish = (code, signal, error) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      rmSync(home, { recursive: true, force: true });
      resolve({ code, signal, stdout, stderr: error ? `${stderr}\n${error.stack}` : stderr, ms: Date.now() - started, timedOut });
    };
    child.once('error', (error) => finish(null, null, error));
    child.once('close', (code, signal) => finish(code, signal));
  });
}
