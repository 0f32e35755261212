"""Workload modules: each file defines one ``WORKLOAD`` (the catalog discovers them)."""
