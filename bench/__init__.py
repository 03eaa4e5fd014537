"""Benchmarks of the ops portal: `python -m bench events|hosts` (see docs/PERFORMANCE.md)."""
