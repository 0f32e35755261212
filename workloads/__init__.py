"""vLLM-style workloads for the clone-elimination pass.

A small IR of functional ops (``torch.ops.cleanpass_ir.*``) with in-place kernel
implementations, the post-grad lowering that turns them into ``clone + mutating call``,
the pre-grad donation pass, one Inductor pipeline pass, and a catalog of model fragments.
Importing this package registers the IR ops.
"""
from workloads import ir  # noqa: F401  (registers torch.ops.cleanpass_ir.*)

__all__ = ["ir"]
