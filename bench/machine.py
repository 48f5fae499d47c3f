"""How fast this machine runs Python just now.

Printed beside each benchmark's figures: the same code takes two or three
times longer on a slow or busy shared host, so figures from two runs compare
only with their yardsticks.
"""

from __future__ import annotations

import time

YARDSTICK = "sum(range(10**6))"


def yardstick_ms(*, repeat: int = 7) -> float:
    """The best of `repeat` timings of YARDSTICK, in milliseconds."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        sum(range(10**6))
        best = min(best, time.perf_counter() - started)
    return best * 1000


def describe() -> str:
    return f"Python yardstick {YARDSTICK} {yardstick_ms():.1f} ms (best of 7)"
