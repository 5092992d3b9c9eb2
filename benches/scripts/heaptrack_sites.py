#!/usr/bin/env python3
"""Live heap by allocation site from heaptrack, and what changed between two recordings.

    heaptrack_print -f RUN.zst -p 0 -a 0 -T 0 --flamegraph-cost-type leaked -F RUN.stacks
    benches/scripts/heaptrack_sites.py RUN.stacks [DEPTH]             # biggest sites
    benches/scripts/heaptrack_sites.py BEFORE.stacks DEPTH AFTER.stacks  # biggest changes

"leaked" is what was still allocated when the process ended: kill serve with SIGKILL (by its
pid) at the moment to look at. A site is the DEPTH innermost frames of coalscope's own files
(src/, by file name), so generic frames (alloc, hashbrown, Vec) do not hide who allocated.
"""
import collections
import pathlib
import re
import sys

SRC = pathlib.Path(__file__).resolve().parents[2] / "src"
OURS = {p.name for p in SRC.rglob("*.rs")} - {"mod.rs", "tests.rs"}
FILE = re.compile(r"\(([^()]+\.rs)\)$")


def site(stack, depth):
    out = []
    for frame in reversed(stack.split(";")):
        m = FILE.search(frame)
        if m and m.group(1) in OURS:
            out.append(frame.split(" ")[0][:40] + "@" + m.group(1))
            if len(out) >= depth:
                break
    return " <- ".join(out) or "?"


def load(path, depth):
    sites = collections.Counter()
    for line in open(path):
        stack, _, n = line.rstrip("\n").rpartition(" ")
        sites[site(stack, depth)] += int(n)
    return sites


def main():
    depth = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    a = load(sys.argv[1], depth)
    mib = 1 << 20
    if len(sys.argv) > 3:
        b = load(sys.argv[3], depth)
        diff = {k: b.get(k, 0) - a.get(k, 0) for k in set(a) | set(b)}
        for k, v in sorted(diff.items(), key=lambda kv: -abs(kv[1]))[:40]:
            print(f"{v / mib:8.2f} MiB  (before {a.get(k, 0) / mib:6.2f} after {b.get(k, 0) / mib:6.2f})  {k}")
    else:
        for k, v in a.most_common(40):
            print(f"{v / mib:8.2f} MiB  {k}")


if __name__ == "__main__":
    main()
