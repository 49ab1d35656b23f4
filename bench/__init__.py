"""Benchmarks: run from the repository root as ``python -m bench.<name>``. They print figures; they never
assert timings."""
