#!/usr/bin/env python3
"""The live heap's lowest point per minute, from heaptrack's massif output (the heap between
two views being built: what stays).

    heaptrack_print -f RUN.zst -p 0 -a 0 -T 0 -M RUN.massif --massif-detailed-freq 0
    benches/scripts/heaptrack_floor.py BEFORE.massif [AFTER.massif]
"""
import sys


def floors(path):
    t, out = 0.0, {}
    for line in open(path):
        if line.startswith("time="):
            t = float(line[5:])
        elif line.startswith("mem_heap_B="):
            minute = int(t // 60)
            mib = int(line[11:]) / (1 << 20)
            out[minute] = min(out.get(minute, mib), mib)
    return out


def main():
    runs = [floors(p) for p in sys.argv[1:]]
    print("| minute from (s) | " + " | ".join(f"floor, {p} (MiB)" for p in sys.argv[1:]) + " |")
    print("|---:|" + "---:|" * len(runs))
    for m in sorted(set().union(*runs)):
        cells = " | ".join(f"{r[m]:.1f}" if m in r else "-" for r in runs)
        print(f"| {m * 60} | {cells} |")


if __name__ == "__main__":
    main()
