"""rotary_views: rotary in place on unbind views of q/k whose base is dead afterwards.

q's clone has q's layout and nothing reads qk after the write: it can go. k's view sits at a
non-zero offset and k is returned: removing its clone would hand the caller that offset (and a
second output sharing qk's storage with q), so elimination keeps it (`strided-output`) and
cleanpass folds it (rotary reads the k view, writes a fresh buffer: the bytes of rotating it in
place).
"""
from workloads.models._rotary_views import DTYPES, SHAPES, RotaryViews

WORKLOAD = RotaryViews(
    name="rotary_views",
    description="rotary in place on unbind views of a batched q/k projection (base dead after)",
    suite_shapes=SHAPES,
    suite_dtypes=DTYPES,
    expected_clones={"lowered": (2, 2), "vllm": (2, 1), "cleanpass": (2, 0)},
    # bf16 error grows through the layers; measured on an H100 (see harness.run.validate)
    tolerance_scale=4.0,
)
