"""Pass time of cleanpass against vLLM's real `UnsafeCloneEliminationPass`, side by side in one
process (issue 27: cleanpass within 1.0x of vLLM 0.33.0's pass on 800- and 8k-node graphs).

Graphs: norm chains of about 800 and 8000 nodes (`tests/cleanpass/synthetic.py`, the kind the
speed tests time; inputs x and residual donated) and the post-grad graph of a 32-layer
transformers Llama as our lowering leaves it (`workloads.scale`'s small dimensions, donation as
the pipeline records it). Each round runs every arm once on a fresh copy of each graph
(`workloads.pipeline.copy_graph`: same fake tensors, new nodes), who goes first alternating
round by round; medians over the rounds. Times are the thread's CPU time (`time.thread_time`):
on a shared machine wall time also counts the waits for a core (seen +-30% between two runs of one
code); the wall-clock medians are printed beside them.

Arms, both as vLLM's clone slot calls them: inside vLLM's pass context (entered outside the
timer, as a compile enters it once) with the donated inputs as `donated_input_ids`, the timer
covers one call of the slot's pass object: `cleanpass.vllm_plugin.VllmClonePass` (sound policy,
folding on, the plugin's defaults) and vLLM's `UnsafeCloneEliminationPass`. Where vLLM is not
installed (plain `.venv`) the real arm is skipped with its reason and cleanpass is timed through
`eliminate_clones_in_graph(..., policy="sound")`, the call the plugin makes.

Usage: .venv-peer/bin/python scripts/pass_time_vs_vllm.py [--rounds N] [--layers L]
       [--sizes 800,8000] [--no-llama]
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")

import torch  # noqa: E402
from torch import fx  # noqa: E402

import cleanpass  # noqa: E402
from harness.run import vllm_real  # noqa: E402
from workloads.pipeline import copy_graph  # noqa: E402

CLONE = torch.ops.aten.clone.default


@dataclass(frozen=True)
class Case:
    """One graph to time: a template that every run copies, and its donated placeholders."""

    label: str
    graph: fx.Graph
    donated: tuple[int, ...]

    @property
    def nodes(self) -> int:
        return len(self.graph.nodes)

    @property
    def clones(self) -> int:
        return count_clones(self.graph)


def count_clones(graph: fx.Graph) -> int:
    return len(graph.find_nodes(op="call_function", target=CLONE))


def chain_case(num_nodes: int) -> Case:
    """The speed tests' norm chain of about `num_nodes` nodes, x and residual donated."""
    from tests.cleanpass.synthetic import norm_chain_graph

    return Case(f"norm chain, {num_nodes} nodes", norm_chain_graph(num_nodes), (0, 1))


def llama_case(layers: int, tokens: int = 16) -> Case:
    """The post-grad graph of a `layers`-layer transformers Llama (small dims) as our lowering
    leaves it, with the donated inputs the pipeline records (as `workloads.scale` captures it)."""
    from workloads import hf, pipeline, scale
    from workloads.models._hf import VOCAB, make_model

    reason = hf.unavailable()
    if reason is not None:
        raise RuntimeError(reason)
    model = make_model("llama", scale.SMALL, layers, torch.float32, "cpu")
    ids = torch.randint(0, VOCAB, (1, tokens), generator=torch.Generator().manual_seed(0))
    compiled = pipeline.compile_fn(hf.adapt(model), policy=None)
    post = compiled.post
    captured: list[tuple[fx.Graph, tuple[int, ...]]] = []
    post.stages.append(("capture", lambda g: captured.append((copy_graph(g), post.donated(g)))))
    with torch.inference_mode():
        compiled(ids)
    graph, donated = max(captured, key=lambda item: len(item[0].nodes))
    return Case(f"llama, {layers} layers", graph, donated)


# ---- the arms ----------------------------------------------------------------------------

Arm = Callable[[fx.Graph, tuple[int, ...]], "Seconds"]  # runs on the graph


@dataclass(frozen=True)
class Seconds:
    """One timed call: the thread's CPU time and the wall-clock time."""

    cpu: float
    wall: float


@contextlib.contextmanager
def timed(found: list[Seconds]) -> Iterator[None]:
    cpu, wall = time.thread_time(), time.perf_counter()
    yield
    found.append(Seconds(time.thread_time() - cpu, time.perf_counter() - wall))


def cleanpass_direct(graph: fx.Graph, donated: tuple[int, ...]) -> Seconds:
    """The plugin's call without vLLM: `eliminate_clones_in_graph`, sound policy, folding on."""
    found: list[Seconds] = []
    with timed(found):
        cleanpass.eliminate_clones_in_graph(graph, donated, policy="sound")
    return found[0]


def slot_arms() -> dict[str, Arm]:
    """Both passes as vLLM's clone slot calls them (needs vLLM)."""
    from vllm.compilation.passes.inductor_pass import get_pass_context, pass_context
    from vllm.compilation.passes.ir.clone_elimination import UnsafeCloneEliminationPass
    from vllm.config import VllmConfig
    from vllm.config.utils import Range

    from cleanpass.vllm_plugin import VllmClonePass

    def in_slot(pass_: Any) -> Arm:
        def run(graph: fx.Graph, donated: tuple[int, ...]) -> Seconds:
            placeholders = graph.find_nodes(op="placeholder")
            position = {node: index for index, node in enumerate(graph.nodes)}
            found: list[Seconds] = []
            with pass_context(compile_range=Range(1, 8192)):
                get_pass_context().donated_input_ids = {position[placeholders[i]] for i in donated}
                with timed(found):
                    pass_(graph)
            return found[0]
        return run

    config = VllmConfig()
    return {"cleanpass": in_slot(VllmClonePass(config, fold=True)),
            "vllm": in_slot(UnsafeCloneEliminationPass(config))}


def arms() -> tuple[dict[str, Arm], str | None]:
    """The arms this environment can run, and why vLLM's is missing (None when present)."""
    reason = vllm_real.unavailable()
    if reason is not None:
        return {"cleanpass": cleanpass_direct}, reason
    return slot_arms(), None


# ---- timing ------------------------------------------------------------------------------

@dataclass
class Timing:
    """Per arm: the times of every timed round, and the clones each left (the same every round)."""

    case: Case
    rounds: int
    seconds: dict[str, list[Seconds]] = field(default_factory=dict)
    clones_after: dict[str, int] = field(default_factory=dict)

    def median_ms(self, arm: str, clock: str = "cpu") -> float:
        return statistics.median(getattr(s, clock) for s in self.seconds[arm]) * 1e3

    def ratio(self, clock: str = "cpu") -> float | None:
        """cleanpass / vLLM, of the medians (None without the vLLM arm)."""
        if "vllm" not in self.seconds:
            return None
        return self.median_ms("cleanpass", clock) / self.median_ms("vllm", clock)


def time_case(case: Case, run: dict[str, Arm], rounds: int, warmup: int = 1) -> Timing:
    """`warmup` + `rounds` rounds; in each, every arm once on a fresh copy, the order rotating.
    The collector runs before each timed call, outside the timer, so neither arm pays for the
    other's garbage."""
    timing = Timing(case, rounds, {name: [] for name in run})
    names = list(run)
    for index in range(warmup + rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            graph = copy_graph(case.graph)
            gc.collect()
            seconds = run[name](graph, case.donated)
            clones = count_clones(graph)
            if timing.clones_after.setdefault(name, clones) != clones:
                raise AssertionError(f"{name} left {clones} clones on {case.label}, "
                                     f"{timing.clones_after[name]} before")
            if index >= warmup:
                timing.seconds[name].append(seconds)
    return timing


# ---- the report --------------------------------------------------------------------------

def machine() -> str:
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as cpuinfo:
            model = next((line.split(":", 1)[1].strip() for line in cpuinfo
                          if line.startswith("model name")), model)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{os.cpu_count()} cores ({model}), load {load}; Python {platform.python_version()}, "
            f"torch {torch.__version__}, vLLM {vllm_real.version() or 'absent'}")


def table(timings: list[Timing]) -> Iterator[str]:
    """Medians in ms, CPU time first; with vLLM: its medians, the ratios and the clones kept."""
    has_vllm = any("vllm" in t.seconds for t in timings)
    yield (f"{'graph':<24}{'nodes':>7}{'clones':>8}{'rounds':>8}{'ours cpu':>10}"
           + (f"{'vLLM cpu':>10}{'ratio':>8}" if has_vllm else "") + f"{'ours wall':>11}"
           + (f"{'vLLM wall':>11}{'ratio':>8}{'kept ours/vLLM':>16}" if has_vllm else ""))
    for t in timings:
        ratio = t.ratio()
        cpu = f"{t.median_ms('cleanpass'):>10.2f}"
        wall = f"{t.median_ms('cleanpass', 'wall'):>11.2f}"
        if ratio is not None:
            cpu += f"{t.median_ms('vllm'):>10.2f}{ratio:>7.2f}x"
            kept = f"{t.clones_after['cleanpass']}/{t.clones_after['vllm']}"
            wall += f"{t.median_ms('vllm', 'wall'):>11.2f}{t.ratio('wall'):>7.2f}x{kept:>16}"
        yield f"{t.case.label:<24}{t.case.nodes:>7}{t.case.clones:>8}{t.rounds:>8}" + cpu + wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=21, help="timed rounds per graph")
    parser.add_argument("--sizes", default="800,8000", help="norm chain sizes, in nodes")
    parser.add_argument("--layers", type=int, default=32, help="Llama layers")
    parser.add_argument("--no-llama", action="store_true", help="skip the Llama graph (a compile)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    run, missing = arms()
    print(machine())
    if missing:
        print(f"vLLM's pass: skipped ({missing})")
    cases = [chain_case(int(size)) for size in args.sizes.split(",") if size]
    if not args.no_llama:
        cases.append(llama_case(args.layers))
    timings = [time_case(case, run, args.rounds) for case in cases]
    for line in table(timings):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
