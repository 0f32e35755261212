"""Triton kernels. Modules here import triton; import them lazily (only when a kernel runs)."""
