"""cleanpass: a sound, alias-aware clone-elimination pass for torch.fx graphs.

    report = cleanpass.eliminate_clones(gm, donated=(), policy="sound")

See README.md in this folder for the invariants and `cleanpass.sound` for the rules.
"""
from . import decisions, verify
from .decisions import CloneReport, Decision
from .donation import current_donated, donated_inputs
from .forms import (OutOfPlaceForm, out_of_place_form, register_any_layout, register_effects_known,
                    register_out_of_place)
from .eliminate import POLICIES, eliminate_clones, eliminate_clones_in_graph
from .inductor import CloneEliminationPass, hash_files

__all__ = [
    "CloneEliminationPass",
    "CloneReport",
    "Decision",
    "OutOfPlaceForm",
    "POLICIES",
    "current_donated",
    "decisions",
    "donated_inputs",
    "eliminate_clones",
    "eliminate_clones_in_graph",
    "hash_files",
    "out_of_place_form",
    "register_any_layout",
    "register_effects_known",
    "register_out_of_place",
    "verify",
]
