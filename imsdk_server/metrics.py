"""One metrics interface for every server component.

Components count what they do (connections, frames in/out by code, errors by code, queue depths,
latencies) through a :class:`Metrics` registry handed to them at construction. The registry is in-process
and cheap on the hot path: look a series up once, keep it, and call :meth:`Counter.inc`,
:meth:`Gauge.set` or :meth:`Histogram.observe` on it. Operators read it as a :meth:`Metrics.snapshot`
(plain data, what the ops dashboard draws) or as Prometheus text (:meth:`Metrics.render_prometheus`).
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DEFAULT_LATENCY_BUCKETS", "Counter", "Gauge", "Histogram", "Metrics", "Sample"]

Labels = tuple[tuple[str, str], ...]

#: Latency buckets in seconds, from 50 µs to 10 s.
DEFAULT_LATENCY_BUCKETS: tuple[float, ...] = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class Counter:
    """A monotonically increasing count (frames in, errors, bytes)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class Gauge:
    """A value that goes up and down (open connections, queue depth).

    A gauge may instead be *computed*: give it a function and it is read at snapshot time, which keeps
    depths of queues owned by others out of the hot path.
    """

    __slots__ = ("_fn", "value")

    def __init__(self, fn: Callable[[], float] | None = None) -> None:
        self.value = 0.0
        self._fn = fn

    def set(self, value: float) -> None:
        self.value = value

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount

    def read(self) -> float:
        return float(self._fn()) if self._fn is not None else self.value


class Histogram:
    """Observations counted into fixed buckets (latencies in seconds, sizes in bytes)."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: Iterable[float] = DEFAULT_LATENCY_BUCKETS) -> None:
        self.bounds: tuple[float, ...] = tuple(sorted(bounds))
        self.counts = [0] * (len(self.bounds) + 1)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.sum += value

    def quantile(self, q: float) -> float:
        """An upper-bound estimate of the q-quantile (the bucket bound it falls under); NaN when empty."""
        if self.count == 0:
            return math.nan
        rank = q * self.count
        seen = 0
        for bound, n in zip(self.bounds, self.counts, strict=False):
            seen += n
            if seen >= rank:
                return bound
        return math.inf


@dataclass(frozen=True)
class Sample:
    """One series at snapshot time."""

    name: str
    kind: str
    labels: Mapping[str, str]
    value: float
    extra: Mapping[str, Any] = field(default_factory=dict)


class Metrics:
    """A registry of named series, each optionally split by labels.

    ``namespace`` prefixes every name (e.g. ``"access"``) so that one process hosting several components
    keeps their series apart; :meth:`child` makes such a prefixed view sharing the same storage.
    """

    def __init__(self, namespace: str = "", *, _store: dict[tuple[str, Labels], Any] | None = None) -> None:
        self._namespace = namespace
        self._store: dict[tuple[str, Labels], Any] = {} if _store is None else _store
        self._kinds: dict[str, str] = {}
        self._lock = threading.Lock()

    def child(self, namespace: str) -> Metrics:
        """A view whose names are prefixed by ``namespace`` and which shares this registry's storage."""
        full = f"{self._namespace}_{namespace}" if self._namespace else namespace
        view = Metrics(full, _store=self._store)
        view._kinds = self._kinds
        view._lock = self._lock
        return view

    def _get(self, kind: str, name: str, labels: Mapping[str, object], make: Callable[[], Any]) -> Any:
        full = f"{self._namespace}_{name}" if self._namespace else name
        key = (full, tuple(sorted((k, str(v)) for k, v in labels.items())))
        known = self._kinds.get(full)
        if known is not None and known != kind:
            raise ValueError(f"metric {full!r} is a {known}, not a {kind}")
        series = self._store.get(key)
        if series is None:
            with self._lock:
                self._kinds.setdefault(full, kind)
                series = self._store.setdefault(key, make())
        return series

    def counter(self, name: str, **labels: object) -> Counter:
        result: Counter = self._get("counter", name, labels, Counter)
        return result

    def gauge(self, name: str, fn: Callable[[], float] | None = None, **labels: object) -> Gauge:
        result: Gauge = self._get("gauge", name, labels, lambda: Gauge(fn))
        return result

    def histogram(
        self, name: str, buckets: Iterable[float] = DEFAULT_LATENCY_BUCKETS, **labels: object
    ) -> Histogram:
        result: Histogram = self._get("histogram", name, labels, lambda: Histogram(buckets))
        return result

    def snapshot(self) -> list[Sample]:
        """Every series as plain data, sorted by name then labels."""
        out: list[Sample] = []
        for (name, labels), series in sorted(self._store.items(), key=lambda kv: kv[0]):
            lab = dict(labels)
            if isinstance(series, Counter):
                out.append(Sample(name, "counter", lab, series.value))
            elif isinstance(series, Gauge):
                out.append(Sample(name, "gauge", lab, series.read()))
            else:
                h: Histogram = series
                extra = {"count": h.count, "sum": h.sum, "p50": h.quantile(0.5), "p99": h.quantile(0.99)}
                out.append(Sample(name, "histogram", lab, h.count, extra))
        return out

    def value(self, name: str, **labels: object) -> float:
        """The current value of one series (0 when never touched), for tests and health checks."""
        key = (name, tuple(sorted((k, str(v)) for k, v in labels.items())))
        series = self._store.get(key)
        if series is None:
            return 0.0
        if isinstance(series, Gauge):
            return series.read()
        if isinstance(series, Histogram):
            return float(series.count)
        return float(series.value)

    def render_prometheus(self) -> str:
        """The registry in Prometheus' text exposition format."""
        lines: list[str] = []
        typed: set[str] = set()
        for (name, labels), series in sorted(self._store.items(), key=lambda kv: kv[0]):
            kind = self._kinds.get(name, "untyped")
            if name not in typed:
                lines.append(f"# TYPE {name} {kind}")
                typed.add(name)
            if isinstance(series, Histogram):
                cumulative = 0
                for bound, n in zip((*series.bounds, math.inf), series.counts, strict=True):
                    cumulative += n
                    le = "+Inf" if math.isinf(bound) else repr(bound)
                    lines.append(f"{name}_bucket{_fmt_labels((*labels, ('le', le)))} {cumulative}")
                lines.append(f"{name}_sum{_fmt_labels(labels)} {series.sum!r}")
                lines.append(f"{name}_count{_fmt_labels(labels)} {series.count}")
            else:
                value = series.read() if isinstance(series, Gauge) else series.value
                lines.append(f"{name}{_fmt_labels(labels)} {value!r}")
        return "\n".join(lines) + "\n"


def _fmt_labels(labels: Iterable[tuple[str, str]]) -> str:
    parts = [f'{k}="{_escape(v)}"' for k, v in labels]
    return "{" + ",".join(parts) + "}" if parts else ""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
