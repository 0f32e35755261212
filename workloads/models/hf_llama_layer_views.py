"""hf_llama_layer_views: one transformers Llama decoder layer, hidden and residual in the
caller's ``[1, T, H]`` layout, flattened with ``view(-1, H)`` and normed through the functional
``fused_add_rms_norm`` (nothing donated), as vLLM-style model code does.

The reference (vllm) policy sees clones of views, not of inputs, drops them and lets the
in-place kernel overwrite the caller's hidden and residual: outputs right, inputs destroyed
(``expected_wrong``). cleanpass keeps those 2 clones (folding them into out-of-place kernels) and drops the 4 of
intermediates.
"""
import torch

from workloads.models._hf import HFLayerViews, stack_shapes

WORKLOAD = HFLayerViews(
    name="hf_llama_layer_views",
    description="transformers LlamaDecoderLayer on [1, T, H] inputs flattened by views (vllm writes the inputs)",
    suite_shapes=stack_shapes("llama-3.1-8b"),
    suite_dtypes={"nightly": [torch.bfloat16]},
    expected_clones={"lowered": (6, 6), "vllm": (6, 0), "cleanpass": (6, 0)},
    expected_wrong=("vllm",),
    tolerance_scale=6.0,
    family="llama",
)
