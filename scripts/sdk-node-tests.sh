#!/usr/bin/env bash
# Runs the official openai npm SDK conformance suite (tests/sdk-node) against the real llmux binary.
#
#   LLMUX_BIN=target/debug/llmux bash scripts/sdk-node-tests.sh [extra `node --test` args]
#
# Needs Node.js 20+ and npm. Runs `npm ci` in tests/sdk-node when node_modules is missing
# or stale (package.json / package-lock.json changed since the last install).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SUITE="$ROOT/tests/sdk-node"

# shellcheck source=lib/npm-suite.sh
source "$ROOT/scripts/lib/npm-suite.sh"
require_node sdk-node-tests

# shellcheck source=lib/llmux-bin.sh
source "$ROOT/scripts/lib/llmux-bin.sh"
resolve_llmux_bin sdk-node-tests

ensure_npm_suite sdk-node-tests "$SUITE"

cd "$SUITE"
exec node --test --test-timeout=120000 "$@" ./*.test.mjs
