"""One arm in its own process: `python -m harness.vllm_engine.child SPEC.json OUT.json`.

Runs under the vLLM environment's interpreter with the arm's environment already set by the
parent (`harness.vllm_engine.arms.arm_env`), starts `vllm.LLM`, generates greedily from the fixed
token-id prompts and writes what came out: tokens, the chosen tokens' log-probs, engine start and
generation seconds. Any exception is written as the arm's error (its first line) and exits 1.
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Start the engine, generate, and return the arm's outcome."""
    from vllm import LLM, SamplingParams

    from harness.vllm_engine.models import make_model
    from harness.vllm_engine.zoo import get_model

    kwargs = dict(spec["llm"])
    kwargs["model"] = str(make_model(Path(spec["models_root"]), get_model(spec["model"]), spec["dtype"]))
    t0 = time.perf_counter()
    llm = LLM(**kwargs)
    started = time.perf_counter() - t0
    params = SamplingParams(temperature=0.0, max_tokens=spec["max_tokens"], logprobs=0,
                            ignore_eos=True)
    prompts = [{"prompt_token_ids": list(p)} for p in spec["prompts"]]
    t1 = time.perf_counter()
    outputs = llm.generate(prompts, params, use_tqdm=False)
    generated = time.perf_counter() - t1
    tokens, logprobs = [], []
    for out in outputs:
        completion = out.outputs[0]
        tokens.append(list(completion.token_ids))
        logprobs.append([step[tok].logprob for tok, step in zip(completion.token_ids, completion.logprobs)])
    return {"ok": True, "pid": os.getpid(), "start_s": started, "generate_s": generated, "tokens": tokens, "logprobs": logprobs,
            "generated_tokens": sum(len(t) for t in tokens)}


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    out = Path(argv[1])
    try:
        result = run(spec)
        code = 0
    except BaseException as error:  # noqa: BLE001 - every failure becomes the arm's row
        traceback.print_exc()
        first = (str(error).strip().splitlines() or [""])[0]
        result = {"ok": False, "error": f"{type(error).__name__}: {first}"}
        code = 1
    out.write_text(json.dumps(result))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
