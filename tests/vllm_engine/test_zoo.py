"""The zoo's machinery without vLLM: which architectures are kept, their tiny configs, the
meta-device size cap, and the resumable run (on a fake check)."""
from __future__ import annotations

import json

import pytest

from harness import cli
from harness.vllm_engine import check, launch, models, rows as rowmod, zoo, zoo_run

# a registry and transformers' names as the zoo reads them, made by hand
REGISTRY = ["LlamaForCausalLM", "Qwen2MoeForCausalLM", "FooVisionForConditionalGeneration",
            "BarForCausalLM", "GPT2LMHeadModel"]
CAUSAL = {"llama": "LlamaForCausalLM", "qwen2_moe": "Qwen2MoeForCausalLM", "bar": "BarForCausalLM",
          "gpt2": ("GPT2LMHeadModel", "GPT2Alias")}
CONFIGS = {"llama": "LlamaConfig", "qwen2_moe": "Qwen2MoeConfig", "gpt2": "GPT2Config"}


def test_select_keeps_registry_causal_lms_with_a_config_class():
    kept, dropped = zoo.select(REGISTRY, CAUSAL, CONFIGS)
    assert kept == {"GPT2LMHeadModel": "GPT2Config", "LlamaForCausalLM": "LlamaConfig",
                    "Qwen2MoeForCausalLM": "Qwen2MoeConfig"}
    assert dropped["FooVisionForConditionalGeneration"] == "not a causal LM class in transformers"
    assert "no config class" in dropped["BarForCausalLM"]
    assert list(kept) == sorted(kept)


def test_transformers_causal_lm_that_vllm_lacks_is_not_kept():
    kept, _ = zoo.select(["LlamaForCausalLM"], CAUSAL, CONFIGS)
    assert list(kept) == ["LlamaForCausalLM"]
    assert zoo.arch_to_type(CAUSAL)["GPT2Alias"] == "gpt2"


def test_moe_sizes_only_where_the_config_has_them():
    tiny = zoo.tiny_from("Qwen2MoeForCausalLM", "Qwen2MoeConfig")
    dense = tiny.config("float32", frozenset({"hidden_size", "pad_token_id"}))
    moe = tiny.config("float32", frozenset({"num_experts", "moe_intermediate_size", "pad_token_id"}))
    assert not set(zoo.MOE) & set(dense) and dense["pad_token_id"] == 0
    assert moe["num_experts"] == 4 and moe["moe_intermediate_size"] == 64
    assert dense["hidden_size"] == 128 and dense["num_attention_heads"] * dense["head_dim"] == 128
    assert tiny.architecture == tiny.model_class == tiny.name == "Qwen2MoeForCausalLM"


def test_an_architecture_override_reaches_its_config_only():
    bloom = zoo.tiny_from("BloomForCausalLM", "BloomConfig").config("float32")
    llama = zoo.tiny_from("LlamaForCausalLM", "LlamaConfig").config("float32")
    assert bloom["tie_word_embeddings"] is True and llama["tie_word_embeddings"] is False


def test_seed_is_fixed_per_architecture():
    assert zoo.seed_of("LlamaForCausalLM") == zoo.seed_of("LlamaForCausalLM") != zoo.seed_of("GemmaForCausalLM")


def test_real_transformers_mapping_and_tiny_model():
    pytest.importorskip("transformers")
    assert zoo.get_model("Qwen3ForCausalLM").config_class == "Qwen3Config"
    assert zoo.get_model("llama") is models.MODELS["llama"]
    with pytest.raises(ValueError, match="not a causal LM"):
        zoo.tiny_model("NoSuchForCausalLM")


def test_meta_device_cap_refuses_a_config_that_ignores_the_sizes(tmp_path):
    transformers = pytest.importorskip("transformers")
    big = transformers.LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                                   num_attention_heads=32, vocab_size=32000)
    # ~6.7e9 parameters: counted without allocating them, then refused
    assert models.count_params(transformers.LlamaForCausalLM, big) > 6_000_000_000
    with pytest.raises(models.ModelTooLarge, match="above the cap"):
        models.check_size(transformers.LlamaForCausalLM, big)
    huge = models.TinyModel("huge", "LlamaForCausalLM", "LlamaConfig", "LlamaForCausalLM", seed=1,
                            overrides={"hidden_size": 4096, "num_attention_heads": 32, "head_dim": 128,
                                       "intermediate_size": 11008, "vocab_size": 32000})
    with pytest.raises(models.ModelTooLarge):
        models.make_model(tmp_path, huge, "float32")
    assert not any(tmp_path.iterdir())  # nothing written
    small = models.TinyModel("small", "LlamaForCausalLM", "LlamaConfig", "LlamaForCausalLM", seed=1)
    assert models.check_size(transformers.LlamaForCausalLM,
                             transformers.LlamaConfig(**small.config("float32"))) < 1_000_000


def test_zoo_names_are_accepted_by_the_check_and_named_in_rows():
    assert models.looks_like_architecture("GemmaForCausalLM") and not models.looks_like_architecture("gemma")
    row = rowmod.skipped_rows(["GemmaForCausalLM"], ["float32"], ["no_pass"], "why", "cpu")[0]
    assert row.model.startswith("GemmaForCausalLM") and row.workload == rowmod.workload_name("GemmaForCausalLM")
    with pytest.raises(ValueError, match="unknown"):
        check.run_check(["gemma"], ["float32"], ["no_pass"])


class FakeCheck:
    """Stands in for `check.run_check`: records calls, writes what a finished check writes."""

    def __init__(self, finish: bool = True):
        self.calls: list[str] = []
        self.references: list[str | None] = []
        self.finish = finish

    def __call__(self, models_, dtypes, arms, out, python=None, progress=None, reference=None):
        self.calls.append(models_[0])
        self.references.append(reference)
        (out / check.ENGINE_DIR).mkdir(parents=True)
        (out / check.ENGINE_DIR / check.TABLE_FILE).write_text(f"| {models_[0]} | {' '.join(arms)} |\n")
        if self.finish:
            (out / "results.parquet").write_bytes(b"rows")


def test_zoo_run_skips_done_architectures(tmp_path):
    first = FakeCheck()
    zoo_run.run_zoo(["AForCausalLM", "BForCausalLM"], tmp_path, run_one=first)
    assert first.calls == ["AForCausalLM", "BForCausalLM"]
    assert first.references == ["no_pass", "no_pass"]  # the zoo stops an architecture whose no-pass arm fails
    again = FakeCheck()
    zoo_run.run_zoo(["AForCausalLM", "BForCausalLM", "CForCausalLM"], tmp_path, run_one=again)
    assert again.calls == ["CForCausalLM"]
    text = (tmp_path / zoo_run.ZOO_TABLE).read_text()
    assert [line for line in text.splitlines() if line.startswith("###")] == [
        "### AForCausalLM", "### BForCausalLM", "### CForCausalLM"]
    assert "no_pass vllm_pass cleanpass" in text
    assert (tmp_path / zoo_run.ZOO_SUMMARY).read_text().startswith("| architecture |")


def test_zoo_run_starts_a_cut_off_architecture_over(tmp_path):
    zoo_run.run_zoo(["AForCausalLM"], tmp_path, run_one=FakeCheck(finish=False))
    assert not zoo_run.is_done(tmp_path, "AForCausalLM")
    stale = tmp_path / "AForCausalLM" / check.ENGINE_DIR / "stale-arm"
    stale.mkdir()
    again = FakeCheck()
    zoo_run.run_zoo(["AForCausalLM"], tmp_path, run_one=again)
    assert again.calls == ["AForCausalLM"] and not stale.exists()
    assert "### AForCausalLM" in (tmp_path / zoo_run.ZOO_TABLE).read_text()


def test_zoo_cli_refuses_without_a_vllm_environment(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(launch, "VENV", tmp_path / "no-venv")
    monkeypatch.setattr(launch.importlib.util, "find_spec", lambda name: None)
    code = cli.main(["vllm-engine", "--zoo", "--archs", "LlamaForCausalLM", "--out", str(tmp_path / "zoo")])
    assert code == 2 and "no vLLM environment" in capsys.readouterr().err
    assert not (tmp_path / "zoo" / "LlamaForCausalLM").exists()  # nothing marked done


def test_registry_listing_is_written_for_the_parent(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo, "registry_archs", lambda: REGISTRY)
    monkeypatch.setattr(zoo, "transformers_names", lambda: (CAUSAL, CONFIGS))
    assert zoo.main([str(tmp_path / "archs.json")]) == 0
    listing = json.loads((tmp_path / "archs.json").read_text())
    assert sorted(listing["kept"]) == ["GPT2LMHeadModel", "LlamaForCausalLM", "Qwen2MoeForCausalLM"]
    assert set(listing["dropped"]) == {"BarForCausalLM", "FooVisionForConditionalGeneration"}


def test_a_failed_reference_arm_stops_its_group_and_names_why(tmp_path, monkeypatch):
    """The zoo's policy (`reference`): after the no-pass arm fails, the other arms are failed rows
    that say so, not engines started for nothing; without a reference every arm runs."""
    from harness.vllm_engine.outcome import ArmOutcome

    started: list[str] = []

    def run_arm(python, model, dtype, arm, work, models_root):
        started.append(arm.name)
        return ArmOutcome(model, dtype, arm.name, ok=False, error="ValueError: no lm_head")

    monkeypatch.setattr(check.launch, "run_arm", run_arm)
    arms = ["no_pass", "vllm_pass", "cleanpass"]
    done = check._run_group("python", "XForCausalLM", "float32", arms, 1, tmp_path, tmp_path, print, "no_pass")
    assert started == ["no_pass"]
    assert [done[a][0].ok for a in arms] == [False, False, False]
    assert done["cleanpass"][0].error.startswith("not run: the no_pass arm failed first (ValueError: no lm_head")
    started.clear()
    check._run_group("python", "XForCausalLM", "float32", arms, 1, tmp_path, tmp_path, print)
    assert started == arms


def _arch_rows(out, arch, rows):
    import json

    import pandas as pd

    where = zoo_run.arch_dir(out, arch)
    where.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(where / "results.parquet")
    pd.DataFrame({"x": []}).to_parquet(where / "samples.parquet")
    (where / "env.json").write_text(json.dumps({}))


def test_the_zoo_fails_on_a_cleanpass_failure_only_where_the_reference_ran(tmp_path):
    ok = {"dtype": "float32", "ok": True, "error": ""}
    _arch_rows(tmp_path, "AForCausalLM", [  # starts without a pass, cleanpass breaks it: a failure
        {**ok, "variant": "no_pass"}, {**ok, "variant": "vllm_pass"},
        {**ok, "variant": "cleanpass", "ok": False, "error": "tokens differ from no_pass"}])
    _arch_rows(tmp_path, "BForCausalLM", [  # does not start at all: a row, not a failure
        {**ok, "variant": v, "ok": False, "error": "ValueError: no lm_head"} for v in zoo_run.ZOO_ARMS])
    _arch_rows(tmp_path, "CForCausalLM", [{**ok, "variant": v} for v in zoo_run.ZOO_ARMS])
    archs = ["AForCausalLM", "BForCausalLM", "CForCausalLM", "DForCausalLM"]  # D: not run yet
    assert zoo_run.pass_failures(tmp_path, archs) == ["AForCausalLM float32 cleanpass: tokens differ from no_pass"]


def test_a_composite_config_gives_its_text_model(tmp_path):
    """Llama 4's config holds a text and a vision config; its causal LM takes the text one (the
    zoo once failed to build it: "'Llama4Config' object has no attribute 'pad_token_id'")."""

    transformers = pytest.importorskip("transformers")
    if not hasattr(transformers, "Llama4ForCausalLM"):
        pytest.skip("this transformers has no Llama 4")
    where = models.make_model(tmp_path, zoo.tiny_from("Llama4ForCausalLM", "Llama4Config"), "float32")
    config = json.loads((where / "config.json").read_text())
    assert config["model_type"] == "llama4_text" and config["hidden_size"] == 128
    assert config["architectures"] == ["Llama4ForCausalLM"]


def test_the_reference_runs_again_where_an_arm_differs_from_it(tmp_path, monkeypatch):
    """Glm4Moe's tiny engine generated other tokens on every start, without any pass: where an arm
    differs from the no-pass arm, the no-pass arm runs once more, and two differing no-pass engines
    fail the no-pass row (the engine is not reproducible), not the pass."""
    from harness.vllm_engine.outcome import ArmOutcome
    from harness.vllm_engine import rows as rowmod

    outputs = {"no_pass": [[1, 2]], "vllm_pass": [[1, 2]], "cleanpass": [[1, 3]]}
    started: list[str] = []

    def run_arm(python, model, dtype, arm, work, models_root):
        started.append(arm.name)
        tokens = outputs[arm.name] if started.count(arm.name) == 1 else [[9, 9]]
        return ArmOutcome(model, dtype, arm.name, ok=True, tokens=tokens, logprobs=[[-0.5, -0.5]])

    monkeypatch.setattr(check.launch, "run_arm", run_arm)
    arms = ["no_pass", "vllm_pass", "cleanpass"]
    done = check._run_group("python", "XForCausalLM", "float32", arms, 1, tmp_path, tmp_path, print, "no_pass")
    assert started == arms + ["no_pass"] and len(done["no_pass"]) == 2
    row = rowmod.arm_row(done["no_pass"], {a: done[a][0] for a in arms}, "cpu")
    assert row.error.endswith("repetitions of this arm generated different tokens or log-probs")
    outputs["cleanpass"] = [[1, 2]]  # every arm agrees: no second no-pass engine
    started.clear()
    check._run_group("python", "XForCausalLM", "float32", arms, 1, tmp_path, tmp_path, print, "no_pass")
    assert started == arms
