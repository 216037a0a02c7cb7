"""Benchmarks run against the real services (`make bench`); each prints one JSON line last."""
