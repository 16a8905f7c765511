"""Benchmark programs and the bundled example models (factories for ``chipcut compile``)."""
