"""A function of your own for ``python -m cleanpass explain`` (README): two RMSNorms through the IR."""
import torch

import workloads  # noqa: F401  (registers the IR ops, torch.ops.cleanpass_ir.*)


def norm_twice(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    y = torch.ops.cleanpass_ir.rms_norm(x, w, 1e-6)          # x is the caller's: its clone is folded
    return torch.ops.cleanpass_ir.rms_norm(y, w, 1e-6) + x   # y is ours: its clone is removed
