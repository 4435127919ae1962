#!/usr/bin/env python3
"""legate's CPU per sent message, by stage of the send path, from a perf profile.

Reads `perf script -F comm,ip,sym` output (a `perf record --call-graph dwarf` of legate)
on stdin and attributes each sample to the first stage whose rule matches a frame of its
stack; the rules follow the stages of `legate_send_stage_seconds{stage}` in /metrics
(which times the same stages in wall-clock time). Prints each stage's share of the samples
and, given the message count and legate's CPU seconds, its CPU microseconds per message.

Usage: perf script -i FILE -F comm,ip,sym --no-inline | bench/send_stages.py MESSAGES CPU_SECONDS
(bench/smtp_outbound.sh does this when LEGATE_PERF=1.)
"""
import collections
import sys

# (stage, frame substrings). The first rule with a matching frame wins, so inner work is
# listed before what calls it (recording a result runs a store transaction; the worker's
# attempt calls the transport and the recorder).
RULES = [
    # The send policy, suppression list and circuit breaker (issue 24), with the store reads
    # and writes they make inside the send's transaction: what POLICY=unlimited saves.
    ("policy", ["policy::", "PolicyService", "BreakerBatch"]),
    ("reputation tally", ["reputation::"]),
    ("dkim", ["mailauth::sign::dkim_sign"]),
    ("parse", ["mailbox::deliver::parse_for"]),
    ("compose", ["queue::compose::", "longlines::", "plan_recipients", "check_identity_headers",
                 "parse_headers"]),
    ("record", ["queue::recorder", "QueueService>::record", "notify_sender"]),
    ("handoff", ["held_raw", "Store::blob_of", "QueueService>::dispatch", "queue::fresh"]),
    ("delivery", ["smtp::outbound", "QueueService>::attempt", "deliver_due"]),
    ("store: blob", ["BlobStore::put"]),
    ("store: transaction", ["store_parsed", "deliver_parsed", "Store::transact"]),
    ("store: commit", ["GroupCommit", "Store::commit", "flush_blocking"]),
    ("audit", ["audit::"]),
    ("accept", ["smtp::inbound", "axum", "hyper", "api::", "identity::", "rustls"]),
    ("store: sled background", ["sled::"]),
]


def stacks(lines):
    """Yields (comm, frames leaf first) per sample of `perf script` output."""
    comm, frames = None, []
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if comm is not None:
                yield comm, frames
            comm, frames = None, []
        elif not line[0].isspace():
            if comm is not None:
                yield comm, frames
            comm, frames = line.split()[0], []
        else:
            parts = line.strip().split(" ", 1)
            frames.append(parts[1] if len(parts) > 1 else parts[0])
    if comm is not None:
        yield comm, frames


def main():
    msgs = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    cpu = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    by_stage = collections.Counter()
    total = 0
    for comm, frames in stacks(sys.stdin):
        total += 1
        for stage, pats in RULES:
            if any(p in f for f in frames for p in pats):
                by_stage[stage] += 1
                break
        else:
            by_stage["other (runtime, kernel, unattributed)"] += 1
    if not total:
        print("no samples")
        return
    print(f"legate CPU by send stage ({total} samples):")
    for stage, n in by_stage.most_common():
        per_msg = f"  {1e6 * cpu * n / total / msgs:6.0f} us/msg" if msgs and cpu else ""
        print(f"  {stage:40s} {100 * n / total:5.1f}%{per_msg}")


if __name__ == "__main__":
    main()
