"""Packing time: ``itlab.data.pack`` (first fit through a max-tree of the bins' free space)
against first fit by scanning every bin (what ``pack`` did before), on the same examples in
one run, with identical rows checked.

    python benchmarks/pack_speed.py [--examples 39040] [--seq-len 128] [--large 1000000]

Examples are token lists of 8-24 tokens (study B's rewrites run 12-20 characters plus the
chat template). ``--large`` times the tree alone on that many examples (the paper's study B
tunes on ~10^6), where the scan, quadratic, would take about 40 minutes.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from itlab import data  # noqa: E402


def scan_first_fit(examples, seq_len):
    """Row contents of first fit decreasing, each bin found by scanning the open bins."""
    bins: list[list[int]] = []
    for ids, _ in sorted(examples, key=lambda e: -len(e[0])):
        ids = ids[:seq_len]
        for b in bins:
            if len(b) + len(ids) <= seq_len:
                break
        else:
            b = []
            bins.append(b)
        b += ids
    return bins


def make(n, rng):
    out = []
    for _ in range(n):
        ids = [rng.randrange(3, 250) for _ in range(rng.randint(8, 24))]
        out.append((ids, ids))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=39040)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--large", type=int, default=1_000_000)
    a = ap.parse_args()
    examples = make(a.examples, random.Random(0))
    t0 = time.perf_counter()
    rows = data.pack(examples, a.seq_len, pad_id=-1)
    tree = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = scan_first_fit(examples, a.seq_len)
    scan = time.perf_counter() - t0
    assert [[t for t in r["input_ids"] if t != -1] for r in rows] == ref, "rows differ"
    print(f"{a.examples} examples, {len(rows)} rows of {a.seq_len}: tree {tree:.2f} s, scan {scan:.2f} s, "
          f"scan / tree = {scan / tree:.1f}x (identical rows)")
    if a.large:
        large = make(a.large, random.Random(1))
        t0 = time.perf_counter()
        rows = data.pack(large, a.seq_len, pad_id=-1)
        print(f"{a.large} examples, {len(rows)} rows: tree {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
