"""Providers for vLLM's own IR ops (`vllm.ir.ops`); imported only where vLLM is installed."""
