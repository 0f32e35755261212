"""The zoo's one-line-per-architecture summary, from arm directories as the engine check writes
them (out.json, the test bed's counts, cleanpass's reports)."""
from __future__ import annotations

import json
from pathlib import Path

from harness.vllm_engine import zoo_table

SLOTS = {"no_pass": "_EmptySlot", "vllm_pass": "UnsafeCloneEliminationPass", "cleanpass": "VllmClonePass"}


def _arm(out: Path, arch: str, arm: str, *, ok: bool = True, finals=(0, 1, 1), tokens=(5, 6),
         kept=(), folded=0, error: str = "", rep: int = 0) -> None:
    work = out / arch / "engine" / f"{arch}-float32" / f"{arm}-{rep}"
    (work / "counts").mkdir(parents=True)
    (work / "reports").mkdir()
    (work / "log").write_text("")
    result = {"ok": ok, "pid": 1, "start_s": 1.0, "generate_s": 1.0, "tokens": [list(tokens)],
              "logprobs": [[-0.5] * len(tokens)]} if ok else {"ok": False, "error": error}
    (work / "out.json").write_text(json.dumps(result))
    (out / arch / "results.parquet").write_bytes(b"")  # the architecture's run is done
    if not ok:
        return
    for n, final in enumerate(finals):
        (work / "counts" / f"1-{n}.json").write_text(json.dumps(
            {"pid": 1, "n": n, "slot": SLOTS[arm], "clones_lowered": (0, 4, 4)[n],
             "clones_after_slot": final, "clones_final": final}))
    if arm == "cleanpass":
        (work / "reports" / "1-1.json").write_text(json.dumps(
            {"pid": 1, "graph": 1, "kept": [{"reason": r} for r in kept], "folded": [{}] * folded}))


def test_one_line_per_architecture_with_the_reasons_cleanpass_keeps(tmp_path):
    _arm(tmp_path, "GemmaForCausalLM", "no_pass", finals=(0, 4, 4))
    _arm(tmp_path, "GemmaForCausalLM", "vllm_pass", finals=(0, 1, 1))
    _arm(tmp_path, "GemmaForCausalLM", "cleanpass", finals=(0, 0, 0), folded=2)
    _arm(tmp_path, "QwenForCausalLM", "no_pass", finals=(0, 4, 4))
    _arm(tmp_path, "QwenForCausalLM", "vllm_pass", finals=(0, 1, 1), tokens=(5, 7))
    _arm(tmp_path, "QwenForCausalLM", "cleanpass", finals=(0, 1, 1), kept=("layout-differs", "layout-differs"))
    _arm(tmp_path, "BloomForCausalLM", "no_pass", ok=False, error="ValueError: no lm_head\nmore")
    text = zoo_table.summary(tmp_path, ["GemmaForCausalLM", "QwenForCausalLM", "BloomForCausalLM", "NotRunForCausalLM"])
    lines = text.splitlines()
    assert lines[2] == "| GemmaForCausalLM | float32 | 0/4/4 | 0/1/1 | 0/0/0 | 2 | yes / yes | - |"
    assert lines[3] == "| QwenForCausalLM | float32 | 0/4/4 | 0/1/1 | 0/1/1 | 0 | **no** / yes | layout-differs 2 |"
    assert text.endswith("Did not start without a clone pass (1): BloomForCausalLM (ValueError: no lm_head).")
    assert "NotRun" not in text
    (tmp_path / "GemmaForCausalLM" / "results.parquet").unlink()  # a running architecture is left out
    assert "GemmaForCausalLM" not in zoo_table.summary(tmp_path, ["GemmaForCausalLM"])


def test_an_engine_that_differs_from_itself_without_a_pass_is_not_judged(tmp_path):
    _arm(tmp_path, "GlmForCausalLM", "no_pass", finals=(0, 4, 4))
    _arm(tmp_path, "GlmForCausalLM", "no_pass", finals=(0, 4, 4), tokens=(5, 9), rep=1)
    _arm(tmp_path, "GlmForCausalLM", "vllm_pass", finals=(0, 0, 0), tokens=(5, 8))
    _arm(tmp_path, "GlmForCausalLM", "cleanpass", finals=(0, 0, 0), tokens=(5, 7))
    line = zoo_table.summary(tmp_path, ["GlmForCausalLM"]).splitlines()[2]
    assert line == "| GlmForCausalLM | float32 | 0/4/4 | 0/0/0 | 0/0/0 | 0 | not judged: two no-pass engines differ | - |"
