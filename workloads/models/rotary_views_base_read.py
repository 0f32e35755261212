"""rotary_views_base_read: as rotary_views, but the base qk is also returned (read after rotary).

The clone of q must stay: dropping it lets rotary write into qk, and the returned qk would show
rotated values. vLLM's pass (``vllm_real``) and our model of it (``vllm``) drop it anyway (they
look only at q's direct users), so those variants are expected to give wrong results here
(``expected_wrong``). cleanpass keeps both clones and folds them: rotary reads the views of qk
and writes fresh q and k.
"""
from workloads.models._rotary_views import DTYPES, SHAPES, RotaryViews


class RotaryViewsBaseRead(RotaryViews):
    read_base = True


WORKLOAD = RotaryViewsBaseRead(
    name="rotary_views_base_read",
    description="rotary in place on unbind views whose base is returned too (the vllm view hole)",
    suite_shapes=SHAPES,
    suite_dtypes=DTYPES,
    expected_clones={"lowered": (2, 2), "vllm": (2, 1), "cleanpass": (2, 0)},
    expected_wrong=("vllm", "vllm_real"),
    # bf16 error grows through the layers; measured on an H100 (see harness.run.validate)
    tolerance_scale=4.0,
)
