"""Benchmark and validation harness, in stages: ``run`` (measure) -> ``store`` (the run on disk)
-> ``judge`` (gate, trend) -> ``report`` (markdown, HTML, figures); ``cli`` drives them all.

Entry point: ``python -m harness run --suite smoke --device cpu`` (see ``harness.cli``).
"""
