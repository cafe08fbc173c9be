#!/usr/bin/env bash
# Short libFuzzer smoke run of every cargo-fuzz target in fuzz/ (the SSE framer and the
# llmux-wire request/stream decoders and encoders). Fails if any target panics, hangs or
# runs out of memory; the input that did it is left in fuzz/artifacts/<target>/.
#
#   bash scripts/fuzz-smoke.sh                 # every target, FUZZ_SECONDS (15) each
#   FUZZ_SECONDS=60 bash scripts/fuzz-smoke.sh sse_framer openai_peek
#
# Runs on the stable toolchain: targets are built without a sanitizer (`-s none`; the
# fuzzed code is safe Rust), which needs no nightly `-Z` flag. libFuzzer itself is
# compiled from C++ by libfuzzer-sys, so a C++ compiler (g++ or clang++) is needed.
# Installs the pinned cargo-fuzz if it is missing. The seed corpus (fuzz/corpus/<target>)
# is only read: what a run adds goes to a temporary directory that is removed afterwards.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CARGO_FUZZ_VERSION=0.13.2
FUZZ_SECONDS="${FUZZ_SECONDS:-15}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz-smoke: installing cargo-fuzz $CARGO_FUZZ_VERSION" >&2
  cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi
if ! command -v c++ >/dev/null && ! command -v g++ >/dev/null && ! command -v clang++ >/dev/null; then
  echo "fuzz-smoke: no C++ compiler (needed to build libFuzzer): apt-get install g++" >&2
  exit 1
fi

cd fuzz
if [[ $# -gt 0 ]]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

started=$SECONDS
lock_before=$(cksum Cargo.lock 2>/dev/null || true)
cargo fuzz build -s none
if [[ "$(cksum Cargo.lock 2>/dev/null || true)" != "$lock_before" ]]; then
  echo "fuzz-smoke: note: fuzz/Cargo.lock was updated (a dependency of llmux-wire changed): commit it" >&2
fi
echo "fuzz-smoke: built ${#targets[@]} targets in $((SECONDS - started)) s; fuzzing each for ${FUZZ_SECONDS} s" >&2

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0
failed=()
for target in "${targets[@]}"; do
  mkdir -p "$work/$target" "corpus/$target"
  log="$work/$target.log"
  # The first corpus directory receives new inputs; the seeds are only read.
  if cargo fuzz run -s none "$target" "$work/$target" "corpus/$target" -- \
    -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    passed=$((passed + 1))
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 || true)
    echo "fuzz-smoke: $target ok (${runs:-?} runs, ${cov:-cov: ?})" >&2
  else
    failed+=("$target")
    echo "fuzz-smoke: $target FAILED; the end of its log:" >&2
    tail -n 60 "$log" >&2
    echo "fuzz-smoke: the input is in fuzz/artifacts/$target/; reproduce with" \
      "(cd fuzz && cargo fuzz run -s none $target artifacts/$target/<file>)" >&2
  fi
done

echo "fuzz-smoke: finished in $((SECONDS - started)) s" >&2
echo "fuzz: ${passed} passed, ${#failed[@]} failed"
[[ ${#failed[@]} -eq 0 ]]
