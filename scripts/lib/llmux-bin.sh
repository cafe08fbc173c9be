# Sourced by the SDK suite scripts: resolves LLMUX_BIN (default target/debug/llmux,
# relative to the repository root) to an absolute path and exports it, or exits
# naming the script ($1) and how to build the binary.
resolve_llmux_bin() {
  local script="$1"
  LLMUX_BIN="${LLMUX_BIN:-target/debug/llmux}"
  case "$LLMUX_BIN" in
    /*) ;;
    *) LLMUX_BIN="$ROOT/$LLMUX_BIN" ;;
  esac
  if [[ ! -f "$LLMUX_BIN" || ! -x "$LLMUX_BIN" ]]; then
    echo "$script: llmux binary not found or not executable: $LLMUX_BIN" >&2
    echo "$script: build it with 'cargo build -p llmux' or set LLMUX_BIN" >&2
    exit 1
  fi
  export LLMUX_BIN
}
