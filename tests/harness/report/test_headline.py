"""The headline table is made from a run, never typed: one line per workload, model and dtype at
the largest token count, with the in-run ratio against the bound where the run has samples."""
from __future__ import annotations

import pandas as pd

from harness.judge import ratios as ratiomod
from harness.report.headline import headline_table
from harness.store.baseline import load_run
from harness.store.results import variant_infos
from tests.harness.harness_synth import VARIANTS, make_rows, synth_run


def _table(tmp_path, rows: pd.DataFrame, with_samples: bool = True) -> pd.DataFrame:
    run = load_run(synth_run(tmp_path / "run", rows=rows, seed=3))
    samples = run.samples if with_samples else None
    return headline_table(run.rows, variant_infos(run.env, run.rows), ratiomod.ratio_table(samples))


def test_one_line_per_workload_and_dtype_at_the_largest_token_count(tmp_path):
    rows = make_rows(variants=VARIANTS, tokens=(1, 32, 2048), dtypes=("bfloat16", "float16"))
    table = _table(tmp_path, rows)
    assert len(table) == 2 * 2
    assert all(cell.endswith(", 2048)") for cell in table["workload (model, tokens)"])
    line = table[(table["workload (model, tokens)"] == "`rms_norm` (llama-3.1-8b, 2048)")
                 & (table["dtype"] == "bfloat16")].iloc[0]
    at = rows[(rows.workload == "rms_norm") & (rows.dtype == "bfloat16") & (rows.num_tokens == 2048)]
    p50 = at.set_index("variant")["latency_us_p50"]
    assert line["speedup"] == f"{p50['lowered'] / p50['cleanpass']:.2f}x"
    assert line["clones lowered -> cleanpass"] == (
        f"{int(at[at.variant == 'lowered'].clones_before.iloc[0])} -> "
        f"{int(at[at.variant == 'cleanpass'].clones_after.iloc[0])}")
    assert line["cleanpass ok"] == "yes"
    # the synthetic pass matches the bound: a paired ratio near 1, with its interval
    ratio, interval = line["cleanpass / ideal"].split("x ", 1)
    assert abs(float(ratio) - 1) < 0.05 and interval.startswith("[")


def test_without_samples_the_ratio_falls_back_to_the_p50s_and_says_so(tmp_path):
    rows = make_rows(variants=VARIANTS, tokens=(64,))
    rows.loc[rows.variant == "ideal", "latency_us_p50"] *= 0.5
    table = _table(tmp_path, rows, with_samples=False)
    for cell, wl in zip(table["cleanpass / ideal"], table["workload (model, tokens)"]):
        name = wl.split("`")[1]
        p50 = rows[rows.workload == name].set_index("variant")["latency_us_p50"]
        assert cell == f"{p50['cleanpass'] / p50['ideal']:.3f}x (p50s)"


def test_a_failing_pass_row_is_marked_and_missing_counts_say_unknown(tmp_path):
    rows = make_rows(variants=("lowered", "cleanpass", "ideal"), tokens=(8,))
    rows.loc[rows.variant == "cleanpass", ["ok", "status", "error"]] = (False, "fail", "not bit-identical")
    rows["copies"] = 1.0
    rows.loc[rows.variant == "cleanpass", "copies"] = float("nan")  # counted for lowered only
    table = _table(tmp_path / "some", rows)
    assert set(table["cleanpass ok"]) == {"FAIL"}
    assert set(table["copies lowered -> cleanpass"]) == {"1 -> ?"}
    # a run written before the column counted none: the column says nothing, so it is left out
    table = _table(tmp_path / "none", rows.drop(columns=["copies"]))
    assert "copies lowered -> cleanpass" not in table and set(table["cleanpass ok"]) == {"FAIL"}


def test_no_pass_rows_no_table():
    rows = make_rows(variants=("lowered", "ideal"))
    assert headline_table(rows, variant_infos({}, rows)).empty


def test_a_run_with_folding_off_shows_elimination_alone_next_to_the_pass(tmp_path):
    """With ``cleanpass_nofold`` in the run, its p50 stands between lowered's and the pass's."""
    rows = make_rows(variants=("lowered", "cleanpass", "cleanpass_nofold", "ideal"), tokens=(8, 64))
    rows.loc[rows.variant == "cleanpass_nofold", "latency_us_p50"] = 123.0
    table = _table(tmp_path, rows)
    columns = list(table.columns)
    assert columns.index("lowered us") < columns.index("cleanpass_nofold us") < columns.index("cleanpass us")
    assert set(table["cleanpass_nofold us"]) == {"123"}
    assert "cleanpass_nofold us" not in _table(tmp_path / "plain", make_rows(variants=VARIANTS, tokens=(8,)))
