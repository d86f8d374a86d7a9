"""Benchmarks: each module prints a table and writes it under bench/results/."""
