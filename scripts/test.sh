#!/usr/bin/env bash
# Runs every test: unit, property and integration tests (cargo), then the official
# openai + anthropic Python SDK suites against the real binary (installs pinned packages from PyPI
# into .venv on first run).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo test --locked --workspace
LLMUX_BIN=target/debug/llmux bash scripts/sdk-tests.sh
