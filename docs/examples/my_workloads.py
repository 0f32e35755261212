"""A workload of your own, outside the repo: RMSNorm then a scale, through cleanpass's IR ops."""
import torch
from workloads.catalog import Built, Shape, Workload

ir = torch.ops.cleanpass_ir


class ScaledNorm(Workload):
    def build(self, shape: Shape, dtype: torch.dtype, device) -> Built:
        x = torch.randn(shape.num_tokens, shape.hidden, dtype=dtype, device=device)
        w = torch.ones(shape.hidden, dtype=dtype, device=device)
        def ir_fn(x): return 2 * ir.rms_norm(x, w, 1e-6)                # what the pass sees
        def native(x): return 2 * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w
        return Built(ir_fn, native, native, (x,))                       # ideal: none hand-written

    def model_bytes(self, shape: Shape, dtype: torch.dtype) -> int:
        return 2 * shape.num_tokens * shape.hidden * dtype.itemsize  # read x, write the output


WORKLOAD = ScaledNorm("my_scaled_norm", "RMSNorm * 2 of a kept input",
                      {s: [Shape(16, 256)] for s in ("test", "smoke", "default", "nightly")})
