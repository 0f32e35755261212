"""Generate the workloads section of docs/workloads.md: ops and providers, and the clone table measured
by compiling every workload (``python -m workloads.table --out FILE``)."""
from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from typing import Sequence

import torch

from workloads import catalog, pipeline, selfcheck
from workloads.ir import OPS

log = logging.getLogger(__name__)

VARIANTS = tuple(a.name for a in pipeline.ARMS)

INTRO = """\
## Workloads

`workloads/` builds the graphs the pass is for, the way serving stacks build them: functional IR
ops (`torch.ops.cleanpass_ir.*`, each with a `maybe_inplace` overload that donates its
activations), in-place kernels (Triton on CUDA, torch-written anywhere), a post-grad lowering
that emits `clone(activation)` + the mutating kernel, a pre-grad donation pass, and a catalog of
model fragments with real model shapes, byte models and hand-written "ideal" twins.

```python
from workloads import catalog, pipeline
wl = catalog.get("llama_block")
built = wl.build(wl.shapes("smoke")[0], torch.float32, "cpu")
compiled = pipeline.compile_fn(built.fn, policy="sound")   # None = lowering only, "vllm", "sound"
out = compiled(*built.inputs); compiled.reports[-1].clones_after
```
Adding a workload is adding one file in `workloads/models/` that defines `WORKLOAD`.
Tests: `.venv/bin/python -m pytest -q tests/workloads` (Triton kernels run under
`TRITON_INTERPRET=1` in a subprocess on CPU, natively on CUDA).

### A transformers model through the pass

`workloads.hf.adapt` takes a transformers Llama, Qwen2 or Mistral model (`*Model`,
`*ForCausalLM`) or decoder layer and returns a module with vLLM's forward over the model's own
submodules: tokens flattened, `rms_norm` first, then `fused_add_rms_norm` for every residual add,
rotary and SiLU-mul through the IR ops, activations the model is done with given up through
`maybe_inplace` (the functional overloads when autograd records the work). `transformers`
(>= 5.24, < 6) comes with the test extras; without it the `hf_*` workloads are skipped rows.

```python
import torch, transformers
from workloads import hf, pipeline

config = transformers.LlamaConfig(hidden_size=256, intermediate_size=512, num_attention_heads=4,
                                  num_key_value_heads=2, num_hidden_layers=2, vocab_size=128)
model = transformers.LlamaForCausalLM(config).eval()          # random weights, no download
compiled = pipeline.compile_fn(hf.adapt(model), policy="sound")
with torch.inference_mode():                                  # donation needs autograd off
    logits = compiled(torch.randint(0, 128, (1, 16)))           # [16, vocab]
report = compiled.reports[-1]  # .summary(): "sound: removed 12, folded 1 of 13 clones in ... ms (kept: none)"
```

A donation the program cannot honour (a donated tensor read again, `maybe_inplace` under
autograd) raises `workloads.donation.DonationError` naming the source lines; an argument that is
only part of an input (a slice, a split) is not donated and logs one warning with its line.
`workloads.piecewise.compile_piecewise` splits the graph at attention and compiles the pieces
one by one, as vLLM does.
"""


NOTES = """\
Notes: "folded" counts the clones elimination had to keep (inputs the caller kept, views whose
base is read later or that are returned) that cleanpass turned into the kernel's out-of-place
form: a fresh buffer written by the kernel, no copy. In `llama_block` rotary's q/k clones of
strided and offset views of qkv are removed outright (the rotary kernel takes any strides and
writes q and k inside qkv; the per-head views and attention read them there), so only the inputs'
2 are folded; it also holds 2 clones of its own (the explicit GQA kv-head expansion), real
copies that stay (`Workload.expected_clones_for`: with one token the `vllm` policy keeps one
fewer). `rotary_views` returns k, a view at an offset: its clone is folded, not removed (the
caller would see the offset). `rotary_views_base_read` shows the reference policy's view hole:
it drops q's clone although the base qk is read afterwards, so that variant's results are wrong
(`expected_wrong`).
`hf_llama`/`hf_qwen2`/`hf_mistral` (2 decoder layers from the caller's `inputs_embeds`) keep the
2 clones of that kept input (folded) and lose the 11 of activations; every clone there comes from the
lowering (the adapter's attention needs no kv-head copies). `hf_llama_layer_views` is the view
hole on real model code: the functional norm on `hidden.view(-1, H)` of a kept input, whose
clone the `vllm` policy drops, so the kernel overwrites the caller's hidden and residual (outputs
right, inputs destroyed); cleanpass keeps those 2 (folded). The `hf_*` workloads are not in the
`smoke` suite (CI's gate; minutes of compile on 2 cores): `tests/workloads/test_wl_hf.py` runs them.
"""


def _kind(impl) -> str:  # noqa: ANN001
    if not impl.inplace:
        return "functional"
    return "in place, out-of-place form" if impl.out_of_place is not None else "in place"


def ops_table() -> str:
    """Markdown: each IR op, its signature and its providers by priority."""
    lines = ["| op | schema | providers (by priority) |", "|---|---|---|"]
    for name in sorted(OPS):
        op = OPS[name]
        provs = [f"`{i.provider}` ({_kind(i)})"
                 for i in sorted(op.impls, key=lambda i: -i.priority)] + ["`native` (fallback)"]
        lines.append(f"| `{name}` | `{op.schema}` | {', '.join(provs)} |")
    return "\n".join(lines)


@dataclass(frozen=True)
class Cell:
    """Clone counts of one compiled variant and whether its results were right."""

    before: int
    after: int
    ok: bool
    folded: int = 0


Counts = dict[str, dict[str, Cell]]


def measure(names: Sequence[str], suite: str = "test") -> Counts:
    """Clone counts per workload and variant, from real compiles on CPU (first shape of ``suite``)."""
    counts: Counts = {}
    for name in names:
        wl = catalog.get(name)
        if wl.unavailable():
            log.warning("%s skipped: %s", name, wl.unavailable())
            continue
        shape = wl.shapes(suite)[0]
        rows = {name: shape}
        one = catalog.Shape(1, shape.hidden, shape.model)
        if wl.expected_clones_for(one) != wl.expected_clones_for(shape):
            rows[f"{name} (1 token)"] = one
        for label, sh in rows.items():
            counts[label] = {}
            for v in VARIANTS:
                run = selfcheck.compile_run(wl, sh, v)
                folded = len(getattr(run.compiled.reports[-1], "folded", ()))
                counts[label][v] = Cell(run.clones[0], run.clones[1], not run.problems, folded)
                log.info("%s %s clones=%s %s", label, v, run.clones, "ok" if not run.problems else "WRONG")
    return counts


def clone_table(counts: Counts) -> str:
    """Markdown: clones after lowering, and those left by each policy."""
    base = next(a.name for a in pipeline.ARMS if a.policy is None)
    passes = [a for a in pipeline.ARMS if a.policy is not None]
    sound = next(a.name for a in passes if a.policy == "sound")
    heads = [f"left by `{a.name}` policy" if a.reference else f"left by `{a.name}` ({a.policy})" for a in passes]
    lines = ["| workload | clones after lowering | " + " | ".join(heads) + f" | folded by `{sound}` |",
             "|---|---|" + "---|" * (len(passes) + 1)]

    def cell(c: Cell) -> str:
        return f"{c.after}" + ("" if c.ok else " (wrong results)")

    for label, c in counts.items():
        name, _, rest = label.partition(" ")
        lines.append(f"| `{name}`{' ' + rest if rest else ''} | {c[base].after} | "
                     + " | ".join(cell(c[a.name]) for a in passes) + f" | {c[sound].folded} |")
    return "\n".join(lines)


def real_model_table(suite: str = "test") -> str:
    """Markdown: per transformers family, clones left per policy on the whole graph (from the
    caller's embeddings, and from token ids), split at attention (vLLM's pieces, donated as the
    model code declares, and not), and the largest error against transformers in float64."""
    from workloads import hf, piecewise
    from workloads.models import _hf

    lines = ["| family | whole graph: lowered / vllm / cleanpass | from token ids (cleanpass) "
             "| pieces, donated | pieces, not donated | max abs err vs transformers (float64) |",
             "|---|---|---|---|---|---|"]
    for family in hf.FAMILIES:
        wl = catalog.get(f"hf_{family}")
        if wl.unavailable():
            continue
        shape = wl.shapes(suite)[0]
        runs = {v: selfcheck.compile_run(wl, shape, v) for v in VARIANTS}
        err = max(float((o.double() - r).abs().max()) for o, r in
                  zip(runs["cleanpass"].outputs, selfcheck.as_tuple(runs["cleanpass"].built.reference())))
        model = _hf.make_model(family, shape.dims, _hf.LAYERS, torch.float32, "cpu")
        ids = torch.randint(0, _hf.VOCAB, (1, shape.num_tokens), generator=torch.Generator().manual_seed(0))
        whole = pipeline.compile_fn(hf.adapt(model), policy="sound")
        with torch.inference_mode():
            whole(ids)
        pieces = {d: piecewise.compile_piecewise(hf.adapt(model), (ids,), "sound", donated=d) for d in (True, False)}

        def per_piece(pw: piecewise.Piecewise) -> str:
            return f"{pw.clones[1]} of {pw.clones[0]} ({' + '.join(str(p.kept) for p in pw.pieces)})"

        counts = " / ".join(f"{runs[v].clones[1]}" for v in VARIANTS)
        rep = whole.reports[-1]
        lines.append(f"| `{family}` | {runs['lowered'].clones[0]} -> {counts} | {rep.clones_before} -> "
                     f"{rep.clones_after} | {per_piece(pieces[True])} | {per_piece(pieces[False])} | {err:.2g} |")
    return "\n".join(lines)


def shapes_table() -> str:
    """Markdown: per workload and suite, the models and token counts (dtypes in brackets)."""
    lines = ["| workload | " + " | ".join(catalog.SUITES) + " |", "|---|" + "---|" * len(catalog.SUITES)]
    for name, wl in sorted(catalog.all_workloads().items()):
        cells = []
        for suite in catalog.SUITES:
            by_model: dict[str, list[int]] = {}
            for sh in wl.shapes(suite):
                by_model.setdefault(sh.model or str(sh.hidden), []).append(sh.num_tokens)
            if not by_model:
                cells.append("-")
                continue
            dts = ",".join(str(d).removeprefix("torch.") for d in wl.dtypes(suite))
            cells.append("; ".join(f"{m} T={'/'.join(map(str, ts))}" for m, ts in by_model.items()) + f" [{dts}]")
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render(counts: Counts, suite: str) -> str:
    """The whole section (docs/workloads.md)."""
    descs = "\n".join(f"- `{n}`: {w.description}" for n, w in sorted(catalog.all_workloads().items()))
    return (f"{INTRO}\n### Ops and providers\n\n{ops_table()}\n\n### Workloads\n\n{descs}\n\n"
            f"### Shapes per suite\n\nModel dims are in `workloads/dims.py` (public configs; "
            f"`mini-gqa`/`tiny-gqa` are CPU-sized stand-ins with head size 128).\n\n{shapes_table()}\n\n"
            f"### Clones per workload, before and after the pass\n\n"
            f"Generated by `python -m workloads.table` (CPU, float32, suite `{suite}`, torch "
            f"{torch.__version__}); counts are `aten.clone` nodes in the post-grad graph.\n\n"
            f"{clone_table(counts)}\n\n{NOTES}")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--suite", default="test")
    p.add_argument("--out", default="-", help="file to write, '-' for stdout")
    p.add_argument("--real-models", action="store_true", help="only the transformers families' table")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if a.real_models:
        text = real_model_table(a.suite) + "\n"
    else:
        text = render(measure(sorted(catalog.all_workloads()), a.suite), a.suite)
    if a.out == "-":
        sys.stdout.write(text)
    else:
        with open(a.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
