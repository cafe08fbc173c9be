# Sourced by the npm suite scripts (sdk-node-tests.sh, agent-tests.sh).

# require_node SCRIPT: exits naming SCRIPT unless node (20 or newer) and npm are on PATH.
require_node() {
  local script="$1"
  if ! command -v node >/dev/null 2>&1; then
    echo "$script: 'node' not found on PATH; install Node.js 20 or newer (with npm) to run this suite" >&2
    exit 1
  fi
  if ! command -v npm >/dev/null 2>&1; then
    echo "$script: 'npm' not found on PATH; install npm (it ships with Node.js) to run this suite" >&2
    exit 1
  fi
  local major
  major="$(node -p 'process.versions.node.split(".")[0]')"
  if (( major < 20 )); then
    echo "$script: Node.js $(node --version) is too old; this suite needs Node.js 20 or newer" >&2
    exit 1
  fi
}

# ensure_npm_suite SCRIPT DIR: runs `npm ci` in DIR when node_modules is missing or stale,
# that is when the stamp written after the last `npm ci` does not match the hash of
# package.json + package-lock.json. A failed install fails the script (set -e).
ensure_npm_suite() {
  local script="$1" dir="$2"
  local stamp="$dir/node_modules/.llmux-install-stamp"
  local want
  want="$(cd "$dir" && node -e '
    const { createHash } = require("node:crypto");
    const { readFileSync } = require("node:fs");
    const hash = createHash("sha256");
    for (const file of ["package.json", "package-lock.json"]) hash.update(readFileSync(file));
    process.stdout.write(hash.digest("hex"));
  ')"
  if [[ ! -d "$dir/node_modules" || ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    echo "$script: installing ${dir#"$ROOT/"} dependencies (npm ci)" >&2
    (cd "$dir" && npm ci --no-audit --no-fund)
    printf '%s' "$want" > "$stamp"
  fi
}
