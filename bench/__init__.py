"""Benchmarks: each prints one JSON line per result, with a baseline measured in the same run."""
