#!/usr/bin/env bash
# Runs the official SDK conformance suites (openai and anthropic Python SDKs, tests/sdk) against the real llmux binary.
#
#   LLMUX_BIN=target/debug/llmux bash scripts/sdk-tests.sh [extra pytest args]
#
# Creates .venv in the repo root if missing and installs tests/sdk/requirements.txt.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

LLMUX_BIN="${LLMUX_BIN:-target/debug/llmux}"
case "$LLMUX_BIN" in
  /*) ;;
  *) LLMUX_BIN="$ROOT/$LLMUX_BIN" ;;
esac
if [[ ! -f "$LLMUX_BIN" || ! -x "$LLMUX_BIN" ]]; then
  echo "sdk-tests: llmux binary not found or not executable: $LLMUX_BIN" >&2
  echo "sdk-tests: build it with 'cargo build -p llmux' or set LLMUX_BIN" >&2
  exit 1
fi
export LLMUX_BIN

if [[ ! -x .venv/bin/python ]]; then
  echo "sdk-tests: creating .venv" >&2
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt

exec .venv/bin/python -m pytest -q -p no:cacheprovider tests/sdk "$@"
