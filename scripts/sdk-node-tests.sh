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

if ! command -v node >/dev/null 2>&1; then
  echo "sdk-node-tests: 'node' not found on PATH; install Node.js 20 or newer (with npm) to run this suite" >&2
  exit 1
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "sdk-node-tests: 'npm' not found on PATH; install npm (it ships with Node.js) to run this suite" >&2
  exit 1
fi
NODE_MAJOR="$(node -p 'process.versions.node.split(".")[0]')"
if (( NODE_MAJOR < 20 )); then
  echo "sdk-node-tests: Node.js $(node --version) is too old; this suite needs Node.js 20 or newer" >&2
  exit 1
fi

# shellcheck source=lib/llmux-bin.sh
source "$ROOT/scripts/lib/llmux-bin.sh"
resolve_llmux_bin sdk-node-tests

# node_modules is current when the stamp written after the last `npm ci` matches the
# hash of package.json + package-lock.json.
STAMP="$SUITE/node_modules/.llmux-install-stamp"
WANT="$(cd "$SUITE" && node -e '
  const { createHash } = require("node:crypto");
  const { readFileSync } = require("node:fs");
  const hash = createHash("sha256");
  for (const file of ["package.json", "package-lock.json"]) hash.update(readFileSync(file));
  process.stdout.write(hash.digest("hex"));
')"
if [[ ! -d "$SUITE/node_modules" || ! -f "$STAMP" || "$(cat "$STAMP")" != "$WANT" ]]; then
  echo "sdk-node-tests: installing tests/sdk-node dependencies (npm ci)" >&2
  (cd "$SUITE" && npm ci --no-audit --no-fund)
  printf '%s' "$WANT" > "$STAMP"
fi

cd "$SUITE"
exec node --test --test-timeout=120000 "$@" ./*.test.mjs
