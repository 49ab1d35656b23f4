from __future__ import annotations

import math

import pytest

from imsdk_server.metrics import Histogram, Metrics


def test_counters_are_split_by_labels_and_shared_by_lookup() -> None:
    m = Metrics()
    a = m.counter("frames_in", biz="chat")
    a.inc()
    m.counter("frames_in", biz="chat").inc(2)
    m.counter("frames_in", biz="voip").inc()
    assert m.value("frames_in", biz="chat") == 3
    assert m.value("frames_in", biz="voip") == 1
    assert m.value("frames_in", biz="push") == 0


def test_child_prefixes_names_and_shares_storage() -> None:
    root = Metrics()
    root.child("access").gauge("connections").set(5)
    assert root.value("access_connections") == 5
    assert [s.name for s in root.snapshot()] == ["access_connections"]


def test_computed_gauge_is_read_at_snapshot_time() -> None:
    depth = [1]
    m = Metrics()
    m.gauge("queue_depth", fn=lambda: depth[0])
    depth[0] = 7
    (sample,) = m.snapshot()
    assert sample.value == 7


def test_one_name_cannot_change_kind() -> None:
    m = Metrics()
    m.counter("x")
    with pytest.raises(ValueError, match="is a counter"):
        m.gauge("x")


@pytest.mark.parametrize(
    ("observations", "q", "expected"),
    [
        ([], 0.5, math.nan),
        ([0.001] * 99 + [1.0], 0.5, 0.001),
        ([0.001] * 99 + [1.0], 0.99, 0.001),
        ([0.001] * 98 + [1.0] * 2, 0.99, 1.0),
        ([100.0], 0.5, math.inf),
    ],
)
def test_histogram_quantile_is_the_bucket_bound(observations: list[float], q: float, expected: float) -> None:
    h = Histogram()
    for v in observations:
        h.observe(v)
    got = h.quantile(q)
    assert (math.isnan(got) and math.isnan(expected)) or got == expected


def test_prometheus_text() -> None:
    m = Metrics("im")
    m.counter("errors", code="101").inc()
    m.histogram("latency_seconds", buckets=(0.01, 0.1)).observe(0.05)
    text = m.render_prometheus()
    assert '# TYPE im_errors counter\nim_errors{code="101"} 1.0\n' in text
    assert 'im_latency_seconds_bucket{le="0.01"} 0' in text
    assert 'im_latency_seconds_bucket{le="0.1"} 1' in text
    assert 'im_latency_seconds_bucket{le="+Inf"} 1' in text
    assert "im_latency_seconds_count 1" in text
