#!/usr/bin/env bash
# Runs the official SDK conformance suites (openai and anthropic Python SDKs, tests/sdk) against the real llmux binary.
#
#   LLMUX_BIN=target/debug/llmux bash scripts/sdk-tests.sh [extra pytest args]
#
# Creates .venv in the repo root if missing and installs tests/sdk/requirements.txt.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# shellcheck source=lib/llmux-bin.sh
source "$ROOT/scripts/lib/llmux-bin.sh"
resolve_llmux_bin sdk-tests

if [[ ! -x .venv/bin/python ]]; then
  echo "sdk-tests: creating .venv" >&2
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt

exec .venv/bin/python -m pytest -q -p no:cacheprovider tests/sdk "$@"
