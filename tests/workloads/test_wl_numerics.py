"""The one tolerance table: values per dtype, the per-workload widening, used by harness and tests."""
from __future__ import annotations

import pytest
import torch

from harness.run import validate
from workloads import catalog, numerics


@pytest.mark.parametrize("dtype,atol,rtol", [(torch.float16, 1e-2, 2e-3), (torch.bfloat16, 1e-2, 1.6e-2),
                                             (torch.float32, 1e-4, 1e-4)])
def test_each_dtype_has_its_tolerance(dtype: torch.dtype, atol: float, rtol: float) -> None:
    assert numerics.tolerance(dtype) == numerics.Tolerance(atol, rtol)


def test_scale_widens_both_bounds() -> None:
    assert numerics.tolerance(torch.bfloat16, 2.0) == numerics.Tolerance(atol=2e-2, rtol=3.2e-2)
    with pytest.raises(KeyError, match="no tolerance"):
        numerics.tolerance(torch.int8)


def test_harness_and_workload_checks_agree_at_the_edge() -> None:
    """Both checks read the same table and scale: an error just inside passes both, just
    outside fails both (the harness and the selfcheck can never disagree on a row)."""
    ref = torch.zeros(8, dtype=torch.float64)
    tol = numerics.tolerance(torch.bfloat16, 4.0)
    for err, ok in ((0.9 * tol.atol, True), (1.1 * tol.atol, False)):
        out = (ref + err).to(torch.float32)
        assert numerics.allclose(out, ref, torch.bfloat16, 4.0) is ok
        verdict = validate.compare_to_reference([out], [ref], torch.bfloat16, 4.0).verdict
        assert (verdict is validate.Verdict.WITHIN_TOLERANCE) is ok


def test_deep_workloads_widen_and_single_ops_do_not() -> None:
    scales = {name: wl.tolerance_scale for name, wl in catalog.all_workloads().items()}
    assert scales["rms_norm"] == scales["fused_add_rms_norm"] == 1.0
    assert all(s >= 1.0 for s in scales.values()) and scales["norm_chain"] > 1.0
