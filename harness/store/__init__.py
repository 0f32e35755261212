"""Store: what a run is on disk (result rows, samples, env.json), baselines, shards, atomic writes.

The one place the measuring and the judging pipelines meet; imports no other stage.
"""
