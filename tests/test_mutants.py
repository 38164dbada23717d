"""Tests written for the survivors of the first mutmut pass (docs/MUTATION.md, "First pass"): each pins a
behaviour that no other fast test looked at, and names the mutant(s) it kills. Fast and seeded: no training."""
import math
from types import SimpleNamespace

import pytest
import torch

from masklab.config import Config
from masklab.gates import GATES, _logistic_noise, area_estimate, hard_concrete, hard_concrete_open_prob
from masklab.losses import MASK_LOSSES, area_target, objective, seed_loss, sorted_area_loss, temperature_at


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --- gates -----------------------------------------------------------------------------------------------

def test_logistic_noise_is_finite_and_bounded_at_the_extreme_uniform_draws(monkeypatch):
    """torch.rand can return exactly 0 (and at most 1 - 2**-24): the clamp to [1e-6, 1 - 1e-6] keeps the noise
    finite there and bounds it by about +-log(1e6) both ways. Kills gates._logistic_noise 12, 13, 15, 17, 18."""
    extremes = torch.tensor([0.0, 2.0 ** -24, 0.5, 1 - 2.0 ** -24])
    monkeypatch.setattr(torch, "rand", lambda shape, **kw: extremes.reshape(shape).clone())
    noise = _logistic_noise(torch.zeros(4), None)
    bound = math.log((1 - 1e-6) / 1e-6)                   # 13.8; unclamped, 1 - 2**-24 would give 16.6
    assert torch.isfinite(noise).all()
    assert noise[0].item() == pytest.approx(-bound, rel=2e-3) and noise[1].item() == noise[0].item()
    assert noise[2].item() == 0.0
    assert noise[3].item() == pytest.approx(bound, rel=2e-3)


def test_training_noise_does_not_depend_on_torchs_default_dtype():
    """The uniform draw is float32 whatever torch's default dtype is, so a seeded run samples the same masks in
    a process that set float64 as its default. Kills gates._logistic_noise 5, 9 (dtype dropped)."""
    logits = torch.zeros(1, 1, 8, 8)
    a = GATES["binary_concrete"](logits, 2 / 3, True, False, _gen(3))
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        b = GATES["binary_concrete"](logits, 2 / 3, True, False, _gen(3))
    finally:
        torch.set_default_dtype(old)
    assert torch.equal(a, b)


def test_noise_and_the_sorted_area_ideal_are_made_on_the_inputs_device(monkeypatch):
    """The logistic noise and the sorted-area loss's ideal mask are created on their input's device, not torch's
    default (the CPU): on a GPU, a CPU tensor added to a CUDA one is an error. Without a GPU the test asks the
    two factory calls which device they were given (PyTorch's "meta" device would show it too, but its first
    use costs a second). Kills gates._logistic_noise 4, 8 and losses.sorted_area_loss 15, 18."""
    logits, mask = torch.zeros(1, 1, 4, 4), torch.rand(1, 1, 4, 4)
    asked = {}

    def spy(name):
        real = getattr(torch, name)

        def factory(*args, **kwargs):
            asked[name] = kwargs.get("device")
            return real(*args, **kwargs)
        return factory

    monkeypatch.setattr(torch, "rand", spy("rand"))
    monkeypatch.setattr(torch, "zeros", spy("zeros"))
    _logistic_noise(logits, _gen())
    sorted_area_loss(mask, 0.25)
    assert asked == {"rand": logits.device, "zeros": mask.device}


def test_straight_through_backward_is_the_slope_of_the_tempered_sigmoid():
    """Forward 1[l > 0]; backward d sigmoid(l / T) / dl = s (1 - s) / T, so the temperature sets the slope.
    Kills gates.straight_through 3 (l * T)."""
    logits = torch.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    GATES["straight_through"](logits, 0.5, True, True).sum().backward()
    s = torch.sigmoid(logits.detach() / 0.5)
    assert torch.allclose(logits.grad, s * (1 - s) / 0.5)


def test_binary_and_hard_concrete_draw_the_same_hard_mask_from_the_same_generator():
    """Both open a pixel exactly when l + noise > 0 (noise = log u - log(1 - u) from the run's generator), so
    with one seed the two gates' hard forwards agree pixel for pixel. Flipping the noise's sign leaves each
    gate's distribution unchanged but breaks this. Kills gates.binary_concrete 4, gates.hard_concrete 6."""
    logits = torch.linspace(-4, 4, 4096).reshape(1, 1, 64, 64)
    bc = GATES["binary_concrete"](logits, 2 / 3, True, True, _gen(7))
    hc = GATES["hard_concrete"](logits, 2 / 3, True, True, _gen(7))
    assert torch.equal(bc, hc)
    assert 0.3 < bc.mean().item() < 0.7


def test_hard_concrete_defaults_to_the_unclamped_backward():
    """Called without clamp_backward (as Config's default), saturated samples still get the classifier's
    gradient through the unclamped stretch. Kills gates.hard_concrete 1 (default True)."""
    logits = torch.tensor([-6.0, 6.0], requires_grad=True)
    mask = hard_concrete(logits, 2 / 3, True, True, _gen(0))
    assert mask.tolist() == [0.0, 1.0]
    mask.sum().backward()
    assert (logits.grad > 0).all()


def test_area_estimate_is_expected_l0_by_default_and_the_seen_fraction_with_seen():
    """Hard concrete: P(z > 0) by default, sigmoid(l) = P(z > 1/2) with `seen` (smaller); other gates: the
    mask's mean either way. Kills gates.area_estimate 1, 5, 6."""
    logits = torch.tensor([[-2.0, 0.0, 1.0, 3.0]])
    mask = torch.tensor([[0.0, 1.0, 1.0, 1.0]])
    l0 = area_estimate("hard_concrete", logits, mask, 0.5)
    seen = area_estimate("hard_concrete", logits, mask, 0.5, seen=True)
    assert l0.item() == pytest.approx(hard_concrete_open_prob(logits, 0.5).mean().item(), rel=1e-6)
    assert seen.item() == pytest.approx(torch.sigmoid(logits).mean().item(), rel=1e-6)
    assert seen.item() < l0.item() - 0.05
    assert area_estimate("straight_through", logits, mask, 0.5, seen=True).item() == 0.75


# --- losses ----------------------------------------------------------------------------------------------

def _out():
    """A model output with known values: 2 images of 2x2 mask pixels, 3 classes."""
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]], [[[1.0, 1.0], [0.0, 0.0]]]])
    relaxed = torch.tensor([[[[0.9, 0.2], [0.5, 1.0]]], [[[0.75, 1.0], [0.0, 0.1]]]])
    logits_m = torch.tensor([[[[2.0, -1.0], [0.0, 3.0]]], [[[1.0, 4.0], [-2.0, -0.5]]]])
    return SimpleNamespace(logits=torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]]), mask=mask, relaxed=relaxed,
                           mask_logits=logits_m, features=torch.tensor([[-1.0, 2.0], [3.0, -4.0]]),
                           area=torch.tensor(0.6), temperature=2 / 3)


Y = torch.tensor([0, 1])


@pytest.mark.parametrize("mask_loss", ["seed", "l0", "sorted_area"])
def test_objective_gives_the_mask_loss_its_config_and_the_current_target(mask_loss):
    """The seed loss reads alpha and lam from the config, l0 the gate, sorted_area the annealed target: the
    objective's mask term is each one's own formula. Kills losses.objective 9 (target None) and 8 (cfg None)."""
    out = _out()
    cfg = Config(mask_loss=mask_loss, beta=0.5, alpha=0.7, lam=0.01, constraint=False, tv=0.0, bimodal=0.0)
    expected = {"seed": seed_loss(out.mask, 0.7, 0.01).mean(),
                "l0": hard_concrete_open_prob(out.mask_logits, 2 / 3).mean(),
                "sorted_area": sorted_area_loss(out.relaxed, 0.25)}[mask_loss]
    loss, ce, mask_term = objective(cfg, out, Y, 0.25, torch.tensor(0.0))
    assert mask_term.item() == pytest.approx(expected.item(), rel=1e-6)
    assert mask_term.item() == pytest.approx(MASK_LOSSES[mask_loss](out, cfg, 0.25).item(), rel=1e-6)
    assert loss.item() == pytest.approx(ce.item() + 0.5 * expected.item(), rel=1e-6)


def test_sorted_area_loss_keeps_the_masks_dtype():
    """Like every other mask loss, the sorted-area loss is computed in the mask's own dtype (a bfloat16 mask
    gives a bfloat16 loss; the objective casts once). Kills losses.sorted_area_loss 16, 19 (ideal in float32)."""
    mask = torch.tensor([[[[0.9, 0.2], [0.5, 1.0]]]], dtype=torch.bfloat16)
    loss = sorted_area_loss(mask, 0.5)
    assert loss.dtype == torch.bfloat16
    assert loss.float().item() == pytest.approx((0.2 ** 2 + 0.5 ** 2 + 0.1 ** 2 + 0.0) / 4, rel=1e-2)


def test_without_an_anneal_the_target_drops_to_the_goal_right_after_the_warmup():
    """anneal_frac 0: the target is 1.0 through the warm-up's last step (step <= warmup * steps), then the goal.
    Kills losses.area_target 6, 8, 9."""
    cfg = Config(steps=10, warmup=0.5, anneal_frac=0.0, area_target=0.2)
    assert [area_target(cfg, s) for s in (1, 5, 6, 10)] == [1.0, 1.0, 0.2, 0.2]


def test_an_anneal_of_one_step_still_passes_through_the_middle():
    """The linear anneal interpolates even when it spans a single step: start 0.5, span 1, so step 1 is halfway
    from 1.0 to the goal. Kills losses.area_target 5 (span <= 1 treated as no anneal)."""
    cfg = Config(steps=4, warmup=0.125, anneal_frac=0.25, area_target=0.2)
    assert area_target(cfg, 1) == pytest.approx(0.6)
    assert area_target(cfg, 0) == 1.0 and area_target(cfg, 2) == pytest.approx(0.2)


def test_temperature_stays_at_its_end_past_the_last_step_and_a_two_step_run_reaches_it():
    """The geometric anneal is clamped: after the last step the temperature stays temperature_end; a run of two
    steps goes from start to end in one. Kills losses.temperature_at 6 (min 2.0), 19 (max(2, steps - 1))."""
    cfg = Config(steps=11, temperature=1.0, temperature_end=0.25)
    assert temperature_at(cfg, 20) == pytest.approx(0.25)
    assert temperature_at(cfg, 0) == pytest.approx(1.0)
    two = Config(steps=2, temperature=1.0, temperature_end=0.25)
    assert temperature_at(two, 1) == pytest.approx(1.0) and temperature_at(two, 2) == pytest.approx(0.25)
