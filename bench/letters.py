"""Benchmark: rendering one-page dunning letters (PDF) with WeasyPrint.

Starts worker processes (default 2), each with its own Django set-up, that
render letters built in memory from realistic, seeded data: 1–8 invoices,
en/de wording, every tone, some with fees, interest, earlier charges,
credits and a payment-plan paragraph. Prints letters per second over all
workers, p50/p95 render time, each worker's resident memory after its
1,000th and last letter and the growth between the two.

    .venv/bin/python bench/letters.py [--workers 2] [--letters 10000]

`--letters` is per worker. Targets: ≥ 25 letters/s with 2 workers, p95 ≤ 250 ms,
≤ 300 MB per worker, growth ≤ 10 % from letter 1,000 to letter 10,000.
No database is needed: a Notice holds plain values.
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import machine

ON = dt.date(2026, 6, 30)
CHECKPOINT = 1_000
SAMPLES = 10  # letters per worker kept on disk to check they fit on one page

TARGET_RATE, TARGET_P95_MS, TARGET_RSS_MB, TARGET_GROWTH = 25, 250, 300, 10.0

def notice(rng: random.Random, n: int):
    from ar_collections.wording import sample_notice

    return sample_notice(rng, n, on=ON)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def worker(index: int, letters: int, start_at: float, samples_dir: str, results) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "arcrm.settings")
    os.environ.setdefault("SECRET_KEY", "bench-only")
    import logging

    import django

    django.setup()
    logging.getLogger("weasyprint").setLevel(logging.WARNING)  # a progress line per step otherwise
    from ar_collections.rendering import render_letter

    rng = random.Random(1_000 + index)
    render_letter(notice(rng, 0))  # warm-up: Fontconfig scan, stylesheet parse
    warm_rss = rss_mb()
    while time.time() < start_at:  # all workers start together
        time.sleep(0.01)
    times, cpu, rss = [], [], {}
    started = time.perf_counter()
    for n in range(1, letters + 1):
        letter = notice(rng, index * 10_000_000 + n)
        t0, c0 = time.perf_counter(), time.process_time()
        pdf = render_letter(letter)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        if n <= SAMPLES:
            Path(samples_dir, f"w{index}-{n}.pdf").write_bytes(pdf)
        if n in (CHECKPOINT, letters):
            rss[n] = rss_mb()
    results.put({"index": index, "times": times, "cpu": cpu, "rss": rss, "warm_rss": warm_rss,
                 "elapsed": time.perf_counter() - started})


def pages(path: Path) -> int:
    out = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
    return int(next(x for x in out.splitlines() if x.startswith("Pages:")).split()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--letters", type=int, default=10_000, help="letters per worker")
    args = parser.parse_args()

    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter and Django set-up per worker
    results = spawn.Queue()
    with tempfile.TemporaryDirectory() as samples:
        start_at = time.time() + 8  # time for every worker to set up and warm up
        processes = [
            spawn.Process(target=worker, args=(i, args.letters, start_at, samples, results))
            for i in range(args.workers)
        ]
        for p in processes:
            p.start()
        reports = [results.get() for _ in processes]
        for p in processes:
            p.join()
        sample_pages = [pages(p) for p in sorted(Path(samples).glob("*.pdf"))]

    times = sorted(t for r in reports for t in r["times"])
    total = len(times)
    wall = max(r["elapsed"] for r in reports)
    rate = total / wall
    p50, p95 = statistics.median(times) * 1000, times[int(0.95 * (total - 1))] * 1000
    print(f"{total:,} letters by {args.workers} workers in {wall:.1f} s: {rate:.1f} letters/s "
          f"(target ≥ {TARGET_RATE})")
    print(f"render time p50 {p50:.0f} ms, p95 {p95:.0f} ms (target ≤ {TARGET_P95_MS}), "
          f"max {times[-1] * 1000:.0f} ms")
    # CPU time per letter does not depend on what else the machine runs: it
    # says what the workers would do with a core each to themselves.
    cpu = sorted(c for r in reports for c in r["cpu"])
    cpu_mean = statistics.fmean(cpu)
    print(f"CPU time per letter p50 {statistics.median(cpu) * 1000:.0f} ms, "
          f"p95 {cpu[int(0.95 * (total - 1))] * 1000:.0f} ms, mean {cpu_mean * 1000:.0f} ms: "
          f"{args.workers / cpu_mean:.1f} letters/s with {args.workers} free cores")
    worst_rss, worst_growth = 0.0, 0.0
    for r in sorted(reports, key=lambda r: r["index"]):
        at = sorted(r["rss"].items())
        first, last = at[0][1], at[-1][1]
        growth = (last - first) / first * 100
        worst_rss, worst_growth = max(worst_rss, last), max(worst_growth, growth)
        marks = ", ".join(f"{mb:.0f} MB at letter {n:,}" for n, mb in at)
        print(f"worker {r['index']}: {r['warm_rss']:.0f} MB after warm-up, {marks}, growth {growth:+.1f} %")
    print(f"sample letters: {len(sample_pages)}, pages: {sorted(set(sample_pages))}")
    verdicts = {
        "rate": rate >= TARGET_RATE, "p95": p95 <= TARGET_P95_MS,
        "memory": worst_rss <= TARGET_RSS_MB, "growth": worst_growth <= TARGET_GROWTH,
        "one page": set(sample_pages) == {1},
    }
    print("targets: " + ", ".join(f"{k} {'met' if ok else 'MISSED'}" for k, ok in verdicts.items()))
    print(f"(load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; "
          "other work on the machine slows the wall-clock figures, not the CPU times; "
          f"{machine.describe()})")


if __name__ == "__main__":
    main()
