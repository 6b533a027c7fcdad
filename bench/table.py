#!/usr/bin/env python3
"""Renders bench/run's results (TSV: nodes, phase, mode, seconds, exit, stats JSON file) as a
markdown table.

Usage: table.py RESULTS.tsv. Operations are listed by call count, most first, then by name.

Throttled rows (bench/run --throttled) also get the bound EC2's token buckets allow and the
ratio of the wall time to it. A throttled phase can be no faster than the same phase without
throttling, nor faster than the buckets let its mutating calls through: n calls of an action
whose bucket holds `size` tokens refilled at `refill` per second take at least
(n - size) / refill seconds, and kcluster's waves (interfaces, then instances; instances, then
interfaces) run one after another, so the waits add up. The bound is the larger of the two.
Describe calls are polls whose number follows the wall time, so they are left out.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from strict_ec2 import bucket_of  # noqa: E402


def by_operation(counts: dict) -> str:
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{name} {n}" for name, n in ranked) or "-"


def forced_wait(counts: dict) -> float:
    """Seconds the token buckets force on the mutating calls in `counts`."""
    total = 0.0
    for action, n in counts.items():
        if action.startswith(("Describe", "Get", "List")):
            continue
        size, refill = bucket_of(action)
        total += max(0.0, (n - size) / refill)
    return total


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: table.py RESULTS.tsv")
    rows = []
    with open(sys.argv[1], encoding="utf-8") as results:
        for line in results:
            nodes, phase, mode, seconds, code, stats_file = line.rstrip("\n").split("\t")
            with open(stats_file, encoding="utf-8") as f:
                stats = json.load(f)
            rows.append((nodes, phase, mode, float(seconds), code, stats))
    unthrottled = {(n, p): s for n, p, m, s, _, _ in rows if m == "unthrottled"}
    print("| nodes | phase | mode | wall s | bound s | ratio | exit | refused | API calls | calls by operation |")
    print("|---:|---|---|---:|---:|---:|---:|---:|---:|---|")
    failed = 0
    for nodes, phase, mode, seconds, code, stats in rows:
        bound = ratio = "-"
        if mode == "throttled" and (nodes, phase) in unthrottled:
            b = max(unthrottled[(nodes, phase)], forced_wait(stats["by_action"]))
            bound, ratio = f"{b:.2f}", f"{seconds / b:.2f}"
        refused = stats.get("strict", {}).get("RequestLimitExceeded", 0)
        failed += phase == "apply" and code != "0"
        print(f"| {nodes} | {phase} | {mode} | {seconds:.2f} | {bound} | {ratio} | {code} | {refused} "
              f"| {stats['total']} | {by_operation(stats['by_action'])} |")
    print(f"\nFailed applies: {failed}")


if __name__ == "__main__":
    main()
