"""The Loss explorer's curves checked against calculus and the real gates; the collapse diagnosis."""
import numpy as np
import pytest
import torch

from masklab.config import PRESETS, preset
from masklab.explain import (LOGIT_RANGE, METHODS, Knobs, against_logit, against_mask, collapse, dead_zones,
                             gate_in_expectation, objective_latex, summary)
from masklab.gates import GATES
from masklab.train import Record


def test_the_seed_slope_at_zero_is_about_beta_alpha_over_lambda():
    """dL/dm at m = 0 is β(α/λ − (1−α)/(1+λ)) ≈ β·α/λ: 90 for the question's α 0.9, β 0.1, λ 1e-3."""
    k = Knobs(alpha=0.9, beta=0.1, lam=1e-3)
    curve = against_mask(METHODS["seed"], k)
    assert curve.grad[0] == pytest.approx(0.1 * (0.9 / 1e-3 - 0.1 / (1 + 1e-3)))
    assert summary(METHODS["seed"], k)["dL/dm at m=0"] == pytest.approx(89.99, abs=0.01)


def test_the_hard_sigmoid_kills_every_gradient_past_three():
    """Through the seed's gate, the loss gradient and the gate's slope are exactly 0 for |l| >= 3 and not inside."""
    curve = against_logit(METHODS["seed"], Knobs())
    outside, inside = np.abs(curve.x) > 3 + 1e-9, np.abs(curve.x) < 3 - 1e-9
    assert (curve.grad[outside] == 0).all() and (curve.slope[outside] == 0).all()
    assert (curve.grad[inside] != 0).all()
    assert [(round(a, 2), round(b, 2)) for a, b in curve.dead] == [(-8, -3), (3, 8)]


@pytest.mark.parametrize("name", ["ste", "binary-concrete", "hard-concrete"])
def test_the_fixes_keep_a_gradient_at_every_logit(name):
    """The straight-through and concrete gates never zero the gradient on the plotted logit range."""
    curve = against_logit(METHODS[name], Knobs())
    assert curve.dead == () and (np.abs(curve.slope) > 0).all()


@pytest.mark.parametrize("name", [n for n, m in METHODS.items() if m.on_mask is not None])
def test_mask_gradients_match_finite_differences(name):
    """Autograd's dL/dm agrees with a central difference of the plotted loss."""
    curve = against_mask(METHODS[name], Knobs(lam=0.05))
    numeric = np.gradient(curve.loss, curve.x)
    assert np.allclose(curve.grad[5:-5], numeric[5:-5], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("gate", ["binary_concrete", "hard_concrete"])
def test_the_noise_average_matches_the_sampled_training_gate(gate):
    """The quantile-averaged gate and its backward slope equal the mean of the library's own noisy training gate."""
    def mean_and_slope(make):
        l = torch.tensor([-3.0, -1.0, 0.0, 0.5, 2.0], dtype=torch.float64, requires_grad=True)
        m = make(l).mean(0)
        (slope,) = torch.autograd.grad(m.sum(), l)
        return m.detach(), slope

    g = torch.Generator().manual_seed(0)
    expected = mean_and_slope(lambda l: gate_in_expectation(gate, l, 0.5))
    sampled = mean_and_slope(lambda l: GATES[gate](l.expand(200_000, 5), 0.5, True, True, g))
    assert torch.allclose(expected[0], sampled[0], atol=5e-3)
    assert torch.allclose(expected[1], sampled[1], atol=5e-3, rtol=0.02)


def test_dead_zones_are_maximal_runs_of_zero_gradient():
    """Zero runs become intervals, isolated zeros points, and the ends are included."""
    x = np.arange(8.0)
    assert dead_zones(x, np.array([0, 0, 1, 0, 1, 1, 0, 0])) == ((0, 1), (3, 3), (6, 7))
    assert dead_zones(x, np.ones(8)) == ()


def test_every_masked_preset_has_an_explorer_method_with_its_gate():
    """The explorer covers each masked preset, drawn through that preset's own gate; a preset that differs from a
    covered one only in the resolution and width its logits are computed at (mask_stride, width), in how block
    logits reach pixels (mask_upsample), in whether the closing phase commits the mask (commit) or in whether the
    run ends with averaged classifier weights (average) has the same per-pixel curves."""
    spatial = lambda n: preset(n).replace(mask_upsample="nearest", commit=True, mask_stride=2, width=16, average=0.2)
    masked = {n for n, p in PRESETS.items() if p.get("gate", "hard_concrete") != "none"
              and not any(spatial(n) == spatial(m) for m in METHODS if m != n)}
    assert masked <= set(METHODS) and not {"hard-concrete-bilinear", "hard-concrete-fine"} & masked
    assert all(METHODS[n].gate == preset(n).gate for n in masked)


def test_the_objective_shows_only_the_terms_in_effect():
    """The seed objective has the log loss and no multiplier; plain hard concrete the multiplier on P(z > 0) and
    nothing of the default's; the default the seen area P(z > 1/2), the floor's multiplier, the normalised
    bounded logits with the noise's gain inside the bound, the damping and the closing phase; the 2026-11-29
    default neither of the last two."""
    seed, plain, hard, unmasked = (" ".join(objective_latex(preset(n)))
                                   for n in ("seed", "hard-concrete-plain", "hard-concrete", "unmasked"))
    assert r"\log(m+\lambda)" in seed and r"\mu" not in seed and "hardsigmoid" in seed
    assert r"\mu" in plain and "P(z>0)" in plain and r"\log(m+\lambda)" not in plain
    assert r"\nu" not in plain and "GroupNorm" not in plain and "frozen" not in plain and "bimodal" not in plain
    assert r"P(z>\tfrac12)" in hard and r"(\mu - \nu)" in hard and r"0.5\,t - \bar a" in hard
    assert r"8\,\tanh(g\,l_0/8)" in hard and "GroupNorm" in hard and "frozen" in hard and "bimodal" in hard
    assert r"\tfrac{10}{2}\,(\bar a - t)^2" in hard and r"g = 0.25^" in hard and r"\text{the gain } g" in hard
    nov29 = " ".join(objective_latex(preset("hard-concrete-nov29")))
    assert r"8\,\tanh(l_0/8)" in nov29 and "^2" not in nov29 and "g =" not in nov29
    bounded = " ".join(objective_latex(preset("hard-concrete", gain_site="bounded")))
    assert r"8\,\tanh(l_0/8)" in bounded and r"\text{the gate reads } g\,l" in bounded
    assert "unmasked" in unmasked and r"\beta" not in unmasked


def test_the_objective_names_the_anneal_shape_and_the_backward_in_effect():
    """Geometric anneal shows t = t_end^p; the hard-concrete line says what the classifier sees (1[z > 1/2]) and
    whether the backward goes through the unclamped stretch s or the clamp z."""
    default = objective_latex(preset("hard-concrete"))
    assert r"\partial s/\partial l" in default[1] and r"\mathbb{1}[z > \tfrac12]" in default[1]
    assert r"\partial z/\partial l" in objective_latex(preset("hard-concrete", clamp_backward=True))[1]
    assert any(line.startswith(r"t = 1 - (1 - t_{\text{end}})") for line in default)
    assert any(line.startswith(r"t = t_{\text{end}}^{\,p}")
               for line in objective_latex(preset("hard-concrete", anneal="geometric")))
    soft = objective_latex(preset("hard-concrete", hard_forward=False))[1]
    assert r"\mathbb{1}" not in soft and "m = z" in soft


def test_logit_curves_cover_the_plotted_range():
    """Every method's logit curve spans LOGIT_RANGE with finite values."""
    for method in METHODS.values():
        c = against_logit(method, Knobs())
        assert (c.x[0], c.x[-1]) == LOGIT_RANGE
        assert np.isfinite(c.loss).all() and np.isfinite(c.grad).all()


def _records(*areas, targets=None, steps=None):
    targets = targets or [1.0] * len(areas)
    return [Record(step=(i + 1) * 10 if steps is None else steps[i], loss=0, ce=0, mask_loss=0, accuracy=0,
                   area=a, area_expected=a, bimodality=0, multiplier=0, temperature=1, target=t, seconds=1)
            for i, (a, t) in enumerate(zip(areas, targets))]


def test_collapse_to_zero_is_flagged_with_the_seed_explanation():
    """An all-zero mask under the seed loss is a collapse that names β·α/λ and the hard sigmoid's dead zone."""
    found = collapse(preset("seed", steps=100), _records(0.5, 0.001))
    assert found.kind == "zero" and found.step == 20
    assert "β·α/λ = 90" in found.why and "-3" in found.why and found.tips


def test_hard_concrete_collapse_through_the_clamp_says_to_turn_clamp_backward_off():
    """A hard-concrete mask that closed with the backward through the clamp names the clamp as the reason."""
    clamped = collapse(preset("hard-concrete", steps=100, clamp_backward=True), _records(0.5, 0.0))
    assert "clamp" in clamped.why and "clamp_backward off" in clamped.tips[0]
    default = collapse(preset("hard-concrete", steps=100), _records(0.5, 0.0))
    assert default.kind == "zero" and "clamp" not in default.why


def test_area_one_is_a_collapse_only_once_the_schedule_asks_for_less():
    """Gates start open: area 1 early in the anneal is expected, area 1 with a low target is not."""
    cfg = preset("hard-concrete", steps=100)
    assert collapse(cfg, _records(1.0, targets=[0.98])) is None
    assert collapse(cfg, _records(1.0, targets=[0.3])).kind == "one"
    assert collapse(cfg, _records(0.2, targets=[0.1])) is None
    assert collapse(preset("unmasked"), _records(1.0, targets=[0.0])) is None


def test_a_finished_runs_test_area_decides_over_the_last_batch():
    """The test-set area of a finished run overrides the last training batch's."""
    cfg = preset("seed", steps=100)
    assert collapse(cfg, _records(0.3), area=0.0).kind == "zero"
    assert collapse(cfg, _records(0.0), area=0.3) is None


def test_the_objective_of_top_k_shows_its_schedule_and_no_multiplier():
    """top-k keeps k = t * HW pixels: the annealed t is part of its objective, the multiplier is not."""
    lines = objective_latex(preset("top-k"))
    assert any(line.startswith("t = 1 - (1 - t_{") for line in lines)
    assert not any(r"\mu" in line for line in lines) and r"\theta_k" in lines[1]
