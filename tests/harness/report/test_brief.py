"""The brief ``harness run`` ends with and the report's "At a glance": what they compare, and
that they say so when something is wrong."""
from __future__ import annotations

import pandas as pd

from harness.report import summary
from harness.run import variants
from harness.store.results import VariantInfo
from tests.harness.harness_synth import make_rows

INFOS = variants.declarations()


def _rows(**kw) -> pd.DataFrame:
    rows = make_rows(variants=("native", "lowered", "vllm", "cleanpass", "ideal"), tokens=(1, 32), **kw)
    rows["expected_wrong"] = False
    return rows.assign(pipeline="ours")


def _brief(rows: pd.DataFrame, infos=INFOS) -> pd.DataFrame:
    return summary.brief(rows, infos).set_index(["workload", "dtype"])


def test_bytes_compare_only_counts_taken_at_the_rows_own_token_count():
    """A compiled variant's byte count is taken once per compile group (at its largest token
    count) and copied to the group's other rows; the eager ideal is counted per row. Only rows
    counted at their own token count are compared."""
    rows = _rows(workloads=("rms_norm",))
    rows["bytes_exact"] = rows["bytes_accessed"].astype(float)
    compiled = rows["variant"].isin(["native", "lowered", "vllm", "cleanpass"])
    rows["bytes_at_tokens"] = rows["num_tokens"]
    rows.loc[compiled, "bytes_at_tokens"] = 32
    big = rows["num_tokens"] == 32
    rows.loc[compiled & ~big, "bytes_exact"] = rows.loc[compiled & big, "bytes_exact"].to_numpy()
    at32 = rows[big].set_index("variant")["bytes_exact"]
    row = _brief(rows).loc[("rms_norm", "bfloat16")]
    assert row["bytes vs lowered"] == f"{at32['cleanpass'] / at32['lowered']:.3f}x"
    lines = summary.overview(rows, INFOS)
    # the ideal (eager) at 1 token is counted there, the pass's graph at 32: one case compares
    assert "moves 1.000x the bytes of `ideal`" in lines[2] and "no clones; 1 case;" in lines[2]


def test_clones_chain_bit_exactness_and_failures():
    rows = _rows()
    row = _brief(rows).loc[("fused_add_rms_norm", "bfloat16")]
    assert row["clones lowered -> cleanpass"] == "2 -> 0" and row["bit-exact"] == "yes"
    assert "bytes vs native" in row and "time vs native" in row
    assert summary.failure_groups(rows, INFOS).empty
    assert summary.overview(rows, INFOS)[0].startswith("- **Did anything miscompile?** **No miscompile**")

    bad = rows.copy()
    hit = (bad["variant"] == "cleanpass") & (bad["workload"] == "rms_norm") & (bad["num_tokens"] == 32)
    bad.loc[hit, ["ok", "status", "error", "bitwise_equal"]] = (False, "fail", "output 0 differs\nmore", False)
    assert _brief(bad).loc[("rms_norm", "bfloat16"), "bit-exact"] == "NO (1 rows)"
    groups = summary.failure_groups(bad, INFOS)
    assert groups.to_dict("records") == [{"workload": "rms_norm", "dtype": "bfloat16", "variant": "cleanpass",
                                          "outcome": "unexpected failure", "rows": 1,
                                          "reason": "output 0 differs"}]
    assert "MISCOMPILE SUSPECTED" in summary.overview(bad, INFOS)[0]
    lines = summary.format_brief(bad, INFOS)
    assert lines[-1] == "  rms_norm bfloat16 cleanpass: 1 rows, unexpected failure: output 0 differs"


def test_vllms_own_pass_joins_the_chain_and_pipelines_split_the_rows():
    rows = _rows(workloads=("rms_norm",))
    real = rows[rows["variant"] == "vllm"].assign(variant="vllm_real", clones_after=1)
    rows = pd.concat([rows, real], ignore_index=True)
    infos = list(INFOS) + [VariantInfo("vllm_real", policy="vllm-real", partner="lowered", reference=True)]
    assert _brief(rows, infos).loc[("rms_norm", "bfloat16"), "clones lowered -> cleanpass -> vllm_real"] == "1 -> 0 -> 1"
    assert "pipeline" not in summary.brief(rows, infos)

    engine = rows.assign(pipeline="vllm-engine")
    table = summary.brief(pd.concat([rows, engine], ignore_index=True), infos)
    assert sorted(table["pipeline"]) == ["ours", "vllm-engine"]


def test_a_run_without_native_has_no_native_columns():
    rows = _rows()
    table = summary.brief(rows[rows["variant"] != "native"], INFOS)
    assert not [c for c in table.columns if "native" in c]


def test_rows_whose_baseline_failed_are_not_judged_a_miscompile():
    """An engine-zoo architecture that does not start fails its no-pass row and every other row:
    the pass cannot be judged there, and the headline says so instead of suspecting a miscompile.
    A failure of the pass where the baseline ran still is one."""
    rows = _rows()
    dead = rows["workload"] == "rms_norm"
    rows.loc[dead, ["ok", "status", "error", "bitwise_equal"]] = (False, "fail", "does not start", False)
    line = summary.overview(rows, INFOS)[0]
    assert line.startswith("- **Did anything miscompile?** **No miscompile**")
    pairs = len(rows.loc[dead, ["workload", "dtype"]].drop_duplicates())
    assert f"{int(dead.sum())} rows of {pairs} workload/dtype pairs are not judged: their `lowered` row failed too" in line
    hit = (rows["variant"] == "cleanpass") & ~dead
    rows.loc[hit.idxmax(), ["ok", "status", "bitwise_equal"]] = (False, "fail", False)
    assert "MISCOMPILE SUSPECTED" in summary.overview(rows, INFOS)[0]
