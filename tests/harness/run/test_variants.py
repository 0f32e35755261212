"""Variant registrations: each variant's role is declared once, where it is registered."""
from __future__ import annotations

import pytest

from harness.run import variants
from harness.store import results
from workloads import pipeline


def _noop(ctx):  # noqa: ANN001, ANN202
    raise AssertionError("not built in these tests")


def test_the_pipeline_arms_are_registered_with_their_roles():
    infos = {i.name: i for i in variants.declarations()}
    for arm in pipeline.ARMS:
        info = infos[arm.name]
        assert info.policy == arm.policy and info.reference == arm.reference
        assert info.baseline == (arm.policy is None)
        assert info.partner == (None if arm.policy is None else "lowered")
    assert [i.name for i in variants.declarations() if i.baseline] == ["lowered"]


def test_a_registration_names_a_known_partner_and_at_most_one_baseline():
    with pytest.raises(KeyError, match="partner 'nope'"):
        variants.register_variant("probe", _noop, partner="nope")
    with pytest.raises(ValueError, match="baseline"):
        variants.register_variant("probe", _noop, baseline=True)
    assert "probe" not in variants.variant_names()


def test_a_new_variant_declares_itself_for_runs_and_reports():
    with variants.extra_variants({}):
        variants.register_variant("probe", _noop, policy="sound", partner="lowered")
        try:
            stored = {"variants": [i.to_json() for i in variants.declarations()]}
            infos = {i.name: i for i in results.variant_infos(stored)}
            assert infos["probe"] == results.VariantInfo("probe", policy="sound", partner="lowered")
        finally:
            variants.unregister_variant("probe")


def test_runs_from_before_stored_declarations_read_as_they_were_meant():
    """A run written before env.json stored the variants' declarations (the committed CPU
    baseline without them) reads with the old meanings."""
    from pathlib import Path

    from harness.store.baseline import load_baseline

    old = load_baseline(Path(__file__).resolve().parents[3] / "results" / "baselines" / "cpu.parquet")
    old.env.pop("variants", None)  # as it was before the declarations were stored
    infos = {i.name: i for i in results.variant_infos(old.env, old.rows)}
    assert set(infos) == set(old.rows["variant"])
    assert results.baseline_variant(list(infos.values())) == "lowered"
    assert infos["vllm"].reference and infos["cleanpass"].partner == "lowered" and infos["ideal"].bound
