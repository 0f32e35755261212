"""Gate rule 5 (in-run ratios), the ratchet, and rule 6 (a version change makes timings notes).

Synthetic runs (tests/harness/harness_synth.py): every variant of a case is sampled in the same
40 blocks, so ``cleanpass/lowered`` is a paired ratio of one run.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.judge import ratios as ratiomod
from harness.judge.gate import GateConfig, Level, gate
from harness.store.baseline import load_baseline, load_run, write_baseline
from tests.harness.cli_calls import call
from tests.harness.harness_synth import make_env, make_rows, make_samples, synth_run, write_run

VARIANTS = ("native", "lowered", "cleanpass", "cleanpass_nofold", "ideal")


def _run(path: Path, seed: int, slowdown: dict[str, float] | None = None, **env_kw) -> Path:
    rows = make_rows(variants=VARIANTS)
    samples = make_samples(rows, seed=seed, slowdown=slowdown)
    return write_run(path, rows, samples, make_env(**env_kw))


def _ratio_findings(res, level: Level | None = None) -> list:
    return [f for f in res.findings if f.metric.startswith("ratio ")
            and (level is None or f.level is level)]


def test_ratio_table_pairs_blocks_of_one_run(tmp_path):
    run = load_run(_run(tmp_path / "r", seed=1, slowdown={"cleanpass": 1.10}))
    table = ratiomod.ratio_table(run.samples)
    # 2 workloads x 3 token counts x 4 denominators
    assert len(table) == 24 and set(table["denominator"]) == set(ratiomod.DENOMINATORS)
    assert (table["ratio_low"] <= table["ratio"]).all() and (table["ratio"] <= table["ratio_high"]).all()
    aa = ratiomod.ratio_table(load_run(_run(tmp_path / "aa", seed=1)).samples)
    shifted = table["ratio"].to_numpy() / aa["ratio"].to_numpy()
    assert abs(float(pd.Series(shifted).median()) - 1.10) < 0.01


def test_a_over_a_passes_and_ten_percent_slower_cleanpass_fails_on_the_ratio(tmp_path):
    base = load_run(_run(tmp_path / "base", seed=1))
    same = gate(base, load_run(_run(tmp_path / "aa", seed=2)))
    assert same.exit_code == 0, [f.line() for f in same.findings]
    assert len(same.ratios) == 24 and set(same.ratios["verdict"]) == {"pass"}

    slow = gate(base, load_run(_run(tmp_path / "slow", seed=3, slowdown={"cleanpass": 1.10})))
    assert slow.exit_code == 1
    bad = _ratio_findings(slow, Level.REGRESSION)
    assert {f.metric for f in bad} == {"ratio cleanpass/lowered", "ratio cleanpass/ideal",
                                       "ratio cleanpass/native", "ratio cleanpass/cleanpass_nofold"}
    assert all(f.key[KEY_VARIANT] == "cleanpass" for f in bad)


KEY_VARIANT = 1  # position of ``variant`` in the row key


def test_a_uniformly_slower_machine_of_the_same_model_keeps_its_ratios(tmp_path):
    """A slower host moves every absolute median; the ratios do not move, so they still pass."""
    base = load_run(_run(tmp_path / "base", seed=1))
    everything = {v: 1.3 for v in VARIANTS}
    res = gate(base, load_run(_run(tmp_path / "slowhost", seed=2, slowdown=everything)))
    assert any(f.metric == "latency_us_p50" and f.level is Level.REGRESSION for f in res.findings)
    assert _ratio_findings(res) == []
    worse = dict(everything, cleanpass=1.3 * 1.10)
    res = gate(base, load_run(_run(tmp_path / "slowhost2", seed=2, slowdown=worse)))
    assert _ratio_findings(res, Level.REGRESSION)


def test_three_blocks_give_a_point_but_no_interval_and_are_never_gated(tmp_path):
    """The CPU smoke suite times 3 blocks: the ratio is shown, its gate is a note."""
    rows = make_rows(variants=VARIANTS)
    base = load_run(write_run(tmp_path / "b", rows, make_samples(rows, blocks=3, seed=1), make_env()))
    slow = load_run(write_run(tmp_path / "s", rows,
                              make_samples(rows, blocks=3, seed=2, slowdown={"cleanpass": 1.5}),
                              make_env()))
    table = ratiomod.ratio_table(slow.samples)
    assert len(table) == 24 and table["ratio_low"].isna().all() and (table["blocks"] == 3).all()
    assert (table.loc[table.denominator == "ideal", "ratio"] > 1.3).all()
    res = gate(base, slow)
    assert _ratio_findings(res, Level.REGRESSION) == [] and _ratio_findings(res, Level.WARN) == []
    assert len([f for f in res.findings if f.metric.endswith("not gated")
                and f.metric.startswith("ratio ")]) == 24


def test_ratios_on_cpu_only_when_asked(tmp_path):
    cpu = dict(device="cpu", device_name="AMD EPYC")
    rows = make_rows(variants=VARIANTS, device="cpu", device_name="AMD EPYC")
    base = load_run(write_run(tmp_path / "b", rows, make_samples(rows, seed=1), make_env(**cpu)))
    slow = load_run(write_run(tmp_path / "s", rows, make_samples(rows, seed=2, slowdown={"cleanpass": 1.1}),
                              make_env(**cpu)))
    assert gate(base, slow).exit_code == 0 and gate(base, slow).ratios is None
    asked = gate(base, slow, GateConfig(latency_on_cpu=True))
    assert _ratio_findings(asked, Level.REGRESSION)


def test_gain_is_a_note_and_the_ratchet_holds_it(tmp_path):
    out = tmp_path / "baseline.parquet"
    normal = _run(tmp_path / "normal", seed=1)
    faster = _run(tmp_path / "faster", seed=2, slowdown={"cleanpass": 0.8})
    assert call("baseline", "--run", normal, "--out", out)[0] == 0
    code, lines = call("gate", "--baseline", out, "--run", faster)
    assert code == 0 and any("a gain landed" in l for l in lines)

    # the gain lands (ratchet), then a refresh from an ordinary run keeps holding it
    assert call("baseline", "--run", faster, "--out", out, "--refresh", "--reason", "gain",
                "--ratchet")[0] == 0
    code, lines = call("baseline", "--run", _run(tmp_path / "n2", seed=3), "--out", out,
                       "--refresh", "--reason", "noisy refresh", "--ratchet")
    assert code == 0 and "  ratchet: 24 ratios held" in lines
    code, lines = call("gate", "--baseline", out, "--run", _run(tmp_path / "n3", seed=4))
    assert code == 1 and any(l.startswith("REGRESSION") and "ratio cleanpass/" in l for l in lines)

    # without the ratchet the same refresh gives the gain back
    assert call("baseline", "--run", _run(tmp_path / "n4", seed=3), "--out", out, "--refresh",
                "--reason", "intended: gain given back")[0] == 0
    assert call("gate", "--baseline", out, "--run", _run(tmp_path / "n5", seed=4))[0] == 0


def test_version_change_turns_timing_findings_into_notes(tmp_path):
    base = load_run(_run(tmp_path / "base", seed=1))
    slow = load_run(_run(tmp_path / "slow", seed=3, slowdown={"cleanpass": 1.5}))
    slow.env["torch"] = "2.14.0"
    res = gate(base, slow)
    assert res.exit_code == 0
    notes = [f for f in res.findings if f.metric.startswith(("ratio ", "latency_us_p50"))]
    assert notes and all(f.level is Level.NOTE and "torch 2.13.0 -> 2.14.0" in f.reason for f in notes)
    assert any(f.key is None and f.metric.startswith("versions changed") for f in res.findings)


def test_a_new_vllm_or_cpu_thread_count_also_makes_timings_notes(tmp_path):
    base = load_run(_run(tmp_path / "base", seed=1))
    for key, value, said in (("vllm", "0.34.0", "vllm none -> 0.34.0"),
                             ("torch_num_threads", 2, "torch_num_threads 1 -> 2")):
        slow = load_run(_run(tmp_path / key, seed=3, slowdown={"cleanpass": 1.5}))
        slow.env[key] = value
        res = gate(base, slow)
        assert res.exit_code == 0, key
        timing = [f for f in res.findings if f.metric.startswith(("ratio ", "latency_us_p50"))]
        assert timing and all(f.level is Level.NOTE and said in f.reason for f in timing), key


def test_version_change_keeps_contracts_gated(tmp_path):
    base = load_run(_run(tmp_path / "base", seed=1))
    run = load_run(_run(tmp_path / "run", seed=2))
    run.env["driver"] = "999.1"
    run.rows.loc[run.rows["variant"] == "cleanpass", "clones_after"] = 1
    res = gate(base, run)
    assert res.exit_code == 1
    assert {f.metric for f in res.findings if f.level is Level.REGRESSION} == {"clones_after"}


def test_refresh_records_reason_commit_and_versions_and_the_gate_prints_them(tmp_path):
    out = tmp_path / "b.parquet"
    run = synth_run(tmp_path / "r", seed=1)
    code, lines = call("baseline", "--run", run, "--out", out, "--refresh", "--reason",
                       "rotary_views now keeps its clone")
    assert code == 0
    prov = load_baseline(out).extra["provenance"]
    assert prov["reason"] == "rotary_views now keeps its clone"
    assert prov["versions"] == {"torch": "2.13.0", "triton": "3.9.0", "driver": "", "cuda": "",
                                "vllm": None, "torch_num_threads": 1}
    assert prov["commit"] and prov["run_commit"] == "abc1234"  # synthetic env's commit
    code, lines = call("gate", "--baseline", out, "--run", run)
    assert code == 0
    assert lines[0].startswith(f"baseline {out}: refreshed ") and "rotary_views now keeps its clone" in lines[0]
    assert "(run measured at abc1234)" in lines[0] and "torch 2.13.0, triton 3.9.0" in lines[0]


def test_old_format_1_baseline_still_loads_and_gates(tmp_path):
    old = Path(__file__).resolve().parents[3] / "results" / "baselines" / "cpu.parquet"
    base = load_baseline(old)
    assert base.extra["format"] in (1, 2) and len(base.rows) > 0
    fmt1 = tmp_path / "fmt1.parquet"
    write_baseline(load_run(synth_run(tmp_path / "r", seed=1)), fmt1)
    import json

    import pyarrow.parquet as pq

    from harness.store.baseline import META_KEY

    table = pq.read_table(fmt1)
    meta = json.loads(table.schema.metadata[META_KEY])
    for k in ("provenance", "ratio_hold"):
        meta.pop(k)
    meta["format"] = 1
    pq.write_table(table.replace_schema_metadata({META_KEY: json.dumps(meta).encode()}), fmt1)
    code, lines = call("gate", "--baseline", fmt1, "--run", tmp_path / "r")
    assert code == 0
    assert "(format 1): no reason or commit recorded" in lines[0]


def test_harness_run_stores_and_prints_the_ratio_table(tmp_path, monkeypatch, capsys):
    """``harness run`` adds ratios.parquet to the run directory it wrote; ``run -v`` prints each
    ratio's line (the default ending is the short brief)."""
    from harness import cli
    from harness.run import api

    run_dir = _run(tmp_path / "run", seed=1, slowdown={"cleanpass": 0.9})

    def fake_run(**kw):
        r = load_run(run_dir)
        return api.RunResult(run_dir, r.rows, r.samples, dict(r.env, suite="smoke"), 1.0)

    monkeypatch.setattr(api, "run", fake_run)
    monkeypatch.setattr(cli.summary, "summarize", lambda *a, **k: pd.DataFrame())
    monkeypatch.setattr(cli.summary, "format_summary", lambda df: "")
    assert cli.main(["run", "--device", "cpu", "--no-progress", "--no-report"]) == 0
    stored = pd.read_parquet(run_dir / "ratios.parquet")
    assert len(stored) == 24 and (stored["ratio"] < 1).all()
    assert "cleanpass/lowered rms_norm" not in capsys.readouterr().out
    (run_dir / "ratios.parquet").unlink()
    assert cli.main(["run", "--device", "cpu", "--no-progress", "--no-report", "-v"]) == 0
    out = capsys.readouterr().out
    assert "cleanpass/lowered rms_norm bfloat16 T=512 H=4096: x0." in out
