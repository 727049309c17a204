"""The routing half of parity, both ways. A backend that disagrees with the reference on one decision passes
when the reference's margin there is within the dtype's epsilon of the boundary (a near tie: its numerics are
then compared against the reference replaying the backend's decisions) and fails when it is far from it.

The backend here is the reference itself computing with one decision flipped, so its outputs are exactly what
a backend that took the other branch there computes; nothing about the comparison is stubbed."""

from __future__ import annotations

import numpy as np
import torch
from conftest import tiny

from irexport import reference
from irexport.parity.check import compare_phase, sample_inputs
from irexport.parity.tolerances import TOLERANCES
from irexport.reference import run_graph


class FlippedBackend:
    """The reference, with the decision at ``where`` (layer, unit, batch, token) taken the other way."""

    name = "flipped"

    def __init__(self, model, where):
        self.model, self.where = model, where

    def run(self, phase, feed):
        decisions = run_graph(self.model, feed, "masked")["decisions"].copy()
        decisions[self.where] = ~decisions[self.where]
        return run_graph(self.model, feed, "masked", force=decisions)


def routed_margins(model, feed):
    """The reference's margins of routed units at valid tokens, and their positions (layer, unit, batch, token)."""
    margin = run_graph(model, feed, "masked")["router_margin"]
    valid = feed["attention_mask"].astype(bool)
    positions = [p for p in zip(*np.nonzero(np.isfinite(margin)), strict=True) if valid[p[2], p[3]]]
    return margin, positions


def test_a_flip_at_a_near_tie_passes_and_one_far_from_the_boundary_fails(monkeypatch):
    model = tiny("informed", num_hidden_layers=2).eval()
    feed = sample_inputs(model.config.vocab_size, 2, 12, 0)
    epsilon = TOLERANCES["float32"]["margin_epsilon"]
    margin, positions = routed_margins(model, feed)

    # move the boundary of one unit to within epsilon / 2 of a token's margin: informed routing's margin is the
    # difference of the router's two logits, so a shift of the second logit's bias moves every margin of the unit
    layer, unit, b, t = min(positions, key=lambda p: abs(margin[p]))
    bias = model.routing.layers[layer][("attention", "mlp")[unit]].router.weight_predictor.bias
    with torch.no_grad():
        bias[1] += float(margin[layer, unit, b, t]) - epsilon / 2
    margin, positions = routed_margins(model, feed)
    near = (layer, unit, b, t)
    assert 0 < abs(margin[near]) <= epsilon, margin[near]

    report, _ = compare_phase(model, FlippedBackend(model, near), "prefill", feed, "masked", "float32")
    assert report["routing"]["flips"] == report["routing"]["near_tie_flips"] == 1
    assert report["numerics"]["replayed_backend_decisions"] and report["passed"], report
    # the replay is what passes it: compared against the reference's own decisions, the numerics fail
    real = reference.run_graph
    with monkeypatch.context() as patch:
        patch.setattr(reference, "run_graph", lambda model, feed, mode, force=None, float32=False: real(model, feed, mode,
                                                                                                      float32=float32))
        unreplayed, _ = compare_phase(model, FlippedBackend(model, near), "prefill", feed, "masked", "float32")
    assert unreplayed["routing"]["passed"] and not unreplayed["numerics"]["passed"], unreplayed

    far = max(positions, key=lambda p: abs(margin[p]))
    assert abs(margin[far]) > 100 * epsilon
    report, _ = compare_phase(model, FlippedBackend(model, far), "prefill", feed, "masked", "float32")
    assert report["routing"]["flips"] == 1 and report["routing"]["near_tie_flips"] == 0
    assert not report["routing"]["passed"] and not report["passed"]

