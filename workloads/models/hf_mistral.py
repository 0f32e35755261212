"""hf_mistral: a transformers MistralModel (2 decoder layers + final norm, random weights) through
``workloads.hf.adapt``, checked against the unmodified module in float64 (see ``_hf``)."""
from workloads.models._hf import stack_workload

WORKLOAD = stack_workload("mistral", "MistralModel", "mistral-7b")
