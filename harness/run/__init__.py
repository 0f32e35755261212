"""Measure: build every variant of every case, compile, validate, time, and write a run directory.

Entry point ``harness.run.api.run``. Writes through ``harness.store``; knows nothing of judging
or reporting.
"""
