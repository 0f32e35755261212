"""Counts read off compiled code: kernel launches in Inductor's generated wrapper.

Inductor's ``generated_kernel_count`` over-counts (it counts kernels it compiled, including
ones it later dropped or benchmarked), so we count launches in the wrapper's ``call`` body:
generated kernels (``cpp_fused_*`` on CPU, ``<kernel>.run`` on CUDA) plus opaque calls
(``torch.ops.*`` custom/in-place kernels and ``extern_kernels.*``). A clone that survives as its
own copy kernel adds one launch; one fused into a neighbour does not.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

# A launch is a statement at the start of a line inside ``def call(...)``.
# cpp kernels are called directly; Triton kernels (Inductor's and user-defined ones Inductor
# inlines) are launched with ``<name>.run(...)``
_GENERATED = re.compile(r"^\s+(?:cpp_fused_\w+|triton_\w+|\w+\.run)\(", re.MULTILINE)
_OPAQUE = re.compile(r"^\s+(?:\w+\s*=\s*)?(torch\.ops\.\w+\.\w+(?:\.\w+)?|extern_kernels\.\w+)\(",
                     re.MULTILINE)
_CALL_DEF = re.compile(r"^(\s*)def call\(", re.MULTILINE)


@dataclass(frozen=True)
class KernelCount:
    """Launches in one compiled graph's wrapper, split by kind."""

    generated: int
    opaque: int

    @property
    def total(self) -> int:
        return self.generated + self.opaque


def call_body(code: str) -> str:
    """The body of the wrapper's ``call`` function (the whole code when not found).

    The body is every following line that is blank or indented deeper than the ``def``.
    """
    m = _CALL_DEF.search(code)
    if not m:
        return code
    indent = len(m.group(1).lstrip("\n"))
    lines = code[m.end():].splitlines()[1:]
    body = []
    for line in lines:
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break
        body.append(line)
    return "\n".join(body) + "\n"


def count_kernels(code: str) -> KernelCount:
    """Count kernel launches in one Inductor wrapper module's source."""
    body = call_body(code)
    return KernelCount(generated=len(_GENERATED.findall(body)), opaque=len(_OPAQUE.findall(body)))


def count_kernels_in(codes: list[str]) -> int | None:
    """Total launches over all graphs compiled for one call; None when nothing was captured."""
    if not codes:
        return None
    return sum(count_kernels(c).total for c in codes)
