"""Piecewise compilation (vLLM's split at attention) of a real model: each piece's residual
arrives as a placeholder; the model code's maybe_inplace donates it, so the pieces together keep
what the whole graph keeps; without the declarations every piece keeps its residual's clone."""
from __future__ import annotations

import pytest
import torch

from workloads import hf, piecewise
from workloads.dims import dims
from workloads.models import _hf

pytest.importorskip("transformers")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def adapted() -> torch.nn.Module:
    return hf.adapt(_hf.make_model("qwen2", dims("tiny-gqa"), 2, torch.float32, "cpu"))


def _out(x):  # noqa: ANN001, ANN202
    return x[0] if isinstance(x, (tuple, list)) else x


def test_split_at_attention_gives_pieces_between_attentions(adapted) -> None:  # noqa: ANN001
    gm, _ = piecewise.dynamo_graph(adapted, torch.randint(0, _hf.VOCAB, (1, 5)))
    names = [n for n, _ in piecewise.split_at_attention(gm).named_children()]
    assert names == ["submod_0", "submod_1", "submod_2", "submod_3", "submod_4"]


@pytest.mark.parametrize("donated,kept", [(True, [1, 0, 0]), (False, [1, 1, 1])])
def test_pieces_donate_their_inputs_as_the_model_code_declares(adapted, donated: bool,  # noqa: ANN001
                                                               kept: list[int]) -> None:
    ids = torch.randint(0, _hf.VOCAB, (1, 9), generator=torch.Generator().manual_seed(1))
    pw = piecewise.compile_piecewise(adapted, (ids,), "sound", donated=donated)
    assert [p.clones_before for p in pw.pieces] == [3, 6, 4]  # 13, as in the whole graph
    assert [p.kept for p in pw.pieces] == kept  # not removed by elimination
    assert not any(p.clones_after for p in pw.pieces)  # cleanpass folds what it keeps
    assert [bool(p.donated) for p in pw.pieces] == [False, donated, donated]
    with torch.inference_mode():
        torch.testing.assert_close(_out(pw()), adapted(ids))
