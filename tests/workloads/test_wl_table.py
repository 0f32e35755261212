"""The README generator: ops table and clone table formatting."""
from __future__ import annotations

from workloads import catalog, table
from workloads.ir import OPS


def test_ops_table_lists_every_op_and_provider() -> None:
    text = table.ops_table()
    for name, op in OPS.items():
        assert f"`{name}`" in text
        for impl in op.impls:
            assert f"`{impl.provider}`" in text
    assert "in place" in text and "functional" in text


def test_clone_table_one_row_per_workload_and_marks_wrong_results() -> None:
    counts = {name: {v: table.Cell(*wl.expected_clones[v], ok=name not in ("rotary_views_base_read",) or v != "vllm")
                     for v in table.VARIANTS}
              for name, wl in catalog.all_workloads().items()}
    text = table.render(counts, "test")
    for name in counts:
        assert f"| `{name}` |" in text
    assert text.count("(wrong results)") == 1
    assert "python -m workloads.table" in text
