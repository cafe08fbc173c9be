#!/usr/bin/env bash
# Load benchmark: llmux (release) in front of a fast mock upstream, against the same
# load sent straight to the mock and through a plain nginx reverse proxy (one L7 hop).
#
#   bash bench/load.sh
#
# For each target (direct mock, nginx, llmux) and scenario (c=1, c=16, c=64
# non-streaming; c=16 streaming) it runs `wrk -t1 -c<c> -d<seconds> --latency` and
# prints requests/s, p50/p99 latency and the proxy's CPU microseconds per request
# (utime+stime of the proxy's processes from /proc/<pid>/stat over the run, divided
# by the number of requests wrk completed).
#
# Environment:
#   BENCH_SECONDS=10          seconds per measured run
#   BENCH_ROUNDS=3            rounds; each round runs every scenario against every
#                             target, interleaved, and the report gives each figure's
#                             median over the rounds (this VM's speed drifts by 10-20 %
#                             over minutes, so one run per target is not comparable)
#   BENCH_WARMUP_SECONDS=2    warm-up per target (c=16, not measured)
#   BENCH_PIN=1               pin the proxy (nginx/llmux) to CPU 1 and wrk + mock to
#                             CPU 0 (needs >= 2 CPUs; 0 disables pinning)
#   BENCH_TARGETS="direct nginx llmux"
#   BENCH_SCENARIOS="c1 c16 c64 c16-stream"
#   BENCH_BUILD=1             run `cargo build --release` even if the binaries exist
#   BENCH_LLMUX_BIN=path      the llmux binary to measure (default target/release/llmux;
#                             for comparing two builds in alternating runs)
#   BENCH_NGINX_WORKERS=1     nginx `worker_processes` (`auto`: one per core, as nginx
#                             is deployed on a multi-core machine)
#   BENCH_PROFILE=1           after the table, profile llmux under c=16 non-streaming
#                             load with `perf record` (apt: linux-perf) and write the
#                             reports next to the raw results
#   BENCH_PROFILE_SECONDS=10  length of the profiled run
#
# All load targets 127.0.0.1 only; every run is bounded by -d; every process started
# here is stopped on exit. Raw output goes to bench/results/<timestamp>/ (git-ignored).

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR="$ROOT/bench"
LUA="$BENCH_DIR/chat.lua"
LLMUX="${BENCH_LLMUX_BIN:-$ROOT/target/release/llmux}"
MOCK="$ROOT/target/release/fast-upstream"

RUN_SECONDS=${BENCH_SECONDS:-10}
ROUNDS=${BENCH_ROUNDS:-3}
WARMUP_SECONDS=${BENCH_WARMUP_SECONDS:-2}
PIN=${BENCH_PIN:-1}
TARGETS=${BENCH_TARGETS:-"direct nginx llmux"}
SCENARIOS=${BENCH_SCENARIOS:-"c1 c16 c64 c16-stream"}
PROFILE=${BENCH_PROFILE:-0}
PROFILE_SECONDS=${BENCH_PROFILE_SECONDS:-10}

MOCK_PORT=18080
NGINX_PORT=18081
LLMUX_PORT=18082
MASTER_KEY="sk-master-bench-$$"

log() { printf '[bench] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- prerequisites
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null; then
    log "installing nginx and wrk from the distribution's packages"
    as_root apt-get update -qq
    # policy-rc.d may forbid starting the packaged service; that's fine, we run our own.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx wrk
fi
NGINX=$(command -v nginx)
for tool in wrk curl getconf; do command -v "$tool" >/dev/null || die "$tool is required"; done

if [ "${BENCH_BUILD:-0}" = 1 ] || [ ! -x "$LLMUX" ] || [ ! -x "$MOCK" ]; then
    log "building release binaries (cargo build --release -p llmux -p llmux-testkit)"
    (cd "$ROOT" && cargo build --release -p llmux -p llmux-testkit)
fi

# A binary older than the sources measures yesterday's code: say so in the report.
STALE=$(cd "$ROOT" && find crates Cargo.toml Cargo.lock -newer "$LLMUX" \( -name '*.rs' -o -name '*.toml' -o -name 'Cargo.lock' \) 2>/dev/null | sed -n '1,3p' | tr '\n' ' ') || true
[ -z "$STALE" ] || log "WARNING: target/release/llmux is older than $STALE(BENCH_BUILD=1 rebuilds)"

CLK_TCK=$(getconf CLK_TCK)
NCPU=$(nproc)
if [ "$PIN" = 1 ] && [ "$NCPU" -ge 2 ]; then
    PROXY_PIN=(taskset -c 1)
    LOAD_PIN=(taskset -c 0)
    PIN_NOTE="pinned: nginx/llmux on CPU 1; wrk and the mock upstream on CPU 0"
else
    PROXY_PIN=()
    LOAD_PIN=()
    PIN_NOTE="not pinned: wrk, the mock and the proxy share all $NCPU CPUs"
fi

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in $MOCK_PORT $NGINX_PORT $LLMUX_PORT; do
    port_busy "$port" && die "127.0.0.1:$port is already in use"
done

STAMP=$(date +%Y%m%d-%H%M%S)
RESULTS="$BENCH_DIR/results/$STAMP"
mkdir -p "$RESULTS"
TMP=$(mktemp -d /tmp/llmux-bench.XXXXXX)

# ---------------------------------------------------------------- process cleanup
PIDS=()
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    cp -f "$TMP"/*.log "$TMP"/*.conf "$TMP"/*.toml "$RESULTS"/ 2>/dev/null || true
    rm -rf "$TMP"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_ready() { # name url [curl args...]
    local name=$1 url=$2
    shift 2
    for _ in $(seq 100); do
        if curl -fsS -o /dev/null --max-time 2 "$@" "$url" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    die "$name did not answer at $url (logs in $TMP)"
}

# Sum of utime+stime (clock ticks) over the given pids.
cpu_ticks() {
    local total=0 pid stat rest
    local -a fields
    for pid in "$@"; do
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        rest=${stat##*) }            # drop "pid (comm) "; fields[0] is field 3
        read -r -a fields <<<"$rest"
        total=$((total + fields[11] + fields[12]))
    done
    echo "$total"
}

# Busy and total ticks over all CPUs, from /proc/stat.
sys_ticks() {
    local _cpu user nice system idle iowait irq softirq steal _rest
    read -r _cpu user nice system idle iowait irq softirq steal _rest </proc/stat
    echo "$((user + nice + system + irq + softirq + steal)) $((user + nice + system + idle + iowait + irq + softirq + steal))"
}

# CPU time (clock ticks) of this shell's finished children (wrk), from `times`.
# `times` must run in this shell (a subshell reports its own children), hence the file.
children_ticks() {
    local line
    times >"$TMP/times.txt"
    line=$(tail -n1 "$TMP/times.txt")
    awk -v hz="$CLK_TCK" -v l="$line" 'BEGIN {
        n = split(l, t, " "); total = 0
        for (i = 1; i <= n; i++) { split(t[i], p, "m"); sub("s", "", p[2]); total += p[1] * 60 + p[2] }
        printf "%d", total * hz + 0.5
    }'
}

# Waits (at most BENCH_IDLE_WAIT seconds) until other processes leave the CPUs
# alone: the machine is shared, and a compiler running during one target's runs
# would skew the comparison. Each run's table row still reports the background load.
IDLE_WAIT=${BENCH_IDLE_WAIT:-180}
IDLE_MAX_PCT=${BENCH_IDLE_MAX_PCT:-10}
wait_idle() {
    local waited=0 a b busy
    while :; do
        read -r -a a <<<"$(sys_ticks)"
        sleep 1
        read -r -a b <<<"$(sys_ticks)"
        busy=$(((b[0] - a[0]) * 100 / (b[1] - a[1] > 0 ? b[1] - a[1] : 1)))
        [ "$busy" -le "$IDLE_MAX_PCT" ] && return 0
        waited=$((waited + 1))
        if [ "$waited" -ge "$IDLE_WAIT" ]; then
            log "WARNING: the machine is still ${busy}% busy after ${IDLE_WAIT}s; measuring anyway"
            return 0
        fi
        [ $((waited % 10)) -eq 1 ] && log "waiting for the machine to go idle (${busy}% busy)"
    done
}

# ---------------------------------------------------------------- the mock upstream
"${LOAD_PIN[@]}" "$MOCK" "127.0.0.1:$MOCK_PORT" >"$TMP/mock.log" 2>&1 &
MOCK_PID=$!
PIDS+=("$MOCK_PID")
CHAT_PROBE=(-H 'Content-Type: application/json' -d '{"model":"bench","messages":[{"role":"user","content":"hi"}]}')
wait_ready "the mock upstream" "http://127.0.0.1:$MOCK_PORT/v1/chat/completions" "${CHAT_PROBE[@]}"

# ---------------------------------------------------------------- nginx
cat >"$TMP/nginx.conf" <<EOF
# Generated by bench/load.sh: a plain reverse proxy to the mock upstream.
user root;
worker_processes ${BENCH_NGINX_WORKERS:-1};
pid $TMP/nginx.pid;
error_log $TMP/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx-body;
    proxy_temp_path $TMP/nginx-proxy;
    fastcgi_temp_path $TMP/nginx-fastcgi;
    uwsgi_temp_path $TMP/nginx-uwsgi;
    scgi_temp_path $TMP/nginx-scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    upstream mock {
        server 127.0.0.1:$MOCK_PORT;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
    }
}
EOF
NGINX_PID=""
start_nginx() {
    "${PROXY_PIN[@]}" "$NGINX" -e "$TMP/nginx-error.log" -p "$TMP" -c "$TMP/nginx.conf" -g 'daemon off;' \
        >"$TMP/nginx.log" 2>&1 &
    NGINX_PID=$!
    PIDS+=("$NGINX_PID")
    wait_ready "nginx" "http://127.0.0.1:$NGINX_PORT/v1/chat/completions" "${CHAT_PROBE[@]}"
}

# ---------------------------------------------------------------- llmux
cat >"$TMP/llmux.toml" <<EOF
# Generated by bench/load.sh.
[server]
listen = "127.0.0.1:$LLMUX_PORT"
master_key = "$MASTER_KEY"

[storage]
url = "sqlite://$TMP/llmux.db"

[[providers]]
name = "fast"
kind = "openai-compatible"
base_url = "http://127.0.0.1:$MOCK_PORT/v1"
api_key = "sk-bench"

[[models]]
name = "bench"
routes = [{ provider = "fast", model = "bench-upstream-model" }]
EOF
LLMUX_PID=""
VKEY=""
start_llmux() {
    VKEY=$(LLMUX_LOG=warn "$LLMUX" keys create --config "$TMP/llmux.toml" --name bench 2>>"$TMP/llmux-keys.log" | sed -n 1p)
    [ -n "$VKEY" ] || die "could not create a virtual key (see $TMP/llmux-keys.log)"
    LLMUX_LOG=warn "${PROXY_PIN[@]}" "$LLMUX" serve --config "$TMP/llmux.toml" >"$TMP/llmux.log" 2>&1 &
    LLMUX_PID=$!
    PIDS+=("$LLMUX_PID")
    wait_ready "llmux" "http://127.0.0.1:$LLMUX_PORT/v1/chat/completions" "${CHAT_PROBE[@]}" \
        -H "Authorization: Bearer $VKEY"
}

# ---------------------------------------------------------------- runs
target_port() { case $1 in direct) echo $MOCK_PORT ;; nginx) echo $NGINX_PORT ;; llmux) echo $LLMUX_PORT ;; esac; }
target_auth() { case $1 in llmux) echo "$VKEY" ;; *) echo "" ;; esac; }
proxy_pids() {
    case $1 in
        direct) ;;
        nginx) echo "$NGINX_PID" $(pgrep -P "$NGINX_PID" || true) ;;
        llmux) echo "$LLMUX_PID" ;;
    esac
}
scenario_conns() { local s=${1#c}; echo "${s%-stream}"; }
scenario_stream() { case $1 in *-stream) echo 1 ;; *) echo 0 ;; esac; }

# run_wrk target conns stream seconds outfile
run_wrk() {
    BENCH_AUTH=$(target_auth "$1") BENCH_STREAM=$3 BENCH_MODEL=bench \
        "${LOAD_PIN[@]}" wrk -t1 -c"$2" -d"$4"s --timeout 5s --latency -s "$LUA" \
        "http://127.0.0.1:$(target_port "$1")" >"$5" 2>&1
}

field() { sed -n "/^BENCH_RESULT/s/.*[[:space:]]$1=\([0-9.]*\).*/\1/p" "$2"; }

TSV="$RESULTS/results.tsv"
printf 'round\ttarget\tscenario\trps\tp50_us\tp99_us\tproxy_cpu_us_per_req\tmock_cpu_us_per_req\trequests\tfailed\tbackground_cpu_pct\n' >"$TSV"

# One non-streaming and one streaming answer per target, kept for inspection.
save_samples() {
    local target=$1 auth
    auth=$(target_auth "$target")
    for stream in 0 1; do
        local body='{"model":"bench","messages":[{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":64}'
        [ "$stream" = 0 ] || body='{"model":"bench","messages":[{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":64,"stream":true,"stream_options":{"include_usage":true}}'
        curl -sS -i --max-time 5 -H 'Content-Type: application/json' ${auth:+-H "Authorization: Bearer $auth"} \
            -d "$body" "http://127.0.0.1:$(target_port "$target")/v1/chat/completions" \
            >"$RESULTS/$target-sample-stream$stream.txt" 2>&1 || true
    done
}

for target in $TARGETS; do
    case $target in
        direct) ;;
        nginx) start_nginx ;;
        llmux) start_llmux ;;
        *) die "unknown target $target" ;;
    esac
    save_samples "$target"
    log "$target: warm-up ${WARMUP_SECONDS}s"
    run_wrk "$target" 16 0 "$WARMUP_SECONDS" "$RESULTS/$target-warmup.txt"
done

# measure round target scenario
measure() {
    local round=$1 target=$2 scenario=$3
    conns=$(scenario_conns "$scenario")
    stream=$(scenario_stream "$scenario")
    raw="$RESULTS/$target-$scenario-r$round.txt"
    read -r -a pids <<<"$(proxy_pids "$target")"
    wait_idle
    log "round $round/$ROUNDS $target $scenario: wrk -t1 -c$conns -d${RUN_SECONDS}s (stream=$stream)"
    read -r -a sys0 <<<"$(sys_ticks)"
    children_ticks >"$TMP/wrk0"; wrk0=$(<"$TMP/wrk0")
    proxy0=$(cpu_ticks "${pids[@]}")
    mock0=$(cpu_ticks "$MOCK_PID")
    run_wrk "$target" "$conns" "$stream" "$RUN_SECONDS" "$raw"
    sleep 0.5 # let batched work (llmux's ledger flush) land inside the window
    proxy1=$(cpu_ticks "${pids[@]}")
    mock1=$(cpu_ticks "$MOCK_PID")
    children_ticks >"$TMP/wrk1"; wrk1=$(<"$TMP/wrk1")
    read -r -a sys1 <<<"$(sys_ticks)"
    # Other processes' CPU during the run, in % of one CPU.
    bg=$(awk -v busy=$((sys1[0] - sys0[0])) -v total=$((sys1[1] - sys0[1])) -v ours=$((proxy1 - proxy0 + mock1 - mock0 + wrk1 - wrk0)) \
        -v ncpu="$NCPU" 'BEGIN { v = total > 0 ? (busy - ours) * 100 * ncpu / total : 0; printf "%.0f", v < 0 ? 0 : v }')
    grep -q BENCH_RESULT "$raw" || die "wrk printed no result (see $raw)"
    requests=$(field requests "$raw")
    duration=$(field duration_us "$raw")
    p50=$(field p50_us "$raw")
    p99=$(field p99_us "$raw")
    failed=$(($(field non2xx "$raw") + $(field err_connect "$raw") + $(field err_read "$raw") \
        + $(field err_write "$raw") + $(field err_timeout "$raw")))
    awk -v r="$round" -v t="$target" -v s="$scenario" -v n="$requests" -v d="$duration" -v p50="$p50" -v p99="$p99" \
        -v px=$((proxy1 - proxy0)) -v mk=$((mock1 - mock0)) -v hz="$CLK_TCK" -v f="$failed" -v np="${#pids[@]}" -v bg="$bg" \
        'BEGIN {
            rps = n / (d / 1e6);
            pcpu = (np > 0 && n > 0) ? sprintf("%.1f", px * 1e6 / hz / n) : "-";
            mcpu = (n > 0) ? sprintf("%.1f", mk * 1e6 / hz / n) : "-";
            printf "%s\t%s\t%s\t%.0f\t%d\t%d\t%s\t%s\t%d\t%d\t%s\n", r, t, s, rps, p50, p99, pcpu, mcpu, n, f, bg
        }' >>"$TSV"
    [ "$failed" -eq 0 ] || log "WARNING: $target $scenario: $failed failed requests (see $raw)"
}

for round in $(seq 1 "$ROUNDS"); do
    for scenario in $SCENARIOS; do
        for target in $TARGETS; do
            measure "$round" "$target" "$scenario"
        done
    done
done

# ---------------------------------------------------------------- report
{
    echo "llmux load benchmark  $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (+ uncommitted changes)')"
    echo "machine: $NCPU CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r)"
    echo "tools: $(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2), $("$NGINX" -v 2>&1 | sed 's/.*: //'), llmux $(stat -c '%y' "$LLMUX" | cut -d. -f1) build"
    [ -z "$STALE" ] || echo "WARNING: the llmux binary is older than some sources ($STALE); rerun with BENCH_BUILD=1"
    echo "$PIN_NOTE; ${RUN_SECONDS}s per run, $ROUNDS interleaved rounds (figures are medians), wrk -t1, CLK_TCK=$CLK_TCK"
    echo "CPU-µs/req = proxy utime+stime over the run / requests (direct: none; nginx: master+worker; llmux: its process);"
    echo "mock-µs/req = the same for the mock upstream. Latencies are wrk's (its percentiles include wrk's"
    echo "coordinated-omission correction, so rare stalls weigh heavily in p99, most of all at c=1)."
    echo "bg% = CPU used by other processes on the machine during the run, in % of one CPU (should be ~0)."
    echo
    python3 "$BENCH_DIR/report.py" "$TSV"
    echo
    echo "raw output: $RESULTS"
} | tee "$RESULTS/summary.txt"

# ---------------------------------------------------------------- optional profile
if [ "$PROFILE" = 1 ]; then
    command -v perf >/dev/null || { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf; }
    [ -n "$LLMUX_PID" ] || start_llmux
    wait_idle
    log "profiling llmux: perf record (DWARF call graphs) during wrk -c16 -d${PROFILE_SECONDS}s"
    perf record -F 499 --call-graph dwarf,16384 -p "$LLMUX_PID" -o "$RESULTS/perf.data" \
        -- sleep "$((PROFILE_SECONDS + 1))" >"$RESULTS/perf-record.log" 2>&1 &
    PERF_PID=$!
    sleep 0.5
    run_wrk llmux 16 0 "$PROFILE_SECONDS" "$RESULTS/llmux-c16-profiled.txt"
    wait "$PERF_PID" || true
    log "writing perf reports (this takes a while)"
    perf report -i "$RESULTS/perf.data" --stdio --no-children --sort symbol -g none --percent-limit 0.3 \
        >"$RESULTS/perf-self.txt" 2>/dev/null || true
    perf report -i "$RESULTS/perf.data" --stdio --children --sort symbol -g none --percent-limit 2 \
        >"$RESULTS/perf-inclusive.txt" 2>/dev/null || true
    perf report -i "$RESULTS/perf.data" --stdio --no-children --sort dso -g none \
        >"$RESULTS/perf-dso.txt" 2>/dev/null || true
    if command -v python3 >/dev/null; then
        perf script -i "$RESULTS/perf.data" -F comm,tid,ip,sym >"$RESULTS/perf-script.txt" 2>/dev/null || true
        python3 "$BENCH_DIR/perf-breakdown.py" "$RESULTS/perf-script.txt" >"$RESULTS/perf-breakdown.txt" || true
        cat "$RESULTS/perf-breakdown.txt"
    fi
    log "profile: $RESULTS/perf-breakdown.txt, perf-self.txt, perf-inclusive.txt, perf-dso.txt"
fi
