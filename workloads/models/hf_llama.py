"""hf_llama: a transformers LlamaModel (2 decoder layers + final norm, random weights) through
``workloads.hf.adapt``, checked against the unmodified module in float64 (see ``_hf``)."""
from workloads.models._hf import stack_workload

WORKLOAD = stack_workload("llama", "LlamaModel", "llama-3.1-8b")
