#!/usr/bin/env python3
"""Sums Nsight Compute's per-kernel GPU time by kernel name.

    ncu --clock-control none --metrics gpu__time_duration.sum --csv --print-units base PROGRAM > k.csv
    python bench/gpu/ncu_summary.py k.csv [--runs N] [--top 25]

--runs divides the totals by the number of inferences the program ran (e.g. `kiln bench --warmup 0
--iterations 1` on a plan: one tuning run at load, two warm-up enqueues, one timed one = 4).
"""
import argparse
import csv
import io
import sys
from collections import defaultdict


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--runs", type=float, default=1.0)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--name-width", type=int, default=90, help="characters of each kernel name to keep")
    args = ap.parse_args()
    text = open(args.csv, errors="replace").read()
    start = text.find('"ID"')
    if start < 0:
        print("no ncu CSV table found:\n" + text[-2000:])
        return 1
    total, count = defaultdict(float), defaultdict(int)
    for row in csv.DictReader(io.StringIO(text[start:])):
        if row.get("Metric Name") != "gpu__time_duration.sum":
            continue
        name = row["Kernel Name"][:args.name_width]
        total[name] += float(row["Metric Value"].replace(",", ""))
        count[name] += 1
    grand = sum(total.values())
    print(f"{'us/run':>9} {'share':>6} {'calls/run':>9}  kernel")
    for name, ns in sorted(total.items(), key=lambda kv: -kv[1])[:args.top]:
        print(f"{ns / 1e3 / args.runs:9.1f} {100 * ns / grand:5.1f}% {count[name] / args.runs:9.1f}  {name}")
    print(f"{grand / 1e3 / args.runs:9.1f} us per run in {sum(count.values()) / args.runs:.0f} kernels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
