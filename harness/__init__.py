"""Benchmark and validation harness: compile every variant, validate, measure, store tidy results.

Entry point: ``python -m harness run --suite smoke --device cpu`` (see ``harness.cli``).
"""
