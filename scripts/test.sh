#!/usr/bin/env bash
# Runs every test: unit, property and integration tests (cargo), then the official SDK
# suites against the real binary: the openai + anthropic Python SDKs (pinned packages
# from PyPI, installed into .venv on first run) and the openai npm package (pinned,
# installed into tests/sdk-node/node_modules on first run); then the real coding agents,
# Codex CLI and Claude Code (pinned npm packages, installed into tests/agents/node_modules).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo test --locked --workspace
LLMUX_BIN=target/debug/llmux bash scripts/sdk-tests.sh
LLMUX_BIN=target/debug/llmux bash scripts/sdk-node-tests.sh
LLMUX_BIN=target/debug/llmux bash scripts/agent-tests.sh
# A short libFuzzer smoke run of the llmux-wire fuzz targets (fuzz/; FUZZ_SECONDS per target).
bash scripts/fuzz-smoke.sh
