#!/usr/bin/env bash
# Runs the real coding agents through llmux (tests/agents): the pinned Codex CLI and
# Claude Code npm packages, headless, against the real llmux binary and in-process fake
# upstreams of each dialect (OpenAI chat, Anthropic, Gemini).
#
#   LLMUX_BIN=target/debug/llmux bash scripts/agent-tests.sh [extra `node --test` args]
#
# Needs Node.js 20+ and npm. Runs `npm ci` in tests/agents when node_modules is missing
# or stale (package.json / package-lock.json changed since the last install); the agents
# are not skipped when they can't be installed or run: the suite fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SUITE="$ROOT/tests/agents"

# shellcheck source=lib/npm-suite.sh
source "$ROOT/scripts/lib/npm-suite.sh"
require_node agent-tests

# shellcheck source=lib/llmux-bin.sh
source "$ROOT/scripts/lib/llmux-bin.sh"
resolve_llmux_bin agent-tests

ensure_npm_suite agent-tests "$SUITE"

cd "$SUITE"
# The cases run one after another (each agent run takes about a second); the per-test
# timeout is above the agents' own (AGENT_TIMEOUT_MS in agents.mjs).
exec node --test --test-concurrency=1 --test-timeout=150000 "$@" ./*.test.mjs
