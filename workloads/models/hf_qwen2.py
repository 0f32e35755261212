"""hf_qwen2: a transformers Qwen2Model (2 decoder layers + final norm, random weights) through
``workloads.hf.adapt``, checked against the unmodified module in float64 (see ``_hf``)."""
from workloads.models._hf import stack_workload

WORKLOAD = stack_workload("qwen2", "Qwen2Model", "qwen2.5-32b")
