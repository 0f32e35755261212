"""Kernel counting in Inductor's generated wrapper code (CPU and Triton shapes of it)."""
from __future__ import annotations

import torch

from harness.run import compat
from harness.run import measure

CPU_CODE = '''
cpp_fused_as_strided_clone_0 = async_compile.cpp_pybinding(['const float*', 'float*'], r"""
extern "C" void kernel(const float* in_ptr0) {}
""")


class Runner:
    def call(self, args):
        arg0_1, arg1_1 = args
        buf0 = empty_strided_cpu((128*s77, ), (1, ), torch.float32)
        cpp_fused_as_strided_clone_0(arg1_1, buf0, s77)
        torch.ops.cleanpass_kernels.rms_norm_.default(reinterpret_tensor(buf0, (s77, 128), (128, 1), 0), arg2_1)
        buf3 = empty_strided_cpu((s77, 128), (128, 1), torch.float32)
        cpp_fused_add_as_strided_1(buf0, buf3, s77)
        extern_kernels.mm(buf3, arg2_1, out=buf4)
        return (buf3, )

runner = Runner(partitions=[])
call = runner.call
'''

TRITON_CODE = '''
triton_poi_fused_clone_0 = async_compile.triton('triton_poi_fused_clone_0', """
def triton_poi_fused_clone_0(in_ptr0, out_ptr0, xnumel, XBLOCK : tl.constexpr):
    pass
""")

def call(args):
    arg0_1, = args
    with torch.cuda._DeviceGuard(0):
        buf0 = empty_strided_cuda((4, ), (1, ), torch.float32)
        stream0 = get_raw_stream(0)
        triton_poi_fused_clone_0.run(arg0_1, buf0, 4, stream=stream0)
        buf1 = torch.ops.cleanpass_kernels.rms_norm_triton_.default(buf0)
    return (buf0, )


def benchmark_compiled_module(args, times=10, repeat=10):
    triton_poi_fused_clone_0.run(1)
'''


def test_counts_launches_in_the_call_body_only():
    c = measure.count_kernels(CPU_CODE)
    assert (c.generated, c.opaque, c.total) == (2, 2, 4)


def test_counts_triton_launches_and_custom_ops():
    c = measure.count_kernels(TRITON_CODE)
    assert (c.generated, c.opaque) == (1, 1)


def test_no_code_means_unknown():
    assert measure.count_kernels_in([]) is None
    assert measure.count_kernels_in([CPU_CODE, TRITON_CODE]) == 6


def test_compat_captures_code_and_bytes_without_resetting_dynamo():
    def f(x):
        return (x + 1).relu()

    x = torch.randn(16, 32)
    codes: list[str] = []
    with compat.measurement_config(), compat.capture_generated_code(codes), compat.count_inductor_bytes() as b:
        torch.compile(f, backend="inductor")(x)
    assert len(codes) == 1 and measure.count_kernels(codes[0]).generated == 1
    assert b.value == 2 * 16 * 32 * 4  # read x, write the result


def test_user_triton_kernels_inlined_by_inductor_count_as_launches():
    code = "def call(args):\n    buf0 = empty((4,))\n    _rms_norm_kernel_0.run(buf0, 4, grid=grid(4), stream=s0)\n    return (buf0, )\n"
    assert measure.count_kernels(code).generated == 1


def test_code_capture_restores_inductors_hook_exactly():
    """Regression: the hook is a class attribute whose value is None; deleting it on exit broke
    every later compile in the process ("GraphLowering has no attribute save_output_code")."""
    from torch._inductor.graph import GraphLowering

    before = GraphLowering.__dict__.get("save_output_code", "missing")
    with compat.capture_generated_code([]):
        pass
    assert GraphLowering.__dict__.get("save_output_code", "missing") == before
