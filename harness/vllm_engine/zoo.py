"""vLLM's model zoo as tiny random models: which architectures, and the tiny model of each.

An architecture is kept when vLLM's registry lists it as a text generation model and transformers
ships it as a causal LM (so decoder-only, with a config class to make the tiny config from). The
mapping is architecture -> model type (transformers' causal LM names) -> config class
(transformers' config names); `select` does it on plain mappings, so it is testable without vLLM.

`python -m harness.vllm_engine.zoo OUT.json` (under the vLLM environment's interpreter) writes the
kept and dropped architectures as JSON, for a parent process that may not have vLLM.
"""
from __future__ import annotations

import json
import sys
import zlib
from pathlib import Path
from typing import Iterable, Mapping

from harness.vllm_engine.models import MODELS, TinyModel

#: MoE sizes, set only where a config class has the key: few small experts
MOE: dict[str, object] = {
    "num_experts": 4, "num_local_experts": 4, "n_routed_experts": 4, "moe_num_experts": 4,
    "num_experts_per_tok": 2, "moe_k": 2, "moe_intermediate_size": 64,
    "shared_expert_intermediate_size": 64, "n_shared_experts": 1, "first_k_dense_replace": 0,
    # grouped routing (DeepSeek V2/V3): one group, so every expert is eligible (vLLM's CPU router
    # asserts the group sizes are set; the transformers defaults leave them None)
    "n_group": 1, "topk_group": 1,
}

#: special token ids inside the tiny vocabulary (some config defaults, e.g. Phi-3's 32000, are not)
TOKEN_IDS: dict[str, object] = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}

#: per-architecture config keys, each where vLLM's model code reads the checkpoint otherwise
ARCH_OVERRIDES: dict[str, dict[str, object]] = {
    # vLLM's model always ties the LM head to the embeddings and rejects an `lm_head` weight
    "BloomForCausalLM": {"tie_word_embeddings": True},
    "Gemma2ForCausalLM": {"tie_word_embeddings": True},
    # vLLM's Llama 4 MoE weighs the input by the router score, which its CPU path allows only with
    # one expert per token (Llama 4's own setting)
    "Llama4ForCausalLM": {"num_experts_per_tok": 1},
    # transformers' DeepSeek V3 router always has a score-correction bias; vLLM's model has that
    # weight only for `topk_method="noaux_tc"` (DeepSeek V3's own setting), else rejects it
    "DeepseekV3ForCausalLM": {"topk_method": "noaux_tc"},
}

ClassNames = Mapping[str, "str | tuple[str, ...] | list[str]"]


def arch_to_type(causal_lm_names: ClassNames) -> dict[str, str]:
    """Causal LM class name -> transformers model type (a type may name several classes)."""
    out: dict[str, str] = {}
    for model_type, names in causal_lm_names.items():
        for name in ([names] if isinstance(names, str) else names):
            out.setdefault(name, model_type)
    return out


def select(archs: Iterable[str], causal_lm_names: ClassNames,
           config_names: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """({architecture: config class} kept, {architecture: why not} dropped), both sorted."""
    types = arch_to_type(causal_lm_names)
    kept, dropped = {}, {}
    for arch in sorted(set(archs)):
        model_type = types.get(arch)
        if model_type is None:
            dropped[arch] = "not a causal LM class in transformers"
        elif model_type not in config_names:
            dropped[arch] = f"transformers has no config class for model type {model_type!r}"
        else:
            kept[arch] = config_names[model_type]
    return kept, dropped


def seed_of(arch: str) -> int:
    """A fixed seed per architecture, the same on every machine."""
    return zlib.crc32(arch.encode()) % 2**31


def tiny_from(arch: str, config_class: str) -> TinyModel:
    """The zoo's tiny model of `arch` (its transformers class has the architecture's name)."""
    return TinyModel(arch, arch, config_class, arch, seed=seed_of(arch), optional={**MOE, **TOKEN_IDS},
                     overrides=dict(ARCH_OVERRIDES.get(arch, {})))


def transformers_names() -> tuple[ClassNames, Mapping[str, str]]:
    """transformers' causal LM and config class names by model type."""
    from transformers.models.auto import configuration_auto, modeling_auto

    return modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, configuration_auto.CONFIG_MAPPING_NAMES


def tiny_model(arch: str) -> TinyModel:
    """The tiny model of one architecture, or ValueError naming why the zoo has none."""
    kept, dropped = select([arch], *transformers_names())
    if arch not in kept:
        raise ValueError(f"{arch}: {dropped[arch]}")
    return tiny_from(arch, kept[arch])


def get_model(name: str) -> TinyModel:
    """One of the check's `MODELS` by name, else the zoo's tiny model of that architecture."""
    return MODELS[name] if name in MODELS else tiny_model(name)


def registry_archs() -> list[str]:
    """vLLM's text generation architectures (needs vLLM)."""
    from vllm.model_executor.models import registry

    return sorted(registry._TEXT_GENERATION_MODELS)  # noqa: SLF001 - the registry's own table


def main(argv: list[str]) -> int:
    kept, dropped = select(registry_archs(), *transformers_names())
    Path(argv[0]).write_text(json.dumps({"kept": kept, "dropped": dropped}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
