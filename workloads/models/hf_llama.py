"""hf_llama: a transformers Llama model (LlamaModel, 2 decoder layers + final norm, random
weights) through ``workloads.hf.adapt``, checked against the unmodified module in float64.

Clones (2 layers): the first norm's ``rms_norm`` (1), each layer's rotary (2) and fused adds
(2 per add: 3 adds), 13 in all. Two must stay, both of the caller's ``inputs_embeds`` (kept,
not donated): the first norm's (the residual reads it afterwards) and the first fused add's
residual clone (the kernel would write it).
"""
import torch

from workloads.models._hf import HFStack, stack_shapes

WORKLOAD = HFStack(
    name="hf_llama",
    description="transformers LlamaModel (2 layers, random weights) through workloads.hf.adapt",
    suite_shapes=stack_shapes("llama-3.1-8b"),
    suite_dtypes={"nightly": [torch.bfloat16]},
    expected_clones={"lowered": (13, 13), "vllm": (13, 2), "cleanpass": (13, 2)},
    tolerance_scale=8.0,
    family="llama",
)
