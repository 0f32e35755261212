"""Call ``python -m harness`` in-process and get (exit code, printed lines) back."""
from __future__ import annotations

import contextlib
import io

from harness import cli


def call(*argv: str) -> tuple[int, list[str]]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main([str(a) for a in argv])
    return code, out.getvalue().splitlines()
