"""The workload catalog: every module in ``workloads/models`` defines one ``WORKLOAD``.

Adding a workload is adding one file; nothing here lists them. Workloads from outside the repo
come in two ways, and then run like catalog ones: a module named at run time
(``harness run --workloads-module my_pkg.my_workloads``, ``from_modules``), or an installed
package's entry point in the group ``cleanpass.workloads`` (``from_entry_points``). Either
points at a module defining ``WORKLOAD`` (or ``WORKLOADS``, a sequence), or at the workload itself.
"""
from __future__ import annotations

import abc
import functools
import importlib
import importlib.metadata
import types
import logging
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from workloads import compat
from workloads.dims import ModelDims, dims, model_for_hidden

log = logging.getLogger(__name__)

SUITES = ("test", "smoke", "default", "nightly")
CPU_DTYPES = [torch.float32]
GPU_DTYPES = [torch.bfloat16, torch.float16]


@dataclass(frozen=True)
class Shape:
    num_tokens: int
    hidden: int
    model: str = ""

    @property
    def dims(self) -> ModelDims:
        """The model dims this shape stands for (by name, else by hidden size)."""
        return dims(self.model) if self.model else model_for_hidden(self.hidden)


@dataclass
class Built:
    """One ready-to-run instance of a workload.

    ``fn`` calls IR ops (the graph the pipeline compiles), ``native_fn`` is the same computation
    in plain torch (the float64 reference and the ``eager``/``native`` variants), ``ideal_fn``
    calls in-place kernels directly with no clones. ``donated``: positions in ``inputs`` that
    ``fn`` gives up through ``maybe_inplace`` calls (checked by ``workloads.donation``).
    ``dynamic_dim``: the token dimension of the activations (``inputs[0]`` has the token count
    there). ``ideal_mutates``: positions in ``inputs`` that ``ideal_fn`` writes (it treats its
    activations as given up); run it on fresh copies.
    """

    fn: Callable
    native_fn: Callable
    ideal_fn: Callable
    inputs: tuple
    donated: tuple[int, ...] = ()
    dynamic_dim: int = 0
    ideal_mutates: tuple[int, ...] = ()

    @property
    def num_tokens(self) -> int:
        return int(self.inputs[0].shape[self.dynamic_dim])

    def mark_token_dims(self, inputs: Sequence[Any], hidden: int | None = None) -> int:
        """Mark the token dim dynamic on each of ``inputs`` (copies of ``self.inputs``) that has
        the token count there; returns how many were marked. The one token-dimension marker.

        1-D inputs count too (e.g. rotary ``positions``), unless the token count equals
        ``hidden``, where a 1-D input may be a weight. A token count of 1 marks nothing: Dynamo
        specialises sizes 0 and 1 (a graph compiled at N > 1 serves one token anyway).
        """
        dim, tokens = self.dynamic_dim, self.num_tokens
        if tokens < 2:
            return 0
        marked = 0
        for x in inputs:
            if not isinstance(x, torch.Tensor) or x.dim() <= dim or x.shape[dim] != tokens:
                continue
            if x.dim() == 1 and hidden is not None and tokens == hidden:
                continue
            compat.mark_dynamic(x, dim)
            marked += 1
        return marked

    def fresh_inputs(self) -> tuple:
        """Copies of ``inputs`` (for runs that write their inputs)."""
        return tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in self.inputs)

    def reference(self, *inputs: Any) -> Any:
        """``native_fn`` in float64: floating inputs are upcast, weights follow the input dtype."""
        ins = inputs or self.inputs
        up = tuple(a.double() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in ins)
        return self.native_fn(*up)


@dataclass
class Workload(abc.ABC):
    """A named workload. Subclasses implement ``build`` and ``model_bytes``."""

    name: str
    description: str
    suite_shapes: dict[str, list[Shape]]
    # {"lowered" | "vllm" | "cleanpass": (clones before, clones after)} for the usual shape;
    # ``expected_clones_for(shape)`` is exact per shape.
    expected_clones: dict[str, tuple[int, int]] = field(default_factory=dict)
    suite_dtypes: dict[str, list[torch.dtype]] = field(default_factory=dict)
    # Variants known to compute wrong results here (the reference policy's holes): harness rows
    # for them are expected to fail validation.
    expected_wrong: tuple[str, ...] = ()
    # How much wider than the one-op dtype tolerance (workloads.numerics.TOLERANCES) this
    # workload's error against float64 may grow: deeper chains of low-precision ops round more.
    tolerance_scale: float = 1.0

    def shapes(self, suite: str) -> list[Shape]:
        """Shapes of one suite."""
        if suite not in SUITES:
            raise ValueError(f"unknown suite {suite!r}; one of {SUITES}")
        return list(self.suite_shapes[suite])

    def dtypes(self, suite: str) -> list[torch.dtype]:
        """fp32 on the CPU suites, bf16/fp16 on nightly (GPU), unless the workload says otherwise."""
        if suite in self.suite_dtypes:
            return list(self.suite_dtypes[suite])
        return list(GPU_DTYPES if suite == "nightly" else CPU_DTYPES)

    def unavailable(self) -> str | None:
        """Why this workload cannot run here (a missing optional package), None when it can:
        runners turn the reason into skipped rows."""
        return None

    def expected_clones_for(self, shape: Shape) -> dict[str, tuple[int, int]]:
        """Clone counts for one shape: ``expected_clones`` unless the graph depends on the shape
        (e.g. a one-token batch, where strides of size-1 dims stop mattering)."""
        return dict(self.expected_clones)

    @abc.abstractmethod
    def build(self, shape: Shape, dtype: torch.dtype, device: Any) -> Built:
        """Fresh module(s) and inputs for one shape."""

    @abc.abstractmethod
    def model_bytes(self, shape: Shape, dtype: torch.dtype) -> int:
        """Fewest bytes the computation must move (analytic)."""


@functools.lru_cache(1)
def _discover() -> dict[str, Workload]:
    import workloads.models as models

    found: dict[str, Workload] = {}
    for info in sorted(pkgutil.iter_modules(models.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{models.__name__}.{info.name}")
        wl = getattr(mod, "WORKLOAD", None)
        if wl is None:
            log.warning("workloads.models.%s defines no WORKLOAD", info.name)
            continue
        if wl.name in found:
            raise ValueError(f"duplicate workload name {wl.name!r}")
        found[wl.name] = wl
    return found


#: The entry point group an installed package registers its workloads under.
ENTRY_POINT_GROUP = "cleanpass.workloads"


def _defined(obj: Any, where: str) -> list[Workload]:
    """The workloads ``obj`` stands for: a Workload, a sequence of them, or a module defining
    ``WORKLOAD`` or ``WORKLOADS``."""
    if isinstance(obj, types.ModuleType):
        found = getattr(obj, "WORKLOADS", None)
        found = found if found is not None else getattr(obj, "WORKLOAD", None)
        if found is None:
            raise ValueError(f"{where} defines neither WORKLOAD nor WORKLOADS")
        obj = found
    items = [obj] if isinstance(obj, Workload) else list(obj) if isinstance(obj, (list, tuple)) else [obj]
    for item in items:
        if not isinstance(item, Workload):
            raise TypeError(f"{where}: {item!r} is not a workloads.catalog.Workload")
    return items


def _merge(into: dict[str, Workload], items: Sequence[Workload], where: str) -> None:
    for wl in items:
        if wl.name in into and into[wl.name] is not wl:
            raise ValueError(f"{where}: workload name {wl.name!r} is taken")
        into[wl.name] = wl


def from_modules(names: Sequence[str]) -> dict[str, Workload]:
    """The workloads the modules ``names`` define (imported by name: on ``sys.path``)."""
    found: dict[str, Workload] = {}
    for name in names:
        _merge(found, _defined(importlib.import_module(name), f"module {name}"), f"module {name}")
    return found


def from_entry_points() -> dict[str, Workload]:
    """The workloads installed packages register under ``ENTRY_POINT_GROUP``."""
    found: dict[str, Workload] = {}
    for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        where = f"entry point {point.name} = {point.value}"
        _merge(found, _defined(point.load(), where), where)
    return found


def all_workloads(modules: Sequence[str] = ()) -> dict[str, Workload]:
    """Every workload, by name: the catalog (``workloads/models/*.py``), those installed packages
    register (``ENTRY_POINT_GROUP``) and those of ``modules``; a name may be taken once."""
    found = dict(_discover())
    _merge(found, list(from_entry_points().values()), f"group {ENTRY_POINT_GROUP}")
    _merge(found, list(from_modules(modules).values()), "--workloads-module")
    return found


def get(name: str) -> Workload:
    """One workload by name (the catalog's, or an installed package's)."""
    if name in _discover():
        return _discover()[name]
    known = all_workloads()
    try:
        return known[name]
    except KeyError:
        raise KeyError(f"unknown workload {name!r}; known: {sorted(known)}") from None
