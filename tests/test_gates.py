import math

import pytest
import torch

from masklab.gates import (BINARY_GATES, GATES, STRETCH, _straight_through, area_estimate, hard_concrete,
                           hard_concrete_open_prob, relaxed)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", BINARY_GATES)
@pytest.mark.parametrize("training", [True, False])
def test_binary_gates_output_exactly_zero_or_one(name, training):
    """With hard_forward the classifier sees exactly 0.0 or 1.0 (the straight-through sum is exact)."""
    logits = torch.randn(4, 1, 16, 16) * 3
    mask = GATES[name](logits, 2 / 3, training, True, _gen())
    assert mask.shape == logits.shape
    assert set(mask.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("name", list(GATES))
@pytest.mark.parametrize("training", [True, False])
def test_gradients_reach_the_logits(name, training):
    """Every gate passes a finite, non-zero gradient back to moderate logits."""
    logits = (torch.randn(2, 1, 8, 8) * 0.5).requires_grad_()
    GATES[name](logits, 2 / 3, training, True, _gen()).sum().backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0


@pytest.mark.parametrize("name", [name for name in GATES if name != "top_k"])   # top_k: its own tests below
def test_eval_is_deterministic_and_thresholds_at_zero(name):
    """At eval no noise is drawn: two calls agree, and m_eval > 0.5 is exactly logits > 0."""
    logits = torch.randn(2, 1, 8, 8) * 2
    a = GATES[name](logits, 2 / 3, False, True, _gen(1))
    b = GATES[name](logits, 2 / 3, False, True, _gen(2))
    assert torch.equal(a, b)
    assert torch.equal(relaxed(name, logits, 2 / 3) > 0.5, logits > 0)


@pytest.mark.parametrize("name", ["binary_concrete", "hard_concrete", "top_k"])
def test_training_noise_comes_from_the_run_generator(name):
    """Same generator seed, same sample; another seed, another sample."""
    logits = torch.zeros(1, 1, 32, 32)
    options = {"keep": 0.5} if name == "top_k" else {}
    a = GATES[name](logits, 2 / 3, True, True, _gen(5), **options)
    b = GATES[name](logits, 2 / 3, True, True, _gen(5), **options)
    c = GATES[name](logits, 2 / 3, True, True, _gen(6), **options)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_straight_through_parenthesised_is_exact_where_the_naive_form_drifts():
    """hard + (soft - soft.detach()) is exactly hard; (hard + soft) - soft is not, in float32."""
    soft = torch.rand(100_000, generator=_gen(0))
    hard = (soft > 0.5).float()
    assert torch.equal(_straight_through(hard, soft), hard)
    naive = hard + soft - soft.detach()
    assert (naive != hard).any()


@pytest.mark.parametrize("name", list(GATES))
def test_noisy_gates_stay_finite_in_bfloat16(name):
    """Logistic noise in bfloat16: u = 1 - 1e-6 rounds to 1.0 there and log1p(-1) is -inf, which once made
    top-k's soft training mask NaN (threshold inf - inf; found by the gate property test with seed 4291). The
    noise is computed in float32 and then cast: 50,000 draws, every mask finite and in [0, 1]."""
    logits = torch.zeros(1, 1, 1, 50_000, dtype=torch.bfloat16)
    for hard in (True, False):
        mask = GATES[name](logits, 1.0, True, hard, _gen(4291))
        assert torch.isfinite(mask).all() and ((mask >= 0) & (mask <= 1)).all()
    single = GATES[name](torch.zeros(1, 1, 1, 1, dtype=torch.bfloat16), 1.0, True, False, _gen(4291))
    assert torch.isfinite(single).all()


def test_hard_concrete_open_probability_matches_monte_carlo():
    """Closed-form P(z > 0) equals the frequency of open hard-concrete samples (200k draws per logit)."""
    logits = torch.tensor([-3.0, -1.0, 0.0, 0.5, 2.0])
    samples = logits.repeat(200_000, 1)
    z = hard_concrete(samples, 2 / 3, True, False, _gen(0))
    empirical = (z > 0).float().mean(0)
    assert torch.allclose(empirical, hard_concrete_open_prob(logits, 2 / 3), atol=5e-3)


def test_hard_concrete_relaxed_is_stretched_and_clamped():
    """m_eval of hard concrete is clamp(sigmoid(l) * (zeta - gamma) + gamma, 0, 1): fractional in between."""
    lo, hi = STRETCH
    logits = torch.tensor([-5.0, 0.0, 5.0])
    expected = (torch.sigmoid(logits) * (hi - lo) + lo).clamp(0, 1)
    assert torch.allclose(relaxed("hard_concrete", logits, 2 / 3), expected)
    assert relaxed("hard_concrete", logits, 2 / 3).tolist()[0] == 0.0


def test_saturated_hard_concrete_gates_learn_only_from_the_expected_l0_term():
    """Clamped samples give mask.mean() no gradient, while P(open) reaches every logit."""
    logits = torch.full((1, 1, 8, 8), -12.0, requires_grad=True)    # gates firmly closed
    mask = hard_concrete(logits, 2 / 3, True, False, _gen(0))
    assert (mask == 0).all()
    mask.mean().backward()
    assert (logits.grad == 0).all()
    logits.grad = None
    area_estimate("hard_concrete", logits, mask, 2 / 3).backward()
    assert (logits.grad > 0).all()


def test_hard_forward_hard_concrete_reaches_saturated_gates_unless_the_backward_goes_through_the_clamp():
    """The classifier's gradient reaches a gate sampled at exactly 0 or 1 through the unclamped stretch (the
    default), and not through the clamp (Louizos et al., clamp_backward): there a gate pushed closed gets only
    the area term's push, and a mask can close for good (measured: init_bias 4 then collapses)."""
    logits = torch.tensor([-6.0, -3.0, 0.0, 3.0, 6.0], requires_grad=True)
    grads, masks = {}, {}
    for clamp in (False, True):
        logits.grad = None
        mask = hard_concrete(logits, 2 / 3, True, True, _gen(0), clamp_backward=clamp)
        assert set(mask.tolist()) <= {0.0, 1.0}
        mask.sum().backward()
        grads[clamp], masks[clamp] = logits.grad.clone(), mask.detach()
    assert torch.equal(masks[False], masks[True])                    # the flag changes the backward only
    soft = hard_concrete(logits.detach(), 2 / 3, True, False, _gen(0))  # same noise: the forward is z > 1/2
    assert torch.equal(masks[False], (soft > 0.5).float())
    assert (grads[False] > 0).all()
    saturated = grads[True] == 0
    assert saturated[0] and saturated[-1]                               # +-6: clamped samples, no gradient
    assert torch.allclose(grads[False][~saturated], grads[True][~saturated])   # same gradient inside (0, 1)


def test_hard_concrete_preset_gets_the_unclamped_backward_and_the_flag_reaches_the_model():
    from masklab.config import preset
    from masklab.models import build_model
    for clamp in (False, True):
        model = build_model(preset("hard-concrete", clamp_backward=clamp), 1, 10).train()
        logits = torch.full((1, 1, 4, 4), -8.0, requires_grad=True)
        model.mask_gate(logits, 2 / 3, _gen(0)).sum().backward()
        assert (logits.grad == 0).all() == clamp
    assert preset("hard-concrete").clamp_backward is False


def test_hard_sigmoid_has_no_gradient_past_its_knees():
    """The seed's gate: pixels driven past -3 get zero gradient and can never reopen (the collapse)."""
    logits = torch.tensor([-4.0, -1.0, 1.0, 4.0], requires_grad=True)
    GATES["hard_sigmoid"](logits, 1.0, True, True).sum().backward()
    assert logits.grad.tolist() == [0.0, pytest.approx(1 / 6), pytest.approx(1 / 6), 0.0]


def test_temperature_sharpens_binary_concrete_samples():
    """Lower temperature gives relaxed samples closer to 0/1."""
    logits = torch.zeros(100_000)
    warm = GATES["binary_concrete"](logits, 1.0, True, False, _gen(0))
    cold = GATES["binary_concrete"](logits, 0.1, True, False, _gen(0))
    near = lambda m: ((m < 0.05) | (m > 0.95)).float().mean()
    assert near(cold) > near(warm) + 0.3
    assert math.isclose(float(warm.mean()), 0.5, abs_tol=0.01)


def test_every_gate_is_one_record_and_config_names_exactly_those():
    """A gate is described once (masklab.gates.Gate); config.GATE_NAMES (read by the CLI without torch) is "none"
    plus exactly those records, and each record's relaxation is the deterministic m_eval its eval forward uses."""
    from masklab.config import GATE_NAMES, KNOBS
    from masklab.gates import Gate
    assert GATE_NAMES == ("none", *GATES)
    logits = torch.linspace(-6, 6, 49).reshape(1, 1, 7, 7)
    for name, gate in GATES.items():
        assert isinstance(gate, Gate) and gate.name == name and gate.latex.startswith("m =")
        assert set(gate.knobs) <= set(KNOBS)
        options = {"keep": 24 / 49} if name == "top_k" else {}          # top_k: the 24 highest of 49 are l > 0
        m_eval = gate.relax(logits, 2 / 3, **options)
        assert torch.equal(relaxed(name, logits, 2 / 3, **options), m_eval)
        assert torch.equal(m_eval > 0.5, logits > 0)                    # the hard mask of every gate is l > 0
        if gate.binary:                                                  # eval forward, hard: exactly m_eval > 1/2
            assert torch.equal(gate(logits, 2 / 3, False, True, **options), (m_eval > 0.5).float())


@pytest.mark.parametrize("kind", list(GATES))
def test_mask_gate_module_keeps_its_contract(kind):
    """MaskGate (the public drop-in module): eval is deterministic, 0/1 where the docstring says so and m_eval
    elsewhere; training with `hard` draws exactly 0/1 for the binary gates; relaxed / hard_mask / area agree with
    the library's functions; unknown kinds are refused."""
    from masklab.gates import MaskGate, area_estimate
    logits = torch.randn(2, 1, 6, 6, generator=_gen(3)) * 3
    for hard in (True, False):
        gate = MaskGate(kind, hard=hard).eval()
        gate.keep = 0.4                                                    # read by top_k only
        m_eval = relaxed(kind, logits, gate.temperature, **({"keep": 0.4} if kind == "top_k" else {}))
        a, b = gate(logits, generator=_gen(1)), gate(logits, generator=_gen(2))
        assert torch.equal(a, b)                                           # no noise at eval
        zero_one = kind in ("straight_through", "binary_concrete") or (kind in ("hard_concrete", "top_k") and hard)
        assert torch.equal(a, (m_eval > 0.5).float()) if zero_one else torch.allclose(a, m_eval)
        assert torch.equal(gate.relaxed(logits), m_eval)
        assert torch.equal(gate.hard_mask(logits), (m_eval > 0.5).float())
        assert torch.equal(gate.area(logits, a), area_estimate(kind, logits, a, gate.temperature, gate.seen_area))
    sample = MaskGate(kind).train()(logits, generator=_gen(4))
    if GATES[kind].binary:
        assert set(sample.unique().tolist()) <= {0.0, 1.0} and MaskGate(kind).binary
    with pytest.raises(ValueError, match="unknown gate"):
        MaskGate("gumbel")


@pytest.mark.parametrize("keep", [0.01, 0.1, 0.3, 0.5, 0.97])
@pytest.mark.parametrize("training", [True, False])
def test_top_k_keeps_exactly_its_fraction_in_every_image(keep, training):
    """However the logits lie (all low, all high, one image far above the other), every image keeps exactly
    round(keep * pixels) pixels: there is no all-zero mask to collapse to."""
    logits = torch.cat([torch.randn(1, 1, 20, 20) - 30, torch.randn(1, 1, 20, 20) + 30, torch.randn(1, 1, 20, 20)])
    mask = GATES["top_k"](logits, 2 / 3, training, True, _gen(), keep=keep)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert mask.flatten(1).sum(1).tolist() == [round(keep * 400)] * 3


def test_top_k_eval_keeps_the_highest_logits_and_its_relaxation_agrees():
    logits = torch.randn(2, 1, 10, 10, generator=_gen(3))
    mask = GATES["top_k"](logits, 2 / 3, False, True, _gen(1), keep=0.2)
    top = logits.flatten(1).topk(20, dim=1).indices
    expected = torch.zeros(2, 100).scatter_(1, top, 1.0).view_as(mask)
    assert torch.equal(mask, expected)
    assert torch.equal(relaxed("top_k", logits, 2 / 3, keep=0.2) > 0.5, expected.bool())
    assert torch.equal(GATES["top_k"](logits, 2 / 3, False, True, _gen(2), keep=0.2), mask)   # no noise at eval


def test_top_k_keeps_every_pixel_at_keep_one_and_at_least_one_at_keep_zero():
    logits = torch.randn(2, 1, 6, 6)
    assert GATES["top_k"](logits, 2 / 3, True, True, _gen(), keep=1.0).eq(1).all()
    assert GATES["top_k"](logits, 2 / 3, True, True, _gen(), keep=1e-6).flatten(1).sum(1).tolist() == [1.0, 1.0]


def test_top_k_sends_the_classifier_gradient_to_unkept_pixels_too():
    """Straight-through: a pixel outside the top-k learns that it would have helped (its logit rises)."""
    logits = torch.zeros(1, 1, 4, 4, requires_grad=True)
    logits.data[0, 0, 0, 0] = 5.0                        # kept; every other pixel is not
    mask = GATES["top_k"](logits, 2 / 3, False, True, keep=1 / 16)
    image = torch.zeros(1, 1, 4, 4)
    image[0, 0, 3, 3] = 1.0                              # the only informative pixel is not kept
    (-(mask * image).sum()).backward()                   # a loss that wants to see it
    assert logits.grad[0, 0, 3, 3] < 0                   # gradient descent raises its logit
    assert logits.grad[0, 0, 1, 1] == 0                  # an empty pixel gets nothing


def test_mask_gate_top_k_reads_its_keep_attribute():
    from masklab.gates import MaskGate
    gate = MaskGate("top_k").eval()
    logits = torch.randn(3, 1, 10, 10)
    gate.keep = 0.25
    assert gate(logits).flatten(1).sum(1).tolist() == [25.0] * 3
    assert gate.hard_mask(logits).flatten(1).sum(1).tolist() == [25.0] * 3
