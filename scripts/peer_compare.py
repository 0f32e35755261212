"""Our `vllm` and `sound` policies against vLLM's real `UnsafeCloneEliminationPass`.

Runs in the peer environment (`make peer`); the real pass comes from `harness.run.vllm_real`. Every
graph gets three runs on copies that share the original's fake tensors (the real pass reads
storage identity from them): the real pass inside vLLM's pass context with the donated inputs
mapped to `donated_input_ids`, our `vllm` policy, our `sound` policy. A program "agrees" when
our `vllm` policy keeps exactly the clones the real pass keeps (or both raise). Graphs:
random programs from the property-test generator, and the post-grad graphs of every smoke-suite
workload as our lowering leaves them (the graphs the harness's `vllm` rows run on).

Usage: python scripts/peer_compare.py [--programs N] [--csv FILE]
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import os
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
from cleanpass import verify  # noqa: E402
from workloads.pipeline import copy_graph  # noqa: E402

ASSERTED = "asserted"


# ---- running the three passes ------------------------------------------------------------

def real_pass_runner() -> tuple[Callable[[fx.Graph, tuple[int, ...]], None], str]:
    """vLLM's pass as `run(graph, donated)` (donated: placeholder positions), and its version."""
    from harness.run import vllm_real

    reason = vllm_real.unavailable()
    if reason is not None:
        raise SystemExit(reason)
    return vllm_real.RealCloneElimination(), str(vllm_real.version())


@dataclass
class Verdicts:
    """Per pass: the clone names it kept, or ASSERTED; plus whether its result was correct."""

    clones: list[str]
    kept: dict[str, Any] = field(default_factory=dict)
    correct: dict[str, bool | None] = field(default_factory=dict)

    @property
    def agrees(self) -> bool:
        return self.kept["real"] == self.kept["vllm"]


def _clone_names(graph: fx.Graph) -> list[str]:
    return [n.name for n in graph.nodes
            if n.op == "call_function" and n.target is torch.ops.aten.clone.default]


def judge(graph: fx.Graph, donated: tuple[int, ...], run_real: Callable,
          root: torch.nn.Module | None = None, check_inputs: list | None = None) -> Verdicts:
    """Run the three passes on copies of `graph`; with `root`, also check each result."""
    verdicts = Verdicts(_clone_names(graph))
    passes = {"real": lambda g: run_real(g, donated),
              "vllm": lambda g: cleanpass.eliminate_clones_in_graph(g, donated, "vllm"),
              "sound": lambda g: cleanpass.eliminate_clones_in_graph(g, donated, "sound")}
    for name, run in passes.items():
        after = copy_graph(graph)
        try:
            run(after)
        except AssertionError:
            verdicts.kept[name], verdicts.correct[name] = ASSERTED, None
            continue
        verdicts.kept[name] = frozenset(_clone_names(after))
        if root is not None:
            before_gm, after_gm = fx.GraphModule(root, copy_graph(graph)), fx.GraphModule(root, after)
            result = verify.check(before_gm, after_gm, donated=donated, trials=2, inputs=check_inputs)
            verdicts.correct[name] = result.ok
    return verdicts


# ---- graphs ---------------------------------------------------------------------------------

def random_programs(count: int) -> Iterator[tuple[str, Any, tuple[int, ...]]]:
    """(label, traced GraphModule, donated) for `count` programs torch accepts, reproducibly."""
    from hypothesis import HealthCheck, given, settings

    from tests.cleanpass.helpers import trace
    from tests.cleanpass.random_programs import programs

    drawn: list = []

    @settings(max_examples=count * 2, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(programs())
    def collect(program) -> None:
        drawn.append(program)

    collect()
    found = 0
    for index, program in enumerate(drawn):
        inputs = program.inputs()
        try:
            program(*[t.clone() for t in inputs])
            gm = trace(program, *inputs)
        except RuntimeError:
            continue
        yield f"program-{index}", gm, program.donated
        found += 1
        if found == count:
            return


def smoke_graphs() -> Iterator[tuple[str, fx.Graph, tuple[int, ...]]]:
    """(label, post-grad graph after our lowering, donated) for every graph the smoke suite
    compiles, built as the harness builds them (one compile per group, token dim dynamic,
    recompiles where Dynamo specialises, e.g. one token)."""
    from harness.run.compile import apply
    from harness.run.suites import case_matrix, group_cases
    from workloads import catalog, pipeline

    for group in group_cases(case_matrix(catalog.all_workloads(), "smoke")):
        compiled = pipeline.compile_fn(apply, policy=None, dynamic=False)
        post = compiled.post
        captured: list[tuple[fx.Graph, tuple[int, ...]]] = []
        post.stages.append(("peer-capture", lambda g: captured.append((copy_graph(g), post.donated(g)))))
        for index, case in enumerate(group):
            built = catalog.get(case.workload).build(case.shape, case.dtype, "cpu")
            inputs = [t.clone() if isinstance(t, torch.Tensor) else t for t in built.inputs]
            if index == 0:
                built.mark_token_dims(inputs, case.shape.hidden)
            seen = len(captured)
            compiled(built.fn, *inputs)
            for graph, donated in captured[seen:]:
                label = f"{case.workload}/{case.dtype_name}/h{case.shape.hidden}/t{case.shape.num_tokens}"
                yield label, graph, donated


# ---- report ---------------------------------------------------------------------------------

def _fmt(kept: Any, clones: list[str]) -> str:
    return ASSERTED if kept == ASSERTED else f"{len(kept)}/{len(clones)}"


def _reason(v: Verdicts) -> str:
    """Why our vllm model and the real pass differ on one graph (first differing clone)."""
    real, ours = v.kept["real"], v.kept["vllm"]
    if ASSERTED in (real, ours):
        return f"real {_fmt(real, v.clones)}, ours {_fmt(ours, v.clones)}"
    only_real, only_ours = sorted(real - ours), sorted(ours - real)
    return f"kept only by real: {only_real}; kept only by ours: {only_ours}"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    import logging

    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=500)
    parser.add_argument("--csv", help="write one row per graph here")
    args = parser.parse_args(argv)
    run_real, version = real_pass_runner()
    print(f"vLLM {version} UnsafeCloneEliminationPass vs cleanpass policies (torch {torch.__version__})")
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    with _quiet():
        for label, gm, donated in random_programs(args.programs):
            v = judge(gm.graph, donated, run_real, root=gm)
            rows.append(_row("random", label, v))
        for label, graph, donated in smoke_graphs():
            v = judge(graph, donated, run_real)
            rows.append(_row("smoke", label, v))
    elapsed = time.perf_counter() - started
    _print_tables(rows)
    if args.csv:
        with open(args.csv, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    print(f"({elapsed:.0f} s)")
    random_rows = [r for r in rows if r["set"] == "random"]
    agreement = sum(r["agree"] for r in random_rows) / max(1, len(random_rows))
    return 0 if agreement >= 0.99 and all(r["agree"] for r in rows if r["set"] == "smoke") else 1


def _row(kind: str, label: str, v: Verdicts) -> dict[str, Any]:
    return {"set": kind, "graph": label, "clones": len(v.clones),
            "real": _fmt(v.kept["real"], v.clones), "vllm": _fmt(v.kept["vllm"], v.clones),
            "sound": _fmt(v.kept["sound"], v.clones), "agree": v.agrees,
            "real_correct": v.correct.get("real"), "vllm_correct": v.correct.get("vllm"),
            "sound_correct": v.correct.get("sound"), "why": "" if v.agrees else _reason(v)}


def _print_tables(rows: list[dict[str, Any]]) -> None:
    smoke = [r for r in rows if r["set"] == "smoke"]
    print("\nsmoke-suite graphs (clones kept / clones after lowering)")
    print(f"{'graph':<44} {'real':>8} {'vllm':>8} {'sound':>8}  agree")
    for r in smoke:
        print(f"{r['graph']:<44} {r['real']:>8} {r['vllm']:>8} {r['sound']:>8}  "
              f"{'yes' if r['agree'] else 'NO'}")
    random_rows = [r for r in rows if r["set"] == "random"]
    print(f"\nrandom programs: {len(random_rows)}")
    outcomes: dict[tuple, int] = {}
    for r in random_rows:
        key = (r["agree"], r["real_correct"], r["sound_correct"])
        outcomes[key] = outcomes.get(key, 0) + 1
    print(f"{'vllm policy == real':<22} {'real pass correct':<18} {'sound correct':<14} programs")
    for (agree, real_ok, sound_ok), count in sorted(outcomes.items(), key=str):
        print(f"{str(agree):<22} {str(real_ok):<18} {str(sound_ok):<14} {count}")
    total_clones = sum(r["clones"] for r in random_rows)
    for name in ("real", "vllm", "sound"):
        kept = [r[name] for r in random_rows]
        asserted = sum(k == ASSERTED for k in kept)
        left = sum(int(k.split("/")[0]) for k in kept if k != ASSERTED)
        print(f"  {name:<6} kept {left} of {total_clones} clones; asserted on {asserted} programs")
    kept = lambda r, name: int(r[name].split("/")[0])  # noqa: E731
    comparable = [r for r in random_rows if r["real_correct"] and r["real"] != ASSERTED]
    sound_more = [r["graph"] for r in comparable if kept(r, "sound") > kept(r, "real")]
    sound_fewer = sum(kept(r, "sound") < kept(r, "real") for r in comparable)
    print(f"  where vLLM's result passes the checker ({len(comparable)} programs): sound keeps "
          f"fewer clones on {sound_fewer}, more on {len(sound_more)} {sound_more}")
    agreeing = sum(r["agree"] for r in random_rows)
    print(f"\nagreement: our vllm policy decides every clone as vLLM does on {agreeing} of "
          f"{len(random_rows)} random programs ({100 * agreeing / max(1, len(random_rows)):.1f}%) "
          f"and {sum(r['agree'] for r in smoke)} of {len(smoke)} smoke-suite graphs")
    for r in rows:
        if not r["agree"]:
            print(f"  differs: {r['set']} {r['graph']}: {r['why']}")


if __name__ == "__main__":
    sys.exit(main())
