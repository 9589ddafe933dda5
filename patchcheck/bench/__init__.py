"""Benchmarks: settings in, the speed and memory figures of a matrix, the probe, commits in sequence
and an upstream build out, measured in one run and recorded."""
