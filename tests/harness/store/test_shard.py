"""Sharding covers the case matrix exactly once; merging joins shards and rejects overlap."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.store import results as res
from harness.store import shard


@dataclass(frozen=True)
class FakeCase:
    group_key: str
    tokens: int


def _cases(groups: list[int]) -> list[FakeCase]:
    return [FakeCase(f"g{i}", t) for i, n in enumerate(groups) for t in range(n)]


def test_parse_shard():
    assert shard.parse_shard("2/8") == (2, 8)
    for bad in ("0/2", "3/2", "x", "1/0", ""):
        with pytest.raises(ValueError):
            shard.parse_shard(bad)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=12), st.integers(1, 7))
def test_shards_cover_every_case_exactly_once_without_splitting_groups(groups, n):
    cases = _cases(groups)
    parts = [shard.shard_cases(cases, k, n) for k in range(1, n + 1)]
    flat = [c for p in parts for c in p]
    assert sorted(flat, key=lambda c: (c.group_key, c.tokens)) == sorted(cases, key=lambda c: (c.group_key, c.tokens))
    owners = {}
    for k, p in enumerate(parts):
        for c in p:
            assert owners.setdefault(c.group_key, k) == k  # a group stays in one shard


def test_shards_balance_case_counts():
    parts = [shard.shard_cases(_cases([4, 4, 4, 4]), k, 2) for k in (1, 2)]
    assert [len(p) for p in parts] == [8, 8]


def _run(tmp_path, name, tokens, device_name="cpu0"):
    d = tmp_path / name
    d.mkdir()
    rows = [res.Row(workload="w", variant=v, dtype="float32", num_tokens=t, hidden=64, model_bytes=1000,
                    latency_us_p50=1.0, block_count=2) for t in tokens for v in ("lowered", "cleanpass")]
    samples = res.samples_frame([dict(workload="w", variant=r.variant, dtype="float32", num_tokens=r.num_tokens,
                                      hidden=64, device="cpu", device_name=device_name, block=b, sample_us=1.0)
                                 for r in rows for b in range(2)])
    env = {"device": "cpu", "device_name": device_name, "peak_gbps_measured": 2.0, "commit": "c", "shard": name}
    res.write_run(d, res.rows_to_frame(rows, 2.0), samples, env)
    return d


def test_merge_joins_shards_into_a_new_run(tmp_path):
    a, b = _run(tmp_path, "a", [1, 8]), _run(tmp_path, "b", [32])
    out = tmp_path / "merged"
    out.mkdir()
    shard.merge_runs([a, b], out)
    df, samples, env = res.read_run(out)
    assert sorted(set(df["num_tokens"])) == [1, 8, 32] and len(df) == 6 and len(samples) == 12
    assert [s["shard"] for s in env["shards"]] == ["a", "b"] and env["shard"] is None


def test_merge_rejects_overlapping_shards_and_mixed_devices(tmp_path):
    a, b = _run(tmp_path, "a", [1, 8]), _run(tmp_path, "b", [8])
    with pytest.raises(ValueError, match="overlap"):
        shard.merge_runs([a, b], tmp_path / "m1")
    c = _run(tmp_path, "c", [64], device_name="other")
    with pytest.raises(ValueError, match="different devices"):
        shard.merge_runs([a, c], tmp_path / "m2")
