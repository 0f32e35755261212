"""Copies and the view check, read from Inductor's wrapper code.

The snippets are real wrapper code captured on torch 2.13 CPU (C++ kernel bodies and the
Runner's boilerplate elided; the kernel signatures, the ``call`` bodies and the provenance maps
are as Inductor wrote them). The Triton snippet follows the CUDA wrapper's shape
(``with`` device guard, ``<kernel>.run(..., stream=...)``).
"""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from harness.run import api
from harness.run import codecheck
from harness.run import compat
from harness.run import suites
from harness.run import variants
from harness.run.compile import CompiledEntry, first_call, ir_kernel_mutated_args
from tests.harness.run import stale_view


def _module(kernels: str, body: str) -> str:
    return f"{kernels}\n\nclass Runner:\n    def call(self, args):\n{body}\n\nrunner = Runner(partitions=[])\n"


# rms_norm(clone(view)) rewired with stale eager_input_vals (tests/harness/run/stale_view.py)
STALE_KERNELS = """
cpp_fused_cat_mul_rms_norm_slice_0 = async_compile.cpp_pybinding(['const float*', 'const float*', 'float*', 'float*', 'float*'], r'''
extern "C" void kernel() {}
''')
cpp_fused_rms_norm_slice_1 = async_compile.cpp_pybinding(['const float*', 'float*'], r'''
extern "C" void kernel() {}
''')
"""
STALE_BODY = """\
        arg0_1, arg1_1 = args
        args.clear()
        assert_size_stride(arg0_1, (8, 64), (64, 1), 'input')
        buf2 = empty_strided_cpu((8, 128), (128, 1), torch.float32)
        buf0 = reinterpret_tensor(buf2, (8, 64), (128, 1), 0)  # alias
        buf1 = reinterpret_tensor(buf2, (8, 64), (128, 1), 64)  # alias
        buf3 = empty_strided_cpu((8, 64), (64, 1), torch.float32)
        assert_size_stride(arg1_1, (64, ), (1, ), 'input')
        # [Provenance debug handles] cpp_fused_cat_mul_rms_norm_slice_0:1
        cpp_fused_cat_mul_rms_norm_slice_0(arg0_1, buf2, buf0, buf1, buf3)
        del arg0_1
        del buf0
        del buf1
        # Topologically Sorted Source Nodes: [getitem, rms_norm], Original ATen: [aten.slice, cleanpass_ir.rms_norm]
        # [Provenance debug handles] torch.ops.cleanpass_kernels.rms_norm_torch_.default:2
        torch.ops.cleanpass_kernels.rms_norm_torch_.default(buf3, arg1_1, 1e-05)
        del arg1_1
        # [Provenance debug handles] cpp_fused_rms_norm_slice_1:3
        cpp_fused_rms_norm_slice_1(buf3, buf2)
        return (reinterpret_tensor(buf2, (8, 64), (128, 1), 0), )"""
STALE = _module(STALE_KERNELS, STALE_BODY)
STALE_PROVENANCE = {
    "cpp_fused_cat_mul_rms_norm_slice_0:1": ["cat", "mul", "rms_norm_torch__default", "slice_1"],
    "torch.ops.cleanpass_kernels.rms_norm_torch_.default:2": ["rms_norm_torch__default", "slice_1"],
    "cpp_fused_rms_norm_slice_1:3": ["rms_norm_torch__default", "slice_1"],
}

# the same graph, rewired with fresh metadata: the kernel gets the view of the base
FRESH = _module("""
cpp_fused_cat_mul_0 = async_compile.cpp_pybinding(['const float*', 'float*', 'float*'], r'''
extern "C" void kernel() {}
''')
""", """\
        arg0_1, arg1_1 = args
        buf2 = empty_strided_cpu((8, 128), (128, 1), torch.float32)
        buf0 = reinterpret_tensor(buf2, (8, 64), (128, 1), 0)  # alias
        buf1 = reinterpret_tensor(buf2, (8, 64), (128, 1), 64)  # alias
        # [Provenance debug handles] cpp_fused_cat_mul_0:1
        cpp_fused_cat_mul_0(arg0_1, buf0, buf1)
        del buf0
        del buf1
        # [Provenance debug handles] torch.ops.cleanpass_kernels.rms_norm_torch_.default:2
        torch.ops.cleanpass_kernels.rms_norm_torch_.default(reinterpret_tensor(buf2, (8, 64), (128, 1), 0), arg1_1, 1e-05)
        return (reinterpret_tensor(buf2, (8, 64), (128, 1), 0), )""")
FRESH_PROVENANCE = {"cpp_fused_cat_mul_0:1": ["cat", "mul"],
                    "torch.ops.cleanpass_kernels.rms_norm_torch_.default:2": ["rms_norm_torch__default", "slice_1"]}

# llama_block, lowered (assert and del lines elided): the lowering's clones (fused into copy
# kernels, one kernel launched twice), the in-place kernels on them, and the GQA expand copy
# fused into SDPA's prologue
LOWERED = _module("""
cpp_fused_0 = async_compile.cpp_pybinding(['const float*', 'const float*', 'float*', 'float*', 'const int64_t', 'const int64_t'], r'''
''')
cpp_fused_split_with_sizes_1 = async_compile.cpp_pybinding(['const float*', 'float*', 'float*', 'const int64_t'], r'''
''')
cpp_fused__scaled_dot_product_flash_attention_for_cpu__unsafe_view_clone_expand_split_with_sizes_transpose_unsqueeze_view_2 = async_compile.cpp_pybinding(['const float*', 'const float*', 'float*', 'float*', 'const int64_t'], r'''
''')
cpp_fused_3 = async_compile.cpp_pybinding(['float*', 'const float*', 'float*', 'const int64_t', 'const int64_t'], r'''
''')
""", """\
        arg0_1, arg1_1, arg2_1, arg3_1, arg4_1, arg5_1, arg6_1, arg7_1, arg8_1, arg9_1, arg10_1, arg11_1, arg12_1, arg13_1 = args
        s6 = arg1_1
        s21 = arg3_1
        s99 = arg7_1
        buf0 = empty_strided_cpu((s6, 1024), (1024, 1), torch.float32)
        buf1 = empty_strided_cpu((s21, 1024), (1024, 1), torch.float32)
        # [Provenance debug handles] cpp_fused_0:1
        cpp_fused_0(arg2_1, arg4_1, buf0, buf1, s6, s21)
        # [Provenance debug handles] torch.ops.cleanpass_kernels.fused_add_rms_norm_torch_.default:2
        torch.ops.cleanpass_kernels.fused_add_rms_norm_torch_.default(buf0, buf1, arg0_1, 1e-05)
        buf5 = empty_strided_cpu((s6, 1536), (1536, 1), torch.float32)
        # [Provenance debug handles] extern_kernels.mm:3
        extern_kernels.mm(buf0, arg5_1, out=buf5)
        buf6 = buf0; del buf0  # reuse
        buf7 = empty_strided_cpu((s6, 256), (256, 1), torch.float32)
        # [Provenance debug handles] cpp_fused_split_with_sizes_1:4
        cpp_fused_split_with_sizes_1(buf5, buf6, buf7, s6)
        # [Provenance debug handles] torch.ops.cleanpass_kernels.rotary_embedding_torch_.default:5
        torch.ops.cleanpass_kernels.rotary_embedding_torch_.default(arg8_1, buf6, buf7, arg6_1, 128, True)
        buf11 = empty_strided_cpu((1, 8, s6, 128), (1024*s6, 128, 1024, 1), torch.float32)
        buf12 = empty_strided_cpu((1, 8, s6, 128), (1024*s6, 128, 1024, 1), torch.float32)
        # [Provenance debug handles] cpp_fused__scaled_dot_product_flash_attention_for_cpu__unsafe_view_clone_expand_split_with_sizes_transpose_unsqueeze_view_2:6
        cpp_fused__scaled_dot_product_flash_attention_for_cpu__unsafe_view_clone_expand_split_with_sizes_transpose_unsqueeze_view_2(buf7, buf5, buf11, buf12, s6)
        # [Provenance debug handles] torch.ops.aten._scaled_dot_product_flash_attention_for_cpu.default:7
        buf13 = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu.default(reinterpret_tensor(buf6, (1, 8, s6, 128), (1024, 128, 1024, 1), 0), buf11, buf12, 0.0, True)
        buf14 = buf13[0]
        buf16 = buf6; del buf6  # reuse
        # [Provenance debug handles] extern_kernels.mm:8
        extern_kernels.mm(reinterpret_tensor(buf14, (s6, 1024), (1024, 1), 0), arg9_1, out=buf16)
        buf17 = buf16; del buf16  # reuse
        buf18 = empty_strided_cpu((s21, 1024), (1024, 1), torch.float32)
        # [Provenance debug handles] cpp_fused_3:9
        cpp_fused_3(buf17, buf1, buf18, s6, s21)
        # [Provenance debug handles] torch.ops.cleanpass_kernels.fused_add_rms_norm_torch_.default:10
        torch.ops.cleanpass_kernels.fused_add_rms_norm_torch_.default(buf17, buf18, arg10_1, 1e-05)
        buf22 = empty_strided_cpu((s6, 5632), (5632, 1), torch.float32)
        # [Provenance debug handles] extern_kernels.mm:11
        extern_kernels.mm(buf17, arg11_1, out=buf22)
        # [Provenance debug handles] torch.ops.cleanpass_kernels.silu_and_mul_torch.default:12
        buf23 = torch.ops.cleanpass_kernels.silu_and_mul_torch.default(buf22)
        buf24 = buf23
        buf25 = empty_strided_cpu((s6, 1024), (1024, 1), torch.float32)
        # [Provenance debug handles] extern_kernels.mm:13
        extern_kernels.mm(buf24, arg12_1, out=buf25)
        buf26 = buf25; del buf25  # reuse
        buf27 = empty_strided_cpu((s21, 1024), (1024, 1), torch.float32)
        # [Provenance debug handles] cpp_fused_3:14
        cpp_fused_3(buf26, buf18, buf27, s6, s21)
        # [Provenance debug handles] torch.ops.cleanpass_kernels.fused_add_rms_norm_torch_.default:15
        torch.ops.cleanpass_kernels.fused_add_rms_norm_torch_.default(buf26, buf27, arg13_1, 1e-05)
        return (buf26, buf27, )""")
LOWERED_PROVENANCE = {
    'cpp_fused_0:1': ['clone_default', 'clone_default_1'],
    'torch.ops.cleanpass_kernels.fused_add_rms_norm_torch_.default:2': ['fused_add_rms_norm_torch__default', 'clone_default_1'],
    'extern_kernels.mm:3': ['mm'],
    'cpp_fused_split_with_sizes_1:4': ['clone_default_2', 'split_with_sizes', 'clone_default_3'],
    'torch.ops.cleanpass_kernels.rotary_embedding_torch_.default:5': ['rotary_embedding_torch__default', 'clone_default_2', 'split_with_sizes', 'clone_default_3'],
    'cpp_fused__scaled_dot_product_flash_attention_for_cpu__unsafe_view_clone_expand_split_with_sizes_transpose_unsqueeze_view_2:6': ['_scaled_dot_product_flash_attention_for_cpu', 'unsqueeze', 'permute', 'view', 'unsqueeze_1', 'permute_1', 'view_2', 'clone', 'expand', 'view_1', 'unsqueeze_2', 'permute_2', 'view_4', 'clone_1', 'expand_1', 'view_3', 'split_with_sizes'],
    'torch.ops.aten._scaled_dot_product_flash_attention_for_cpu.default:7': ['_scaled_dot_product_flash_attention_for_cpu', 'unsqueeze', 'permute', 'view', 'unsqueeze_1', 'permute_1', 'view_2', 'clone', 'expand', 'view_1', 'unsqueeze_2', 'permute_2', 'view_4', 'clone_1', 'expand_1', 'view_3', 'split_with_sizes'],
    'extern_kernels.mm:8': ['mm_1'],
    'cpp_fused_3:9': ['clone_default_4', 'clone_default_5'],
    'torch.ops.cleanpass_kernels.fused_add_rms_norm_torch_.default:10': ['fused_add_rms_norm_torch__default_1', 'clone_default_5'],
    'extern_kernels.mm:11': ['mm_2'],
    'torch.ops.cleanpass_kernels.silu_and_mul_torch.default:12': ['silu_and_mul'],
    'extern_kernels.mm:13': ['mm_3'],
    'cpp_fused_3:14': ['clone_default_6', 'clone_default_7'],
    'torch.ops.cleanpass_kernels.fused_add_rms_norm_torch_.default:15': ['fused_add_rms_norm_torch__default_2'],
}

# rotary_views, cleanpass: the folded out-of-place kernel writes q in place through a view of
# the projection (q_out) and k into a fresh buffer (k_out)
ROTARY_FOLDED = _module("", """\
        arg0_1, arg1_1, arg2_1, arg3_1, arg4_1, arg5_1 = args
        buf0 = empty_strided_cpu((2, s6, 1024), (1024*s6, 1024, 1), torch.float32)
        # [Provenance debug handles] extern_kernels.bmm:1
        extern_kernels.bmm(reinterpret_tensor(arg2_1, (2, s6, 1024), (0, 1024, 1), 0), arg0_1, out=buf0)
        buf1 = empty_strided_cpu((s6, 1024), (1024, 1), torch.float32)
        # [Provenance debug handles] torch.ops.cleanpass_kernels.rotary_embedding_torch_out.default:2
        torch.ops.cleanpass_kernels.rotary_embedding_torch_out.default(arg5_1, reinterpret_tensor(buf0, (s6, 1024), (1024, 1), 0), reinterpret_tensor(buf0, (s6, 1024), (1024, 1), 1024*s6), arg3_1, 128, True, reinterpret_tensor(buf0, (s6, 1024), (1024, 1), 0), buf1)
        return (reinterpret_tensor(buf0, (s6, 1024), (1024, 1), 0), buf1, )""")
ROTARY_FOLDED_PROVENANCE = {"extern_kernels.bmm:1": ["bmm"],
                            "torch.ops.cleanpass_kernels.rotary_embedding_torch_out.default:2": [
                                "rotary_embedding_torch_out_default", "unbind"]}

TRITON = """
triton_poi_fused_clone_0 = async_compile.triton('triton_poi_fused_clone_0', '''
@triton.jit
def triton_poi_fused_clone_0(in_ptr0, out_ptr0, xnumel, XBLOCK : tl.constexpr):
    pass
''', device_str='cuda')
triton_poi_fused_add_1 = async_compile.triton('triton_poi_fused_add_1', '''
@triton.jit
def triton_poi_fused_add_1(in_out_ptr0, in_ptr0, xnumel, XBLOCK : tl.constexpr):
    pass
''', device_str='cuda')


def call(args):
    arg0_1, arg1_1 = args
    with torch.cuda._DeviceGuard(0):
        torch.cuda.set_device(0)
        buf0 = empty_strided_cuda((4, 8), (8, 1), torch.float32)
        # [Provenance debug handles] triton_poi_fused_clone_0:1
        stream0 = get_raw_stream(0)
        triton_poi_fused_clone_0.run(arg0_1, buf0, 32, stream=stream0)
        # [Provenance debug handles] triton_poi_fused_add_1:2
        triton_poi_fused_add_1.run(buf0, arg1_1, 32, stream=stream0)
        # [Provenance debug handles] torch.ops.cleanpass_kernels.rms_norm_triton_.default:3
        torch.ops.cleanpass_kernels.rms_norm_triton_.default(buf0, None, 1e-05)
    return (buf0, )
"""


def _mutated(table):
    return lambda qual: table.get(qual)


def test_a_temporary_inductor_copied_for_the_kernel_fails_the_view_check():
    report = codecheck.check_views(STALE, STALE_PROVENANCE, ir_kernel_mutated_args)
    assert report.checked == 1 and not report.unverified
    (v,) = report.violations
    assert (v.op, v.argument) == ("cleanpass_kernels::rms_norm_torch_.default", "x")
    assert "buf3" in str(v) and "cpp_fused_cat_mul_rms_norm_slice_0" in str(v)


def test_the_copy_in_and_the_copy_back_are_both_counted():
    """They fuse the op's own node (a layout copy made for it) with real work (cat, mul)."""
    assert [ln.name for ln in codecheck.copy_launches(STALE, STALE_PROVENANCE)] == [
        "cpp_fused_cat_mul_rms_norm_slice_0", "cpp_fused_rms_norm_slice_1"]
    assert codecheck.count_copies([STALE], [STALE_PROVENANCE]) == 2


def test_a_reinterpretation_of_the_base_passes_and_copies_nothing():
    report = codecheck.check_views(FRESH, FRESH_PROVENANCE, ir_kernel_mutated_args)
    assert (report.checked, report.violations, report.unverified) == (1, [], [])
    assert codecheck.count_copies([FRESH], FRESH_PROVENANCE) == 0


def test_lowering_clones_are_copies_but_not_temporaries():
    """The graph asks for these clones: their kernels carry the clone nodes, not the op's."""
    report = codecheck.check_views(LOWERED, LOWERED_PROVENANCE, ir_kernel_mutated_args)
    assert report.checked == 8 and not report.violations and not report.unverified  # 3 norms x 2, rotary q, k
    names = [ln.name for ln in codecheck.copy_launches(LOWERED, LOWERED_PROVENANCE)]
    assert names == ["cpp_fused_0", "cpp_fused_split_with_sizes_1", names[2], "cpp_fused_3", "cpp_fused_3"]
    assert "clone_expand" in names[2]


def test_without_provenance_the_view_check_says_unverified_and_names_still_count():
    report = codecheck.check_views(LOWERED, None, ir_kernel_mutated_args)
    assert not report.violations and len(report.unverified) == 8
    # only the kernel whose name carries an ATen clone is seen without provenance
    assert codecheck.count_copies([LOWERED]) == 1


def test_folded_out_of_place_kernel_writes_the_view_and_a_fresh_buffer():
    report = codecheck.check_views(ROTARY_FOLDED, ROTARY_FOLDED_PROVENANCE, ir_kernel_mutated_args)
    assert (report.checked, report.violations, report.unverified) == (2, [], [])
    assert codecheck.count_copies([ROTARY_FOLDED], ROTARY_FOLDED_PROVENANCE) == 0


def test_extern_copies_count_and_their_results_are_temporaries():
    code = _module("", """\
        arg0_1, arg1_1 = args
        arg0_1 = copy_if_misaligned(arg0_1)
        buf0 = torch.ops.aten.clone.default(reinterpret_tensor(arg0_1, (4, 4), (8, 1), 0))
        torch.ops.cleanpass_kernels.rms_norm_torch_.default(buf0, None, 1e-05)
        buf1 = empty_strided_cpu((4, 4), (4, 1), torch.float32)
        buf1.copy_(reinterpret_tensor(arg0_1, (4, 4), (8, 1), 4), False)
        torch.ops.cleanpass_kernels.rms_norm_torch_.default(buf1, None, 1e-05)
        buf2 = arg1_1.clone()
        torch.ops.cleanpass_kernels.rms_norm_torch_.default(buf2, None, 1e-05)
        torch.ops.cleanpass_kernels.rms_norm_torch_.default(arg1_1.clone(), None, 1e-05)
        torch.ops.cleanpass_kernels.rms_norm_torch_.default(reinterpret_tensor(arg1_1, (4, 4), (8, 1), 4), None, 1e-05)
        return (buf0, buf1)""")
    # aten.clone, .copy_, .clone() as statements; not copy_if_misaligned
    assert codecheck.count_copies([code]) == 3
    report = codecheck.check_views(code, {}, ir_kernel_mutated_args)
    assert report.checked == 5 and not report.unverified
    assert [str(v).split(" is ")[1].split(" ")[0] for v in report.violations] == ["a", "a", "a", "computed"]
    assert "aten.clone" in str(report.violations[0]) and "buf1.copy_" in str(report.violations[1])
    assert "arg1_1.clone" in str(report.violations[2])


def test_triton_wrappers_are_read_too():
    """CUDA: kernels launched with ``.run`` inside the device guard; writes from the signature."""
    wrapper = codecheck.parse(TRITON)
    assert wrapper.writes == {"triton_poi_fused_clone_0": frozenset({1}), "triton_poi_fused_add_1": frozenset({0})}
    # a handle comment finds its launch past the stream line between them
    assert [ln.key for ln in wrapper.launches] == [
        "triton_poi_fused_clone_0:1", "triton_poi_fused_add_1:2",
        "torch.ops.cleanpass_kernels.rms_norm_triton_.default:3"]
    assert [ln.name for ln in codecheck.copy_launches(TRITON)] == ["triton_poi_fused_clone_0"]
    mutated = _mutated({"cleanpass_kernels::rms_norm_triton_.default": ((0, "x"),)})
    # the lowering's clone then an add in place: the kernel gets a buffer the graph asked for
    prov = {"triton_poi_fused_clone_0:1": ["clone_default"], "triton_poi_fused_add_1:2": ["add"],
            "torch.ops.cleanpass_kernels.rms_norm_triton_.default:3": ["rms_norm_triton__default"]}
    report = codecheck.check_views(TRITON, prov, mutated)
    assert (report.checked, report.violations, report.unverified) == (1, [], [])
    # the add kernel also carries the op's node: a layout copy made for the call (and a copy)
    # the add kernel also carries the op's node and a view it copied for the op: a layout copy
    # made for the call (and a copy), fused with the view's producer
    prov["triton_poi_fused_add_1:2"] = ["add", "rms_norm_triton__default", "slice_1"]
    (v,) = codecheck.check_views(TRITON, prov, mutated).violations
    assert "triton_poi_fused_add_1" in str(v)
    assert codecheck.count_copies([TRITON], prov) == 2


def test_a_value_written_straight_into_the_layout_an_op_requires_is_no_copy():
    """Inductor names the op's node on every kernel it realizes while lowering the op; a graph
    computation realized in the layout the op requires (no view copied) is that computation.
    Seen in vLLM's pipeline: `mul` feeding fused add + RMSNorm after its clone was removed."""
    mutated = _mutated({"cleanpass_kernels::rms_norm_triton_.default": ((0, "x"),)})
    prov = {"triton_poi_fused_clone_0:1": ["clone_default"],
            "triton_poi_fused_add_1:2": ["add", "rms_norm_triton__default"],
            "torch.ops.cleanpass_kernels.rms_norm_triton_.default:3": ["rms_norm_triton__default"]}
    assert codecheck.check_views(TRITON, prov, mutated).violations == []
    assert codecheck.count_copies([TRITON], prov) == 1
    # the op's node alone on a kernel (besides views): the copy Inductor made for the op
    prov["triton_poi_fused_add_1:2"] = ["rms_norm_triton__default", "slice_1"]
    assert len(codecheck.check_views(TRITON, prov, mutated).violations) == 1


def test_op_names_map_to_fx_node_names():
    assert codecheck.op_qualname("torch.ops.cleanpass_kernels.rms_norm_torch_.default") == \
        "cleanpass_kernels::rms_norm_torch_.default"
    assert codecheck.op_qualname("aten.copy_") == "aten::copy_.default"
    assert codecheck.op_qualname("extern_kernels.mm") is None


# ---- real compiles ------------------------------------------------------------------------

def _compile_norm_of_half(stale: bool):
    weight = torch.rand(64) + 0.5
    module = stale_view.NormOfHalf(weight, 1e-5)
    entry = CompiledEntry(stale_view.compile_with(stale))
    x = torch.randn(8, 64)
    with compat.measurement_config():
        out, _ = first_call(entry, module, (x,), 8, lambda: None, lambda ins: None)
    from workloads.ir.rms_norm import rms_norm_native

    torch.testing.assert_close(out, rms_norm_native(x, weight, 1e-5))
    return entry


@pytest.mark.slow
def test_inductor_really_copies_a_view_behind_a_stale_layout_and_the_check_catches_it():
    """The real thing on torch 2.13 CPU: right values, but two copies and a failed view check."""
    entry = _compile_norm_of_half(stale=True)
    assert entry.counts.copies == 2
    (error,) = entry.counts.view_errors
    assert "cleanpass_kernels::rms_norm_torch_.default: mutated argument 'x' is a temporary" in error


@pytest.mark.slow
def test_the_same_graph_with_fresh_metadata_passes():
    entry = _compile_norm_of_half(stale=False)
    assert (entry.counts.copies, entry.counts.view_errors) == (0, ())


def _stale_variant():
    def source(ctx):
        core = ctx.built.fn.core
        return stale_view.NormOfHalf(core.weight, core.eps)
    return variants.compiled_builder("stale_view", lambda: stale_view.compile_with(True), source, donates=False)


@pytest.mark.slow
def test_a_view_check_failure_is_a_failed_row_and_the_run_goes_on(tmp_path):
    with variants.extra_variants({"stale_view": _stale_variant()}):
        result = api.run(suite="smoke", device="cpu", workloads=["rms_norm"], tokens=[8],
                         variants=["eager", "lowered", "cleanpass", "stale_view"], out=tmp_path / "run",
                         plan=suites.PLANS["test"])
    df = result.results.set_index("variant")
    bad = df.loc["stale_view"]
    assert not bad["ok"] and bad["status"] == "fail" and bad["numerics"] != "fail"  # right values
    assert bad["error"].startswith("view check: cleanpass_kernels::rms_norm_torch_.default: mutated argument 'x'")
    assert bad["copies"] == 2
    assert df.loc[["lowered", "cleanpass"], "ok"].all()
    assert (df.loc["lowered", "copies"], df.loc["cleanpass", "copies"]) == (1, 0)
    assert df.loc["eager", "copies"] is pd.NA
