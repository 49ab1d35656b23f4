"""Small helpers shared by the benchmarks: aligned tables and a steady rate measurement."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table with right-aligned columns (the first column left-aligned)."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        parts = [row[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True))]
        lines.append("  ".join(parts))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def rate(
    fn: Callable[[int], object], *, items_per_call: int = 1, min_seconds: float = 0.3, repeat: int = 7
) -> float:
    """Best-of-``repeat`` items per second of ``fn(n)``, which must process ``n * items_per_call`` items.

    Time is this process's CPU time (``time.process_time``), so other load on a shared machine does not
    count against us; the call count grows until one run lasts ``min_seconds`` and the best of ``repeat``
    runs is reported.
    """
    n = 1
    while True:
        start = time.process_time()
        fn(n)
        elapsed = time.process_time() - start
        if elapsed >= min_seconds / 10:
            break
        n *= 4
    n = max(1, int(n * (min_seconds / max(elapsed, 1e-9))))
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn(n)
        best = min(best, time.process_time() - start)
    return n * items_per_call / best
