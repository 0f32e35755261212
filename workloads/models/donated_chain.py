"""donated_chain: norm_chain called through ``maybe_inplace``, so its inputs are donated.

The donation pass records inputs 0 and 1; cleanpass may then drop every clone.
"""
from workloads.models._chain import DTYPES, LAYERS, SHAPES, Chain


class DonatedChain(Chain):
    donate = True


WORKLOAD = DonatedChain(
    name="donated_chain",
    description=f"{LAYERS} x (fused add + RMSNorm -> linear) through maybe_inplace (inputs donated)",
    suite_shapes=SHAPES,
    suite_dtypes=DTYPES,
    expected_clones={"lowered": (2 * LAYERS, 2 * LAYERS), "vllm": (2 * LAYERS, 0), "cleanpass": (2 * LAYERS, 0)},
    # bf16 error grows through the layers; measured on an H100 (see harness.run.validate)
    tolerance_scale=8.0,
)
