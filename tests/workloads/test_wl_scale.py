"""Benchmark: the pass inside a compile of an N-layer transformers Llama (small hidden size).

`make bench-pass` runs it at 32 layers (CLEANPASS_BENCH_LARGE=1) and shows compile time, pass
time and its share in pytest-benchmark's extra info; the default test run compiles 3 layers
and checks the clone counts only (speed targets live in the benchmark, not in tests).
"""
from __future__ import annotations

import os

import pytest

from workloads import hf, scale

pytestmark = pytest.mark.slow
LAYERS = [3] + ([32] if os.environ.get("CLEANPASS_BENCH_LARGE") else [])
# label -> (alternating rounds, {policy: median seconds}), for the terminal summary (conftest)
SIDE_BY_SIDE: dict[str, tuple[int, dict[str, float]]] = {}


@pytest.mark.skipif(hf.unavailable() is not None, reason=str(hf.unavailable()))
@pytest.mark.parametrize("layers", LAYERS)
def test_pass_share_of_compile_time(benchmark, layers: int) -> None:  # noqa: ANN001
    benchmark.group = "pass inside a model compile"
    points: list[scale.ScalePoint] = []
    benchmark.pedantic(lambda: points.extend(scale.measure(layers, policies=("sound",))),
                       rounds=1, iterations=1)
    point = points[-1]
    benchmark.extra_info.update(compile_s=round(point.compile_s, 2), pass_s=round(point.pass_s, 4),
                                pass_share=round(point.pass_share, 4), clones=(point.clones_before,
                                                                               point.clones_after))
    # layer 0: rms_norm (1), rotary (2), fused add (2); later layers: fused add, rotary, fused
    # add (6); the final norm's fused add (2): 6 L + 1, of which only the first norm's is not
    # removed, and folding turns it into an out-of-place kernel
    assert (point.clones_before, point.clones_after) == (6 * layers + 1, 0)
    assert point.pass_s < point.compile_s


@pytest.mark.skipif(hf.unavailable() is not None, reason=str(hf.unavailable()))
@pytest.mark.parametrize("layers", LAYERS)
def test_pass_alone_on_a_model_graph_side_by_side(benchmark, layers: int) -> None:  # noqa: ANN001
    """The pass alone on the model's post-grad graph, both policies alternating (their medians
    and ratio go to the summary and the extra info); the default run does 1 round as a check."""
    benchmark.group = "pass alone on a model graph"
    rounds = 1 if benchmark.disabled else 21
    found: list[scale.PassTimes] = []
    benchmark.pedantic(lambda: found.append(scale.measure_pass(layers, rounds=rounds)), rounds=1, iterations=1)
    times = found[-1]
    benchmark.extra_info.update(nodes=times.nodes, clones=times.clones, rounds=times.rounds,
                                sound_ms=round(times.seconds["sound"] * 1e3, 2),
                                vllm_ms=round(times.seconds["vllm"] * 1e3, 2), ratio=round(times.ratio, 2))
    assert times.clones == 6 * layers + 1 and times.nodes > 5 * times.clones  # a model graph, not a chain
    if not benchmark.disabled:
        SIDE_BY_SIDE[f"llama, {layers} layers ({times.nodes} nodes, {times.clones} clones)"] = (rounds, times.seconds)
    assert all(seconds > 0 for seconds in times.seconds.values())
