"""norm_chain: three layers of residual add + RMSNorm + projection (inputs not donated).

Lowering clones h and residual at every norm; only layer 0's two clones (of the inputs) must
stay, and cleanpass folds them into the out-of-place kernel: no copy left.
"""
from workloads.models._chain import DTYPES, LAYERS, SHAPES, Chain

WORKLOAD = Chain(
    name="norm_chain",
    description=f"{LAYERS} x (fused add + RMSNorm -> linear) on non-donated inputs",
    suite_shapes=SHAPES,
    suite_dtypes=DTYPES,
    expected_clones={"lowered": (2 * LAYERS, 2 * LAYERS), "vllm": (2 * LAYERS, 2), "cleanpass": (2 * LAYERS, 0)},
    # bf16 error grows through the layers; measured on an H100 (see harness.run.validate)
    tolerance_scale=8.0,
)
