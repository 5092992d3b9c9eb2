#!/usr/bin/env python3
"""Per-window means of a soak_faults output (its markdown rows), and its curve in text.

    benches/scripts/soak_windows.py OUTPUT [WINDOW_SECONDS]          # table per window
    benches/scripts/soak_windows.py OUTPUT [WINDOW_SECONDS] --curve  # a row per sample, RSS as bars
"""
import re
import sys

ROW = re.compile(r"\| (\d+) \| ([\d.]+) \| (\d+) \| ([\d.]+) \| (\d+) \| ?(.*?) ?\|$")


def rows(path):
    out = []
    for line in open(path):
        m = ROW.match(line.strip())
        if m:
            out.append((int(m[1]), float(m[2]), int(m[3]), float(m[4]), m[6]))
    return out


def main():
    args = [a for a in sys.argv[1:] if a != "--curve"]
    window = int(args[1]) if len(args) > 1 else 600
    data = rows(args[0])
    if "--curve" in sys.argv:
        print("  t (s)  RSS (MiB), one # per 4 MiB                              fds  CPU (% of a core)")
        for t, rss, fds, cpu, fault in data:
            mark = "  <- " + fault.split(" at ")[0] if fault else ""
            print(f"{t:7d}  {rss:6.1f} {'#' * round(rss / 4):<55s} {fds:3d}  {cpu:4.1f}{mark}")
        return
    print("| window (s) | RSS mean (MiB) | RSS min–max | fds | CPU mean (% of a core) | rows |")
    print("|---|---:|---:|---:|---:|---:|")
    by = {}
    for r in data:
        by.setdefault((r[0] - 1) // window, []).append(r)
    for k in sorted(by):
        rs = by[k]
        rss = [r[1] for r in rs]
        fds = [r[2] for r in rs]
        cpu = [r[3] for r in rs]
        print(
            f"| {k * window}–{(k + 1) * window} | {sum(rss) / len(rss):.1f} | {min(rss):.1f}–{max(rss):.1f} "
            f"| {min(fds)}–{max(fds)} | {sum(cpu) / len(cpu):.1f} | {len(rs)} |"
        )


if __name__ == "__main__":
    main()
