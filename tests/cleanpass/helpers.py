"""One helper for the pass's tests: trace, count, run a policy, verify, check inputs."""
from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch.fx import GraphModule
from torch.fx.experimental import _config as fx_config
from torch.fx.experimental.proxy_tensor import make_fx

import cleanpass
from cleanpass import verify

from . import ops as _ops  # noqa: F401  (registers the test ops)

aten = torch.ops.aten


def size_semantics(mode: str) -> contextlib.AbstractContextManager:
    """The config a mode's graphs are traced and passed under: "oblivious" is make_fx's
    "symbolic" with ``backed_size_oblivious`` (the harness's and vLLM's compiles), where sizes
    may be 0 or 1 and a question torch cannot answer without guarding takes the general case."""
    return fx_config.patch(backed_size_oblivious=True) if mode == "oblivious" else contextlib.nullcontext()


def trace(fn: Callable, *inputs: torch.Tensor, mode: str = "fake") -> GraphModule:
    """make_fx's modes, plus "oblivious" (`size_semantics`)."""
    with size_semantics(mode):
        return make_fx(fn, tracing_mode="symbolic" if mode == "oblivious" else mode)(*inputs)


def count_clones(gm: GraphModule) -> int:
    return sum(1 for n in gm.graph.nodes if n.target is aten.clone.default)


@dataclass
class Outcome:
    before: GraphModule
    after: GraphModule
    report: cleanpass.CloneReport
    check: verify.VerifyResult

    @property
    def reasons(self) -> list[str]:
        return [d.reason for d in self.report.kept]


#: the checker also runs symbolic graphs with every size symbol at each of these (0 is left out:
#: empty tensors all share the null address, so the aliasing check could not tell them apart)
OTHER_SIZES = (1, 2, 3)


def run_pass(fn_or_gm: Callable | GraphModule, *inputs: torch.Tensor, donated=(),
             policy: str = "sound", mode: str = "fake", trials: int = 2, fold: bool = False) -> Outcome:
    """Trace (unless given a graph), run the policy on a copy, verify against the original.

    Folding is off unless asked: the test ops have out-of-place forms, and the elimination
    tests check which clones elimination itself keeps (test_fold.py tests folding)."""
    before = fn_or_gm if isinstance(fn_or_gm, GraphModule) else trace(fn_or_gm, *inputs, mode=mode)
    after = copy.deepcopy(before)
    with size_semantics(mode):
        report = cleanpass.eliminate_clones(after, donated=donated, policy=policy, fold=fold)
    assert report.guards_added == (), f"the pass specialised the graph: {report.guards_added}"
    assert count_clones(after) == report.clones_after
    assert count_clones(before) == report.clones_before == (
        len(report.removed) + len(report.kept) + len(report.folded))
    check = verify.check(before, after, donated=donated, trials=trials, other_sizes=OTHER_SIZES)
    return Outcome(before, after, report, check)
