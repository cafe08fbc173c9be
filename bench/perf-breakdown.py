#!/usr/bin/env python3
"""Summarise a `perf script -F comm,tid,ip,sym` dump of llmux (DWARF call graphs) into
cost centres: which part of the gateway each sample belongs to (component) and what
the CPU was doing there (kernel syscall / user code / allocator / memcpy).

    perf script -i perf.data -F comm,tid,ip,sym > perf-script.txt
    python3 bench/perf-breakdown.py perf-script.txt

Every sample is counted exactly once, so the percentages add up to 100.
"""

import collections
import re
import sys

# Components in priority order: a sample belongs to the first component any of its
# frames matches. Patterns match a frame's own path (at its start, after an optional
# `poll<`-style wrapper or `<`), not generic arguments, so a tokio or hyper frame
# generic over a llmux type does not count as llmux code.
def _frame(paths):
    return re.compile(r"^(?:[\w{}#]+<)?<?(?:&(?:mut )?)?(?:" + paths + r")")


COMPONENTS = [
    ("usage ledger writer (batching task and SQLite store calls)",
     _frame(r"llmux_gateway::ledger::write_loop|llmux_gateway::ledger::Pending|llmux_store::|rusqlite::")),
    ("key refresh loop", _frame(r"llmux_gateway::auth::KeyCache::refresh")),
    ("gateway: JSON peek/rewrite, usage parse (llmux_wire)", _frame(r"llmux_wire::")),
    ("gateway: auth (key hash + cache)", _frame(r"llmux_gateway::auth::|sha2::")),
    ("gateway: telemetry/metrics", _frame(r"llmux_gateway::telemetry::")),
    ("gateway: settle/usage record", _frame(r"llmux_gateway::settle::|llmux_gateway::ledger::Ledger::record")),
    ("upstream HTTP client (llmux pool over hyper's client connections)",
     _frame(r"llmux_providers::client::|hyper::client::|hyper_util::client::|hyper::proto::h1::role::Client|"
            r"hyper::proto::h1::dispatch::Client")),
    ("gateway: request lifecycle (other llmux code)",
     _frame(r"llmux_gateway::|llmux_server::|llmux_providers::|llmux_types::|llmux_config::")),
    ("downstream HTTP server (hyper h1 server, axum routing)",
     _frame(r"hyper::|axum::|axum_core::|hyper_util::server|hyper_util::service|tower::|http::")),
    ("tokio runtime (scheduler, timers, I/O driver, park)", _frame(r"tokio::|mio::")),
]


# What the CPU was doing: the system call (or kernel entry) a kernel sample is in,
# first match wins; samples whose leaf is the scheduler are marked as such.
SYSCALLS = [
    ("socket write (writev/send, incl. loopback TCP delivery)", re.compile(r"^(do_writev|sock_write_iter|tcp_sendmsg|__sys_sendto|__sys_sendmsg)$")),
    ("socket read (recv/read)", re.compile(r"^(__sys_recvfrom|__sys_recvmsg|tcp_recvmsg|sock_read_iter|do_readv)$")),
    ("file I/O (SQLite pread/pwrite/fsync)", re.compile(r"^(__x64_sys_pwrite64|__x64_sys_pread64|__x64_sys_fsync|__x64_sys_fdatasync|__x64_sys_fcntl|do_fsync)$")),
    ("futex (thread park/unpark)", re.compile(r"^(do_futex|__x64_sys_futex)$")),
    ("epoll_wait", re.compile(r"^(do_epoll_wait|__x64_sys_epoll_wait|__x64_sys_epoll_pwait)$")),
    ("preempted (reschedule at syscall/irq exit)", re.compile(r"^(exit_to_user_mode_loop|irqentry_exit_to_user_mode)$")),
    ("page fault", re.compile(r"^(asm_exc_page_fault|exc_page_fault|do_user_addr_fault)$")),
]
SCHED_LEAF = re.compile(r"^(finish_task_switch|__schedule|schedule$|_raw_spin_unlock_irqrestore|try_to_wake_up)")


def samples(path):
    current = None
    for raw in open(path, errors="replace"):
        line = raw.rstrip("\n")
        if not line.strip():
            if current:
                yield current
            current = None
            continue
        frame = re.match(r"\s+([0-9a-f]+)\s+(.*)", line)
        if frame and current is not None and raw.startswith(("\t", "        ")):
            current["frames"].append((frame.group(1), frame.group(2)))
        else:
            current = {"comm": line.strip().split(" ")[0], "frames": []}
    if current:
        yield current


def is_kernel(ip, name=""):
    # ffffffffffffffff marks the end of a truncated user stack, not a kernel address.
    return ip.startswith("ffffffff") and ip != "ffffffffffffffff" and name != "[unknown]"


def component(sample):
    comm = sample["comm"]
    frames = sample["frames"]
    if comm.startswith("llmux-sqlite"):
        if any(name.startswith(("sqlite3", "unixWrite", "unixRead", "unixSync", "walFrames", "pager")) for _, name in frames):
            return "usage ledger: SQLite executing SQL (writer thread)"
        return "usage ledger: writer thread binds, wait/wake"
    names = [name for _, name in frames]
    for label, pattern in COMPONENTS:
        if any(pattern.search(name) for name in names):
            return label
    return "unattributed (truncated stack)"


def activity(sample):
    frames = sample["frames"]
    kernel = [name for ip, name in frames if is_kernel(ip, name)]
    if kernel:
        kind = "other kernel"
        for label, pattern in SYSCALLS:
            if any(pattern.search(name) for name in kernel):
                kind = label
                break
        suffix = " -> context switch / wake-up" if SCHED_LEAF.search(kernel[0]) else ""
        return "kernel: " + kind + suffix
    leaf = frames[0][1] if frames else ""
    if re.search(r"^_?mi_|mimalloc|malloc|^free|alloc::alloc|RawVec", leaf):
        return "user: allocator (mimalloc)"
    if re.search(r"memmove|memcpy|memset|memcmp", leaf):
        return "user: memcpy/memcmp"
    if leaf.startswith("sqlite3") or "sqlite" in leaf:
        return "user: SQLite"
    return "user: other code"


def table(title, counter, total, limit=None):
    print(title)
    for label, count in counter.most_common(limit):
        print(f"  {100.0 * count / total:5.1f}%  {label}")
    print()


def main():
    all_samples = [s for s in samples(sys.argv[1]) if s["frames"]]
    total = len(all_samples)
    if not total:
        sys.exit("no samples")
    by_component = collections.Counter(component(s) for s in all_samples)
    by_activity = collections.Counter(activity(s) for s in all_samples)
    cross = collections.Counter((component(s), activity(s)) for s in all_samples)
    by_thread = collections.Counter(s["comm"] for s in all_samples)
    print(f"{total} samples\n")
    table("by thread:", by_thread, total)
    table("by component (first matching component in priority order):", by_component, total)
    table("by activity:", by_activity, total)
    print("top cost centres (component x activity):")
    for (comp, act), count in cross.most_common(15):
        print(f"  {100.0 * count / total:5.1f}%  {comp}  /  {act}")


if __name__ == "__main__":
    main()
