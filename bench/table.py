#!/usr/bin/env python3
"""Renders bench/run's results (TSV: nodes, phase, seconds, exit, stats JSON file) as a markdown table.

Usage: table.py RESULTS.tsv. Operations are listed by call count, most first, then by name.
"""

import json
import sys


def by_operation(counts: dict) -> str:
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{name} {n}" for name, n in ranked) or "-"


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: table.py RESULTS.tsv")
    print("| nodes | phase | wall s | exit | API calls | calls by operation |")
    print("|---:|---|---:|---:|---:|---|")
    with open(sys.argv[1], encoding="utf-8") as results:
        for line in results:
            nodes, phase, seconds, code, stats_file = line.rstrip("\n").split("\t")
            with open(stats_file, encoding="utf-8") as f:
                stats = json.load(f)
            print(f"| {nodes} | {phase} | {float(seconds):.2f} | {code} | {stats['total']} "
                  f"| {by_operation(stats['by_action'])} |")


if __name__ == "__main__":
    main()
