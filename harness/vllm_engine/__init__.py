"""vLLM's real engine on CPU with cleanpass in its clone slot: tiny models, arms as fresh engines,
rows into a run directory (`python -m harness vllm-engine`; docs/vllm-engine.md)."""
